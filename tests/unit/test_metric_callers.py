"""One implementation per metric: evaluate (per slice and whole), monitoring's quality check and
`mlops compare` give the same numbers on the edge cases where separate implementations used to
disagree (one class present, probabilities of exactly 0 and 1, NaN)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template import metrics
from mlops_template.config import parse_params
from mlops_template.model import labels_for
from mlops_template.monitor.quality import quality as monitor_quality
from mlops_template.serving.rollout import compare
from mlops_template.stages.evaluate import slice_metrics

NAN = float("nan")
BINARY = ["no", "yes"]
THREE = ["a", "b", "c"]

# (task, classes, labels, output): output is P(classes[1]) (binary), a column per class
# (multiclass) or the predicted value (regression)
CASES: dict[str, tuple[str, list[str] | None, list[Any], np.ndarray]] = {
    "binary, exact 0 and 1": (
        "binary",
        BINARY,
        ["no", "yes", "yes", "no"],
        np.array([0.0, 1.0, 0.0, 1.0]),
    ),
    "binary, one class present": ("binary", BINARY, ["yes"] * 4, np.array([0.1, 0.9, 1.0, 0.0])),
    "binary, a NaN probability": (
        "binary",
        BINARY,
        ["no", "yes", "no", "yes"],
        np.array([0.2, NAN, 0.4, 0.9]),
    ),
    "multiclass, exact 0 and 1": (
        "multiclass",
        THREE,
        ["a", "b", "c", "a"],
        np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 0, 1.0], [0, 1.0, 0]]),
    ),
    "multiclass, one class present": (
        "multiclass",
        THREE,
        ["b", "b", "b"],
        np.array([[0.2, 0.7, 0.1], [0.0, 1.0, 0.0], [0.5, 0.25, 0.25]]),
    ),
    "multiclass, a class absent": (
        "multiclass",
        THREE,
        ["a", "b", "a", "b", "a"],
        np.array(
            [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.3, 0.6, 0.1], [0.1, 0.1, 0.8], [0.5, 0.1, 0.4]]
        ),
    ),
    "multiclass, a NaN probability": (
        "multiclass",
        THREE,
        ["a", "b", "c"],
        np.array([[0.2, 0.7, 0.1], [NAN, 0.5, 0.5], [0.1, 0.1, 0.8]]),
    ),
    "regression, one row": ("regression", None, [3.0], np.array([2.5])),
    "regression, a NaN prediction": (
        "regression",
        None,
        [1.0, 2.0, 3.0],
        np.array([1.0, NAN, 2.0]),
    ),
}
THRESHOLD = 0.5


def _same(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        if math.isnan(a[name]):
            assert math.isnan(b[name]), name
        else:
            assert b[name] == pytest.approx(a[name], abs=1e-6), name


def _evaluate(task: str, classes: list[str] | None, y: np.ndarray, output: np.ndarray) -> dict:
    inputs = pd.DataFrame({"slice": ["one"] * len(y)})
    cls = np.asarray(classes) if classes else None
    entry = slice_metrics(inputs, y, output, task, cls, "slice", THRESHOLD)["slices"]["one"]  # type: ignore[arg-type]
    return {k: v for k, v in entry.items() if k != "rows"}


def _monitor(task: str, classes: list[str] | None, y: np.ndarray, output: np.ndarray) -> dict:
    meta = {"task": task, "target": "y", "classes": classes}
    return monitor_quality(pd.DataFrame({"y": y}), output, meta, None, {}, THRESHOLD)["metrics"]


def _compare(
    raw_params: dict[str, Any],
    task: str,
    classes: list[str] | None,
    y: np.ndarray,
    output: np.ndarray,
) -> dict:
    """The champion's values in `mlops compare`'s quality table, every metric gated."""
    names = metrics.REGRESSION if task == "regression" else metrics.CLASSIFICATION
    raw_params["data"]["task"] = task
    raw_params["gate"]["metrics"] = {name: {"max_drop_abs": 1.0} for name in names}
    raw_params["compare"]["resamples"] = 100
    params = parse_params(raw_params)
    rows = pd.DataFrame({"y": y})
    if task == "regression":
        rows["prediction"] = output
    else:
        assert classes is not None
        proba = output if task == "multiclass" else np.column_stack([1 - output, output])
        rows["prediction"] = labels_for(output, classes, THRESHOLD)
        for i, c in enumerate(classes):
            rows[f"proba_{c}"] = proba[:, i]
    arm = compare.Arm("champion", "v1", rows, classes)
    data = compare.labelled(arm, task, "y")
    table, _ = compare.quality(params, data, data, paired_rows=True)
    return {row["metric"]: NAN if row["champion"] is None else row["champion"] for row in table}


@pytest.mark.parametrize("case", CASES)
def test_every_caller_gives_the_same_numbers(case: str, raw_params: dict[str, Any]) -> None:
    task, classes, labels, output = CASES[case]
    y = np.asarray(labels, dtype=object if classes else "float64")
    direct = metrics.score(task, y, output, np.asarray(classes) if classes else None, THRESHOLD)  # type: ignore[arg-type]
    assert set(direct) == set(
        metrics.REGRESSION if task == "regression" else metrics.CLASSIFICATION
    )
    _same(direct, _evaluate(task, classes, y, output))
    _same(direct, _monitor(task, classes, y, output))
    _same(direct, _compare(raw_params, task, classes, y, output))


def test_the_edges_are_nan_or_finite_not_errors() -> None:
    _, classes, labels, output = CASES["binary, one class present"]
    one = metrics.score("binary", np.asarray(labels), output, np.asarray(classes))
    assert math.isnan(one["roc_auc"]) and math.isnan(one["pr_auc"])
    assert one["accuracy"] == 0.5 and math.isfinite(one["log_loss"])
    _, classes, labels, output = CASES["binary, exact 0 and 1"]
    exact = metrics.score("binary", np.asarray(labels), output, np.asarray(classes))
    # two rows wrong with certainty cost -log(1e-15) (P = 0 clipped up) and -log(1 - (1 - 1e-15))
    # (P = 1 clipped down): large and finite
    wrong = -math.log(1e-15) - math.log(1 - (1 - 1e-15))
    assert exact["log_loss"] == pytest.approx(wrong / 4, abs=1e-6)
    _, classes, labels, output = CASES["binary, a NaN probability"]
    nan = metrics.score("binary", np.asarray(labels), output, np.asarray(classes))
    assert all(math.isnan(nan[k]) for k in ("roc_auc", "pr_auc", "log_loss"))
    assert metrics.score("regression", np.array([3.0]), np.array([2.5]), None)["rmse"] == 0.5


def test_multiclass_roc_auc_averages_the_classes_present() -> None:
    """A time split can leave a class out of the test rows: ROC AUC is then the one-vs-rest macro
    mean over the classes with positives and negatives, not NaN (which the gate reads as a
    missing metric), and the note names the class left out."""
    _, classes, labels, output = CASES["multiclass, a class absent"]
    y, cls = np.asarray(labels), np.asarray(classes)
    got = metrics.score("multiclass", y, output, cls)["roc_auc"]
    from sklearn.metrics import roc_auc_score

    by_hand = np.mean([roc_auc_score(y == c, output[:, i]) for i, c in enumerate(THREE[:2])])
    assert got == pytest.approx(by_hand, abs=1e-6) and 0 < got < 1
    assert metrics.roc_auc_classes(y, cls) == ([0, 1], ["c"])
    note = metrics.roc_auc_note(y, cls, "test rows")
    assert note == "ROC AUC over 2 of 3 classes; absent from the test rows: c"
    # all classes present: the same number as scikit-learn's own one-vs-rest macro average
    full = np.array(["a", "b", "c", "a", "c"])
    proba = output / output.sum(axis=1, keepdims=True)
    expected = roc_auc_score(full, proba, multi_class="ovr", labels=THREE)
    assert metrics.roc_auc(full, full, proba, cls) == pytest.approx(expected)
    assert metrics.roc_auc_note(full, cls) is None
    # one class only: no class has both positives and negatives
    assert math.isnan(metrics.roc_auc(np.array(["b"] * 5), full, proba, cls))
    assert metrics.roc_auc_note(np.array(["b"] * 5), cls) == (
        "ROC AUC over 0 of 3 classes; absent from the rows: a, c; the only class in the rows: b"
    )
