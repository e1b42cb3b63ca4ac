"""evaluate's declared checks: every input column adds value, every slice is good enough and no
slice is far behind the best (reports/checks.json), on the demo's committed slices and on real
public tables."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import Ridge

from mlops_template.config import EvaluateParams, load_params
from mlops_template.errors import ConfigError
from mlops_template.stages.checks import check_evaluation, failures, feature_value, slice_quality
from mlops_template.stages.evaluate import importance, slice_metrics
from tests.repo import DEMO_PARAMS, ROOT


@pytest.fixture
def demo_slices() -> dict[str, Any]:
    """The slices the committed demo model scored (reports/slices.json, 20k held-out rows)."""
    return json.loads((ROOT / "reports/slices.json").read_text())


def test_the_demo_model_passes_its_declared_slice_checks(demo_slices: dict[str, Any]) -> None:
    p = load_params(DEMO_PARAMS).evaluate
    result = check_evaluation(pd.DataFrame({"feature": [], "importance": []}), demo_slices, p)
    result = result["slices"]
    assert not result["failed"], result["problems"]
    auc = result["metrics"]["roc_auc"]
    values = {n: e["roc_auc"] for n, e in demo_slices["slices"].items()}
    worst = min(values, key=values.__getitem__)
    assert auc["worst"] == {"slice": worst, "value": values[worst]}
    assert auc["gap"] == pytest.approx(max(values.values()) - min(values.values()), abs=1e-6)


def test_a_slice_below_the_floor_and_a_wide_gap_are_named(demo_slices: dict[str, Any]) -> None:
    result = slice_quality(demo_slices, {"roc_auc": 0.85}, {"roc_auc": 0.1}, 200)
    assert result["failed"]
    below = {n for n, e in demo_slices["slices"].items() if e["roc_auc"] < 0.85}
    assert below and set(result["metrics"]["roc_auc"]["below_floor"]) == below
    assert {p.split(":")[0] for p in result["problems"] if p.startswith("slice ")} == {
        f"slice {n}" for n in below
    }
    values = {n: e["roc_auc"] for n, e in demo_slices["slices"].items() if e["rows"] >= 200}
    best, worst = max(values, key=values.__getitem__), min(values, key=values.__getitem__)
    assert values[best] - values[worst] > 0.1  # the demo's gap: wider than asked
    (gap,) = [p for p in result["problems"] if p.startswith("roc_auc gap")]
    assert f"between slices {best} ({values[best]:.4f}) and {worst} ({values[worst]:.4f})" in gap


def test_lower_is_better_metrics_have_a_ceiling(demo_slices: dict[str, Any]) -> None:
    result = slice_quality(demo_slices, {"log_loss": 0.08}, {}, 200)
    worst = max(demo_slices["slices"].items(), key=lambda kv: kv[1]["log_loss"])
    assert result["metrics"]["log_loss"]["worst"]["slice"] == worst[0]
    assert set(result["metrics"]["log_loss"]["below_floor"]) == {
        n for n, e in demo_slices["slices"].items() if e["log_loss"] > 0.08
    }


def test_small_slices_are_reported_not_judged(demo_slices: dict[str, Any]) -> None:
    result = slice_quality(demo_slices, {"roc_auc": 0.95}, {}, 1000)
    small = {n for n, e in demo_slices["slices"].items() if e["rows"] < 1000}
    assert set(result["metrics"]["roc_auc"]["skipped"]) == small
    assert not set(result["metrics"]["roc_auc"]["below_floor"]) & small


def test_unknown_metric_names_the_key_and_other_tasks_metrics_are_skipped(
    demo_slices: dict[str, Any],
) -> None:
    with pytest.raises(ConfigError, match=r"slice_checks\.merchant_category\.max_gap\.roc_acu"):
        slice_quality(demo_slices, {}, {"roc_acu": 0.1}, 200)
    result = slice_quality(demo_slices, {"rmse": 1.0}, {}, 200)
    assert result["not_produced"] == ["rmse"] and not result["failed"]


def test_fairness_gap_between_sexes_on_the_diabetes_table() -> None:
    """A real public table with a protected attribute: the error of a regression by sex."""
    data = load_diabetes(as_frame=True)
    frame = data.frame.assign(sex=np.where(data.frame["sex"] > 0, "a", "b"))
    train, test = frame.iloc[:300], frame.iloc[300:]
    X_cols = [c for c in data.feature_names if c != "sex"]
    model = Ridge(alpha=0.1).fit(train[X_cols], train["target"])
    output = model.predict(test[X_cols])
    slices = slice_metrics(test, test["target"].to_numpy(), output, "regression", None, "sex", None)
    rmse = {n: e["rmse"] for n, e in slices["slices"].items()}
    gap = abs(rmse["a"] - rmse["b"])
    assert gap > 1  # the two groups are not served equally well
    passing = slice_quality(slices, {}, {"rmse": gap + 0.01}, 30)
    failing = slice_quality(slices, {}, {"rmse": gap - 0.01}, 30)
    assert not passing["failed"]
    assert failing["failed"] and "rmse gap" in failing["problems"][0]
    assert failing["metrics"]["rmse"]["gap"] == pytest.approx(gap, abs=1e-6)


def test_a_noise_column_is_caught_by_the_importance_floor() -> None:
    """breast cancer + one column of pure noise: the floor flags the noise (and the
    redundant columns), never the strongest feature."""
    data = load_breast_cancer(as_frame=True)
    rng = np.random.default_rng(0)
    X = data.data.assign(noise=rng.normal(size=len(data.data)))
    y = data.target.to_numpy()
    model = HistGradientBoostingClassifier(max_iter=50, random_state=0).fit(X[:400], y[:400])
    params = EvaluateParams(importance_rows=169, importance_repeats=5)
    frame = importance(model, X[400:], y[400:], "binary", params, seed=0, skip=[])
    result = feature_value(frame, 0.001)
    assert result["failed"] and "noise" in result["below"]
    assert frame["feature"].iloc[0] not in result["below"]
    assert feature_value(frame, None) == {"checked": False, "failed": False, "below": {}}


@pytest.mark.parametrize("action", ["report", "fail"])
def test_the_action_decides_whether_a_useless_column_stops_the_stage(action: str) -> None:
    imp = pd.DataFrame({"feature": ["amount", "country"], "importance": [0.1, -0.0002]})
    params = EvaluateParams(feature_importance_action=action)
    stop, warn = failures(check_evaluation(imp, {}, params))
    moved = stop if action == "fail" else warn
    assert len(moved) == 1 and "country -0.0002" in moved[0] and "features.drop" in moved[0]
    assert (warn if action == "fail" else stop) == []
