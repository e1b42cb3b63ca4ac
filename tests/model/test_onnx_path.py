"""The ONNX gate: onnxruntime serves only when it matches scikit-learn within 1e-6."""

from __future__ import annotations

from typing import Any

import numpy as np
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
