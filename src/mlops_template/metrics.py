"""Metric functions shared by cross-validation (train), evaluation and monitoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlops_template.config import Task

# Which direction is better, for reports and gates (re-exported; defined without scikit-learn).
from mlops_template.metric_directions import HIGHER_IS_BETTER as HIGHER_IS_BETTER


def classification(
    y_true: pd.Series | np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC-AUC, PR-AUC and log-loss.

    Binary: ``proba`` is P(positive class = classes[1]) per row, labels are cut at
    ``threshold``. Multiclass: ``proba`` has one column per class; averages are macro.
    """
    y = np.asarray(y_true)
    if proba.ndim == 1:
        pred = np.where(proba >= threshold, classes[1], classes[0])
        positive = y == classes[1]
        both = len(np.unique(positive)) == 2
        out = {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred, pos_label=classes[1], zero_division=0),
            "recall": skm.recall_score(y, pred, pos_label=classes[1], zero_division=0),
            "f1": skm.f1_score(y, pred, pos_label=classes[1], zero_division=0),
            "roc_auc": skm.roc_auc_score(positive, proba) if both else float("nan"),
            "pr_auc": skm.average_precision_score(positive, proba) if both else float("nan"),
            "log_loss": skm.log_loss(positive, np.clip(proba, 1e-15, 1 - 1e-15), labels=[0, 1]),
        }
    else:
        pred = classes[np.argmax(proba, axis=1)]
        present = np.unique(y)
        out = {
            "accuracy": skm.accuracy_score(y, pred),
            "precision": skm.precision_score(y, pred, average="macro", zero_division=0),
            "recall": skm.recall_score(y, pred, average="macro", zero_division=0),
            "f1": skm.f1_score(y, pred, average="macro", zero_division=0),
            "roc_auc": (
                skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
                if len(present) == len(classes)
                else float("nan")
            ),
            "pr_auc": _macro_pr_auc(y, proba, classes),
            "log_loss": skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=classes),
        }
    return {k: round(float(v), 6) for k, v in out.items()}


def _macro_pr_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    scores = [
        skm.average_precision_score(y == c, proba[:, i])
        for i, c in enumerate(classes)
        if (y == c).any()
    ]
    return float(np.mean(scores)) if scores else float("nan")


def regression(y_true: pd.Series | np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y = np.asarray(y_true, dtype="float64")
    out = {
        "rmse": skm.root_mean_squared_error(y, pred),
        "mae": skm.mean_absolute_error(y, pred),
        "r2": skm.r2_score(y, pred) if len(y) > 1 else float("nan"),
    }
    return {k: round(float(v), 6) for k, v in out.items()}


def score(
    task: Task,
    y_true: pd.Series | np.ndarray,
    output: np.ndarray,
    classes: np.ndarray | None,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Dispatch on the task: ``output`` is probabilities (classification) or predictions."""
    if task == "regression":
        return regression(y_true, output)
    assert classes is not None
    return classification(y_true, output, classes, threshold)
