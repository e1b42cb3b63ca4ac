"""The ONNX gate: onnxruntime serves only when it matches scikit-learn within 1e-6."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from mlops_template.features import build_features, feature_transformer
from mlops_template.model import column_roles, make_pipeline
from mlops_template.onnx_path import TOLERANCE, OnnxModel, export
from mlops_template.synthetic import generate_transactions


def _fitted(params: Any, model: str) -> tuple[Pipeline, Any]:
    data = generate_transactions(2000, fraud_rate=0.1, seed=1)
    X, y = data.drop(columns=["is_fraud"]), data["is_fraud"].astype(int)
    roles = column_roles(build_features(X.head(50), params.features))
    train_params = params.train.model_copy(update={"model": model})
    core = make_pipeline("binary", train_params, roles)
    pipeline = Pipeline([("features", feature_transformer(params.features)), ("model", core)])
    return pipeline.fit(X, y), X


def test_linear_model_passes_the_gate_and_matches(params: Any) -> None:
    pipeline, X = _fitted(params, "linear")
    onnx_bytes, record = export(pipeline, X, "binary")
    assert record["runtime"] == "onnx", record
    assert onnx_bytes is not None and record["onnx_max_abs_diff"] <= TOLERANCE
    features = pipeline.steps[0][1].transform(X)
    served = OnnxModel(onnx_bytes).predict_proba(features)
    np.testing.assert_allclose(served, pipeline.predict_proba(X), rtol=0, atol=TOLERANCE)


def test_gate_falls_back_to_sklearn_when_onnx_differs(params: Any) -> None:
    """The tree operator's output is float32, so ONNX never matches exactly: a zero
    tolerance must reject it."""
    pipeline, X = _fitted(params, "hist_gradient_boosting")
    onnx_bytes, record = export(pipeline, X, "binary", tolerance=0.0)
    assert onnx_bytes is None and record["runtime"] == "sklearn"
    assert record["onnx_max_abs_diff"] > 0.0 and record["onnx_checked_rows"] == len(X)


def test_onnx_handles_missing_numbers(params: Any) -> None:
    pipeline, X = _fitted(params, "linear")
    X = X.copy()
    X.loc[X.index[:20], ["customer_tenure_days", "distance_from_home_km"]] = None
    _, record = export(pipeline, X, "binary")
    assert record["runtime"] == "onnx", record


def test_hist_gradient_boosting_passes_the_gate_in_double(params: Any) -> None:
    """Float64 inputs, imputation and tree thresholds: within 1e-6, missing numbers included
    (with float32 thresholds the default 100k-row model differed by 0.0038)."""
    pipeline, X = _fitted(params, "hist_gradient_boosting")
    X = X.copy()
    X.loc[X.index[:200], ["customer_tenure_days", "distance_from_home_km"]] = None
    onnx_bytes, record = export(pipeline, X, "binary")
    assert record["runtime"] == "onnx" and onnx_bytes is not None, record
    assert 0.0 < record["onnx_max_abs_diff"] <= TOLERANCE


@pytest.mark.parametrize("model", ["linear", "random_forest", "hist_gradient_boosting", "lightgbm"])
def test_every_model_kind_exports_with_missing_numbers(params: Any, model: str) -> None:
    """Each model kind converts (a dependency bump must not silently drop the fast path);
    HistGradientBoosting keeps NaN (no imputer before it) and still matches within 1e-6."""
    pipeline, X = _fitted(params, model)
    X = X.copy()
    X.loc[X.index[:200], ["customer_tenure_days", "distance_from_home_km"]] = None
    onnx_bytes, record = export(pipeline, X, "binary")
    assert "onnx_error" not in record, record
    if model != "random_forest":  # forests compare float32 copies: checked, may fall back
        assert record["runtime"] == "onnx" and onnx_bytes is not None, record


def test_lightgbm_passes_the_gate(params: Any) -> None:
    """LightGBM through onnxmltools' converter: within the package stage's tolerance, missing
    numbers included, and the served probabilities are the model's."""
    pipeline, X = _fitted(params, "lightgbm")
    X = X.copy()
    X.loc[X.index[:200], ["customer_tenure_days", "distance_from_home_km"]] = None
    onnx_bytes, record = export(pipeline, X, "binary")
    assert record["runtime"] == "onnx" and onnx_bytes is not None, record
    features = pipeline.steps[0][1].transform(X)
    served = OnnxModel(onnx_bytes).predict_proba(features)
    np.testing.assert_allclose(served, pipeline.predict_proba(X), rtol=0, atol=TOLERANCE)


def _native(task: Any, frame: pd.DataFrame, target: str) -> tuple[Pipeline, pd.DataFrame]:
    """HistGradientBoosting with native categorical splits (the shipped default), in the
    saved inference pipeline's shape: [features (none declared) -> model]."""
    from mlops_template.config import FeaturesParams, TrainParams

    X = frame.drop(columns=target)
    params = TrainParams().with_overrides({"native_categorical": True})
    core = make_pipeline(task, params, column_roles(X))
    pipeline = Pipeline([("features", feature_transformer(FeaturesParams())), ("model", core)])
    return pipeline.fit(X, frame[target]), X


def _categorical_splits(pipeline: Pipeline) -> tuple[int, int]:
    """(categorical splits, those that send a missing value left) over every tree."""
    estimator = pipeline.steps[-1][1].steps[-1][1]
    nodes = [n for trees in estimator._predictors for tree in trees for n in tree.nodes]
    split = [n for n in nodes if n["is_categorical"] and not n["is_leaf"]]
    return len(split), sum(int(n["missing_go_to_left"]) for n in split)


def _real_table(target: str) -> tuple[Any, pd.DataFrame]:
    """Real tables plotly ships. tips: 244 restaurant bills, sex, smoker, day and time as
    strings; gapminder: life expectancy of 142 countries (a target-encoded string column) on
    5 continents, 1952-2007."""
    import plotly.data

    if target == "lifeExp":
        return "regression", plotly.data.gapminder().drop(columns=["iso_num"])
    return ("multiclass" if target == "day" else "regression"), plotly.data.tips()


@pytest.mark.parametrize("target", ["day", "tip", "lifeExp"])
def test_native_categorical_splits_export_on_a_real_table(target: str) -> None:
    """tips: 4 string classes from 3 string columns (multiclass), and the tip (regression);
    gapminder's life expectancy (regression in the tens: float32's rounding is above 1e-6
    there, the gate's tolerance scales with the values): every category split a chain of
    equality tests on the column's codes, unseen and missing values of every string column
    included (they take the missing side)."""
    task, frame = _real_table(target)
    pipeline, X = _native(task, frame, target)
    splits, missing_left = _categorical_splits(pipeline)
    assert 0 < missing_left < splits  # both kinds of chain are written
    strings = [c for c in X.columns if X[c].dtype == "str"]
    X = X.copy()
    X.loc[X.index[:20], strings] = "never seen"
    X.loc[X.index[20:40], strings] = None
    onnx_bytes, record = export(pipeline, X, task)
    assert record["runtime"] == "onnx" and onnx_bytes is not None, record
    scale = float(np.abs(pipeline.predict(X)).max()) if task == "regression" else 1.0
    assert record["onnx_tolerance"] == TOLERANCE * max(1.0, scale)
    assert record["onnx_max_abs_diff"] <= record["onnx_tolerance"]
    served = OnnxModel(onnx_bytes)
    features = pipeline.steps[0][1].transform(X)
    if task == "regression":
        served_values = served.predict(features)
        np.testing.assert_allclose(served_values, pipeline.predict(X), rtol=1e-6)
    else:
        expected = pipeline.predict_proba(X)
        np.testing.assert_allclose(served.predict_proba(features), expected, atol=TOLERANCE)
    # an unseen value is scored as a missing one, in both runtimes
    unseen = features.iloc[:20]
    missing = unseen.assign(**{c: pd.Series(None, unseen.index, dtype="str") for c in strings})
    run = served.predict if task == "regression" else served.predict_proba
    np.testing.assert_array_equal(run(unseen), run(missing))


def test_native_categorical_splits_export_with_numbers_between_strings() -> None:
    """Binary; string columns before, between and after numeric ones (the estimator moves its
    categorical columns first: each split must test the column it was learned on), NaN in
    numbers and strings."""
    rng = np.random.default_rng(3)
    rows = 3_000
    shop = pd.Series(rng.choice([f"s{i:02d}" for i in range(20)], rows), dtype="str")
    shop[rng.random(rows) < 0.05] = None
    hour = rng.integers(0, 24, rows).astype("float64")
    hour[rng.random(rows) < 0.1] = np.nan
    channel = pd.Series(rng.choice(["web", "app", "store"], rows), dtype="str")
    risky = shop.isin(["s01", "s04", "s07", "s13"]).to_numpy()
    logit = 2.0 * risky + (channel == "web").to_numpy() + np.nan_to_num(hour, nan=30) / 12 - 2
    frame = pd.DataFrame(
        {
            "channel": channel,
            "amount": rng.lognormal(3, 1, rows),
            "shop": shop,
            "hour": hour,
            "label": (logit + rng.logistic(size=rows) > 0).astype(int),
        }
    )
    pipeline, X = _native("binary", frame, "label")
    assert _categorical_splits(pipeline)[0] > 0
    X = X.copy()
    X.loc[X.index[:50], "shop"] = "opened after training"
    onnx_bytes, record = export(pipeline, X, "binary")
    assert record["runtime"] == "onnx" and onnx_bytes is not None, record
    features = pipeline.steps[0][1].transform(X)
    served = OnnxModel(onnx_bytes).predict_proba(features)
    np.testing.assert_allclose(served, pipeline.predict_proba(X), rtol=0, atol=TOLERANCE)
