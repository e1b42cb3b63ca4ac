"""Metric functions: the one implementation behind cross-validation (train, tune), evaluation,
monitoring and `mlops compare`.

Each metric is a function ``fn(y, pred, proba, classes) -> float`` in :data:`CLASSIFICATION` /
:data:`REGRESSION`, so a caller that needs one metric many times (the bootstrap of `mlops
compare`) calls the same code as one that needs them all (:func:`score`). At the edges a metric
is NaN rather than an error: one class present (ROC-AUC, PR-AUC; a multiclass ROC-AUC
averages the classes that are present with both positives and negatives), a single row (R²),
non-finite inputs (a NaN probability or prediction). Probabilities are clipped to
[1e-15, 1 - 1e-15] for log-loss, so an exact 0 or 1 costs a large finite amount.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from sklearn import metrics as skm
from sklearn.preprocessing import label_binarize

from mlops_template.config import Task

# Which direction is better, for reports and gates (re-exported; defined without scikit-learn).
from mlops_template.metric_directions import HIGHER_IS_BETTER as HIGHER_IS_BETTER
from mlops_template.model import labels_for

EPS = 1e-15
NAN = float("nan")

# fn(y, pred, proba, classes): ``pred`` the decided labels (or values); ``proba`` P(classes[1])
# per row for a binary task, one column per class for multiclass (empty for regression).
Metric = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], float]


def _finite(values: np.ndarray) -> bool:
    return values.size == 0 or bool(np.isfinite(values).all())


def _label_kwargs(proba: np.ndarray, classes: np.ndarray) -> dict[str, object]:
    return {"pos_label": classes[1]} if proba.ndim == 1 else {"average": "macro"}


def accuracy(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    return float(skm.accuracy_score(y, pred))


def precision(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    kwargs = _label_kwargs(proba, classes)
    return float(skm.precision_score(y, pred, zero_division=0, **kwargs))


def recall(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    kwargs = _label_kwargs(proba, classes)
    return float(skm.recall_score(y, pred, zero_division=0, **kwargs))


def f1(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    kwargs = _label_kwargs(proba, classes)
    return float(skm.f1_score(y, pred, zero_division=0, **kwargs))


def roc_auc(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Binary: NaN unless both classes are present. Multiclass: the one-vs-rest macro mean over
    the classes that have both positives and negatives among ``y`` (see :func:`roc_auc_classes`;
    a time split can leave a class out of the test rows), NaN when none has."""
    if not _finite(proba):
        return NAN
    if proba.ndim == 1:
        positive = y == classes[1]
        return (
            float(skm.roc_auc_score(positive, proba)) if positive.any() & ~positive.all() else NAN
        )
    used, _ = roc_auc_classes(y, classes)
    if not used:
        return NAN
    onehot = label_binarize(y, classes=classes)
    return float(np.mean([skm.roc_auc_score(onehot[:, i], proba[:, i]) for i in used]))


def roc_auc_classes(y: np.ndarray, classes: np.ndarray) -> tuple[list[int], list[str]]:
    """Multiclass ROC AUC's classes: (indices of the classes with both positives and negatives
    in ``y``, the names of the others: absent from ``y``, or all of it)."""
    used, left_out = [], []
    for i, c in enumerate(classes):
        positive = y == c
        if positive.any() and not positive.all():
            used.append(i)
        else:
            left_out.append(str(c))
    return used, left_out


def roc_auc_note(y: np.ndarray, classes: np.ndarray | None, rows: str = "rows") -> str | None:
    """One line for the report when multiclass ROC AUC leaves classes out, else None."""
    if classes is None or len(classes) < 3:
        return None
    used, left_out = roc_auc_classes(np.asarray(y), np.asarray(classes))
    if not left_out:
        return None
    present = {str(v) for v in pd.unique(np.asarray(y))}
    absent = [c for c in left_out if c not in present]
    whole = [c for c in left_out if c in present]  # the one class all the rows have
    why = [f"absent from the {rows}: {', '.join(absent)}"] if absent else []
    why += [f"the only class in the {rows}: {', '.join(whole)}"] if whole else []
    return f"ROC AUC over {len(used)} of {len(classes)} classes; {'; '.join(why)}"


def pr_auc(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """Binary: average precision of the positive class, NaN unless both classes are present.
    Multiclass: the macro mean over the classes present."""
    if not _finite(proba):
        return NAN
    if proba.ndim == 1:
        positive = y == classes[1]
        both = positive.any() & ~positive.all()
        return float(skm.average_precision_score(positive, proba)) if both else NAN
    scores = [
        skm.average_precision_score(y == c, proba[:, i])
        for i, c in enumerate(classes)
        if (y == c).any()
    ]
    return float(np.mean(scores)) if scores else NAN


def log_loss(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    if not _finite(proba):
        return NAN
    if proba.ndim == 1:
        positive = y == classes[1]
        return float(skm.log_loss(positive, np.clip(proba, EPS, 1 - EPS), labels=[0, 1]))
    return float(skm.log_loss(y, np.clip(proba, EPS, 1), labels=classes))


def rmse(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    return float(skm.root_mean_squared_error(y, pred)) if _finite(pred) else NAN


def mae(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    return float(skm.mean_absolute_error(y, pred)) if _finite(pred) else NAN


def r2(y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    return float(skm.r2_score(y, pred)) if len(y) > 1 and _finite(pred) else NAN


CLASSIFICATION: dict[str, Metric] = {
    "accuracy": accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "roc_auc": roc_auc,
    "pr_auc": pr_auc,
    "log_loss": log_loss,
}
REGRESSION: dict[str, Metric] = {"rmse": rmse, "mae": mae, "r2": r2}


def metric(name: str, task: Task | str) -> Metric | None:
    """The function of one metric for ``task``; None for a metric the task never produces."""
    return (REGRESSION if task == "regression" else CLASSIFICATION).get(name)


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in values.items()}


def classification(
    y_true: pd.Series | np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC-AUC, PR-AUC and log-loss, rounded to 6 places.

    Binary: ``proba`` is P(positive class = classes[1]) per row, labels are cut at
    ``threshold``. Multiclass: ``proba`` has one column per class; averages are macro.
    """
    y, classes = np.asarray(y_true), np.asarray(classes)
    pred = labels_for(proba, classes, threshold)
    return _rounded({name: fn(y, pred, proba, classes) for name, fn in CLASSIFICATION.items()})


def regression(y_true: pd.Series | np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y, pred = np.asarray(y_true, dtype="float64"), np.asarray(pred, dtype="float64")
    empty = np.empty(0)
    return _rounded({name: fn(y, pred, empty, empty) for name, fn in REGRESSION.items()})


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
