"""Optional ONNX runtime path for the model part (preprocess + estimator) of the pipeline.

The feature function stays Python (``features.build_features``, unchanged); only the fitted
``model`` step after it is converted with skl2onnx. The converted graph is used for serving only
if its outputs match scikit-learn's on the whole test split within ``TOLERANCE``; otherwise the
service keeps scikit-learn (the decision and the measured difference are recorded by the
``package`` stage in reports/package.json).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

TOLERANCE = 1e-6


def split_pipeline(model: Any) -> tuple[Any, Any]:
    """(feature step, model step) of the saved pipeline [features -> model]."""
    return model.steps[0][1], model.steps[-1][1]


def _is_numeric(series: pd.Series) -> bool:
    return series.dtype.kind in "biuf" or str(series.dtype) in ("Int64", "boolean", "Float64")


@contextmanager
def _patched_skl2onnx() -> Iterator[None]:
    """skl2onnx 1.20 passes a Python bool for leaf nodes of HistGradientBoosting trees, which
    onnx rejects (``ints`` attribute); coerce it to 0/1 while converting."""
    from skl2onnx.common import tree_ensemble

    original = tree_ensemble.add_node

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        missing = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=missing, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _string_imputers(core: Any) -> Any:
    """A copy of ``core`` whose string-column imputers treat "" as missing (skl2onnx cannot
    convert an imputer of strings whose missing value is NaN); ``feeds`` maps NaN to ""."""
    core = copy.deepcopy(core)
    preprocess = core.steps[0][1]
    for _, transformer, _ in getattr(preprocess, "transformers_", []):
        steps = getattr(transformer, "named_steps", {})
        imputer = steps.get("impute")
        fit_dtype = getattr(imputer, "_fit_dtype", None)
        if imputer is not None and fit_dtype is not None and fit_dtype.kind == "O":
            imputer.missing_values = ""
    return core


def convert(core: Any, features: pd.DataFrame) -> bytes:
    """skl2onnx conversion with one input per feature column (float or string)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [
        (c, FloatTensorType([None, 1]) if _is_numeric(features[c]) else StringTensorType([None, 1]))
        for c in features.columns
    ]
    core = _string_imputers(core)
    estimator = core.steps[-1][1]
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    with _patched_skl2onnx():
        onx = convert_sklearn(
            core,
            initial_types=types,
            target_opset={"": 17, "ai.onnx.ml": 3},
            options=options,
        )
    return bytes(onx.SerializeToString())


def feeds(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Column arrays for the ONNX graph: numbers as float32 (NaN for missing), strings as
    objects ("" for missing)."""
    out: dict[str, np.ndarray] = {}
    for c in features.columns:
        s = features[c]
        if _is_numeric(s):
            out[c] = s.to_numpy(dtype="float32", na_value=np.nan).reshape(-1, 1)
        else:
            values = s.astype(object).where(s.notna(), "").to_numpy()
            out[c] = np.array([str(v) for v in values], dtype=object).reshape(-1, 1)
    return out


class OnnxModel:
    """onnxruntime session (one thread) with the same outputs as ``train.model_output``'s
    inputs: class probabilities (classification) or values (regression)."""

    def __init__(self, onnx_bytes: bytes) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        (proba,) = self.session.run([self.outputs[-1]], feeds(features))
        return np.asarray(proba, dtype="float64")

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        (values,) = self.session.run([self.outputs[0]], feeds(features))
        return np.asarray(values, dtype="float64").reshape(-1)


def _outputs(model: Any, features: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return np.asarray(model.predict(features), dtype="float64")
    return np.asarray(model.predict_proba(features), dtype="float64")


def export(
    model: Any, X_test: pd.DataFrame, task: str, tolerance: float = TOLERANCE
) -> tuple[bytes | None, dict[str, Any]]:
    """Convert and check on ``X_test``; returns (ONNX bytes or None, decision record)."""
    feature_step, core = split_pipeline(model)
    features = feature_step.transform(X_test)
    try:
        onnx_bytes = convert(core, features)
        onnx_out = _outputs(OnnxModel(onnx_bytes), features, task)
    except Exception as err:  # any converter/runtime gap means: serve with scikit-learn
        log.warning("onnx: conversion failed (%s: %s); serving with scikit-learn", type(err), err)
        return None, {"runtime": "sklearn", "onnx_error": f"{type(err).__name__}: {err}"}
    diff = float(np.max(np.abs(onnx_out - _outputs(core, features, task))))
    record: dict[str, Any] = {
        "onnx_max_abs_diff": diff,
        "onnx_tolerance": tolerance,
        "onnx_checked_rows": len(X_test),
    }
    if diff <= tolerance:
        log.info(
            "onnx: max abs diff %.3g <= %g on %d rows: serving with onnxruntime",
            diff,
            tolerance,
            len(X_test),
        )
        return onnx_bytes, record | {"runtime": "onnx"}
    log.warning(
        "onnx: max abs diff %.3g > %g on %d test rows: serving with scikit-learn instead",
        diff,
        tolerance,
        len(X_test),
    )
    return None, record | {"runtime": "sklearn"}
