"""Which direction is better for each metric, without importing scikit-learn.

Kept apart from :mod:`mlops_template.metrics` (which re-exports it) so the `gate` command,
which only compares numbers, starts in a fraction of the time.
"""

from __future__ import annotations

HIGHER_IS_BETTER = {
    "accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "rmse": False,
    "mae": False,
    "r2": True,
}
