"""What is known about a model's latent space: the evaluator's files, the PCA baseline, named directions, measurements."""
