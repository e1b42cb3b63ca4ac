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

# The one metric per task that a simpler model must not beat (the gate, reports/baselines.json)
# and that flags an unstable cross-validation fold (train). Binary: ROC AUC, not accuracy: a
# threshold chosen for F1 or recall may rightly lose accuracy to "always the majority class";
# the ranking may not lose to it.
PRIMARY: dict[str, str] = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}
