"""Charts drawn from training logs."""

import numpy as np

from vae_demo.imaging.charts import training_curves


def _log(n=6, continued_at=None):
    rows = [{"epoch": e, "train_rec": 100 - e, "train_kl": 10 + e / 10, "test_rec": 101 - e, "test_kl": 10 + e / 10,
             "test_elbo": -(111 - e + e / 10)} for e in range(1, n + 1)]
    if continued_at:
        rows[continued_at - 1]["continued_at"] = continued_at
    return rows


def test_training_curves_mark_where_a_run_continued_a_checkpoint():
    plain, staged = training_curves(_log()), training_curves(_log(continued_at=4))
    assert plain.size == staged.size
    a, b = np.asarray(plain.convert("L"), float), np.asarray(staged.convert("L"), float)
    changed_columns = np.flatnonzero(np.abs(a - b).max(0) > 40)
    assert len(changed_columns) > 0
    # the marks are thin vertical lines (one per panel) plus the legend's entry, not a redrawn chart
    assert (np.abs(a - b) > 40).mean() < 0.02
