"""Training and evaluation: the trainer, its objectives, DDP, the evaluator, and the fitting of classifiers and knobs."""
