"""Optional ONNX runtime path for the model part (preprocess + estimator) of the pipeline.

The feature function stays Python (``features.build_features``, unchanged); only the fitted
``model`` step after it is converted with skl2onnx. The converted graph is used for serving only
if its outputs match scikit-learn's on the whole test split within ``TOLERANCE`` (for a
regression: ``TOLERANCE`` times the largest predicted magnitude, at least 1, as the tree
operators of ai.onnx.ml return float32, whose rounding grows with the value); otherwise the
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


def _convert_imputer(scope: Any, operator: Any, container: Any) -> None:
    """SimpleImputer in float64: ``Where(IsNaN(x), statistics, x)``. skl2onnx's own converter
    emits ai.onnx.ml ``Imputer`` with float32 fill values, which onnxruntime runs in float32
    only; a rounded median can fall on the other side of a tree threshold."""
    from onnx.helper import np_dtype_to_tensor_dtype
    from skl2onnx.common.data_types import StringTensorType, guess_numpy_type
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    imputer = operator.raw_operator
    if isinstance(operator.inputs[0].type, StringTensorType):
        convert_sklearn_imputer(scope, operator, container)
        return
    x = concatenate_variables(scope, operator.inputs, container)
    dtype = np.dtype(guess_numpy_type(operator.inputs[0].type))
    fill = scope.get_unique_variable_name("fill")
    container.add_initializer(
        fill,
        np_dtype_to_tensor_dtype(dtype),
        [len(imputer.statistics_)],
        imputer.statistics_.astype(dtype).tolist(),
    )
    isnan = scope.get_unique_variable_name("isnan")
    container.add_node("IsNaN", [x], [isnan], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node(
        "Where",
        [isnan, fill, x],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Where"),
    )


def _as_float_shape(operator: Any) -> None:
    """:class:`~mlops_template.model.AsFloat`: its inputs side by side, as doubles."""
    from skl2onnx.common.data_types import DoubleTensorType

    rows = operator.inputs[0].get_first_dimension()
    widths = [v.type.shape[1] for v in operator.inputs]
    width = None if None in widths else sum(widths)
    operator.outputs[0].type = DoubleTensorType([rows, width])


def _convert_as_float(scope: Any, operator: Any, container: Any) -> None:
    """:class:`~mlops_template.model.AsFloat` in ONNX: concatenate, cast to double (missing
    numbers are NaN already: :func:`feeds`)."""
    import onnx
    from skl2onnx.operator_converters.common import concatenate_variables

    x = concatenate_variables(scope, operator.inputs, container)
    container.add_node(
        "Cast",
        [x],
        [operator.outputs[0].full_name],
        name=scope.get_unique_operator_name("Cast"),
        to=onnx.TensorProto.DOUBLE,
    )


_TREE_DOUBLES = ("nodes_values", "nodes_hitrates", "base_values", "class_weights", "target_weights")


def _double_trees(converter: Any) -> Any:
    """A tree-ensemble converter that keeps thresholds, leaf values and base values in float64.

    skl2onnx 1.20 computes them in float64 for float64 inputs but writes them as float32
    attributes; ai.onnx.ml opset 3 has ``*_as_tensor`` attributes for doubles, and onnxruntime
    then compares and sums in float64. The operator's own output is float32 (the spec), so it
    is cast to the float64 output skl2onnx declared (|error| < 1e-7 for probabilities)."""
    import onnx
    from skl2onnx.common.data_types import guess_numpy_type

    def convert(scope: Any, operator: Any, container: Any) -> None:
        if guess_numpy_type(operator.inputs[0].type) != np.float64:
            converter(scope, operator, container)
            return
        add_node = container.add_node

        def add_tree_node(op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
            if not op_type.startswith("TreeEnsemble"):
                return add_node(op_type, inputs, outputs, *args, **attrs)
            for key in _TREE_DOUBLES:
                if key in attrs:
                    values = np.asarray(attrs.pop(key), dtype="float64")
                    attrs[f"{key}_as_tensor"] = onnx.numpy_helper.from_array(values)
            outputs = [outputs] if isinstance(outputs, str) else list(outputs)
            as_float = scope.get_unique_variable_name("float32_output")
            add_node(op_type, inputs, [*outputs[:-1], as_float], *args, **attrs)
            return add_node(
                "Cast",
                [as_float],
                [outputs[-1]],
                name=scope.get_unique_operator_name("Cast"),
                to=onnx.TensorProto.DOUBLE,
            )

        container.add_node = add_tree_node
        try:
            converter(scope, operator, container, op_version=3)
        finally:
            del container.add_node

    return convert


def _in_bitset(bits: np.ndarray, code: int) -> bool:
    return bool((int(bits[code // 32]) >> (code % 32)) & 1)


def _categorical_tree_writer(estimator: Any) -> Any:
    """skl2onnx's writer of one HistGradientBoosting tree, for trees with native categorical
    splits (``train.hist_gradient_boosting.native_categorical``), which skl2onnx 1.20 writes as
    numeric thresholds on the wrong columns.

    With categorical features the estimator re-encodes its input (its ``_preprocessor``: the
    categorical columns first, as codes of the values it saw in training) and the trees split
    on that layout. This writer maps each node back to the model step's input column, and turns
    a categorical split ("code in the left bitset") into a chain of ``BRANCH_EQ`` nodes on the
    original values: the values on the side a missing value does *not* take are listed, every
    other value (missing, or never seen in training) falls through to the missing side, as
    scikit-learn's predictor routes them. The chain's nodes share their target subtree;
    onnxruntime fuses such chains into one set-membership test (microsoft/onnxruntime#21222;
    LightGBM's categorical splits reach ONNX the same way, through onnxmltools)."""
    from skl2onnx.common import tree_ensemble

    mask = estimator.is_categorical_
    column = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)]).tolist()
    encoder = estimator._preprocessor.named_transformers_["encoder"]
    values = [np.asarray(c, dtype="float64") for c in encoder.categories_]
    values = [v[~np.isnan(v)] for v in values]  # the codes 0..n-1 of the values seen

    def write(
        attr_pairs: dict[str, Any],
        is_classifier: bool,
        tree: Any,
        tree_id: int,
        tree_weight: float,
        weight_id_bias: int,
        leaf_weights_are_counts: bool,
        adjust_threshold_for_sklearn: bool = False,
        dtype: Any = None,
    ) -> None:
        head = (attr_pairs, is_classifier, tree_id, tree_weight)
        tail = (weight_id_bias, leaf_weights_are_counts)
        options = {"adjust_threshold_for_sklearn": adjust_threshold_for_sklearn, "dtype": dtype}

        # node: id, feature, mode, value, true child, false child, value of the node
        def add(*node: Any, missing: int = 0) -> None:
            tree_ensemble.add_node(
                *head, *node, *tail, **options, nodes_missing_value_tracks_true=missing
            )

        next_id = len(tree.nodes)
        for i, node in enumerate(tree.nodes):
            if node["is_leaf"]:
                add(i, 0, "LEAF", 0.0, 0, 0, node["value"])
                continue
            f, left, right = int(node["feature_idx"]), int(node["left"]), int(node["right"])
            missing_left = int(node["missing_go_to_left"])
            branch = (column[f], "BRANCH_LEQ", node["num_threshold"], left, right, node["value"])
            if not node["is_categorical"]:
                add(i, *branch, missing=missing_left)
                continue
            bits = tree.raw_left_cat_bitsets[node["bitset_idx"]]
            listed = [
                v for code, v in enumerate(values[f]) if _in_bitset(bits, code) != missing_left
            ]
            target, fallthrough = (right, left) if missing_left else (left, right)
            listed = listed or [np.nan]  # no value on that side: a test that never holds
            ids = [i, *range(next_id, next_id + len(listed) - 1)]
            next_id += len(listed) - 1
            for k, (node_id, value) in enumerate(zip(ids, listed, strict=True)):
                false = ids[k + 1] if k + 1 < len(ids) else fallthrough
                add(node_id, column[f], "BRANCH_EQ", float(value), target, false, node["value"])

    return write


@contextmanager
def _patched_skl2onnx(estimator: Any = None) -> Iterator[None]:
    """While converting: (1) skl2onnx 1.20 passes a Python bool for leaf nodes of
    HistGradientBoosting trees, which onnx rejects (``ints`` attribute): coerce it to 0/1;
    (2) numeric SimpleImputer in float64 (:func:`_convert_imputer`); (3) HistGradientBoosting
    trees in float64 (:func:`_double_trees`); (4) their native categorical splits, when
    ``estimator`` has them (:func:`_categorical_tree_writer`)."""
    from skl2onnx.common import _registration, tree_ensemble
    from skl2onnx.operator_converters import random_forest
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
        convert_sklearn_random_forest_regressor_converter,
    )

    original = tree_ensemble.add_node
    writer = random_forest.add_tree_to_attribute_pairs_hist_gradient_boosting
    if getattr(estimator, "is_categorical_", None) is not None:
        categorical = _categorical_tree_writer(estimator)
        random_forest.add_tree_to_attribute_pairs_hist_gradient_boosting = categorical
    pool = _registration._converter_pool
    saved = dict(pool)
    trees = {
        "SklearnHistGradientBoostingClassifier": convert_sklearn_random_forest_classifier,
        "SklearnHistGradientBoostingRegressor": convert_sklearn_random_forest_regressor_converter,
    }

    def add_node(*args: Any, nodes_missing_value_tracks_true: Any = 0, **kwargs: Any) -> Any:
        missing = int(nodes_missing_value_tracks_true)
        return original(*args, nodes_missing_value_tracks_true=missing, **kwargs)

    tree_ensemble.add_node = add_node
    from skl2onnx import update_registered_converter

    from mlops_template.model import AsFloat

    update_registered_converter(AsFloat, "MlopsAsFloat", _as_float_shape, _convert_as_float)
    pool["SklearnSimpleImputer"] = _registration.RegisteredConverter(_convert_imputer, None)
    for name, converter in trees.items():
        options = pool[name].get_allowed_options()
        pool[name] = _registration.RegisteredConverter(_double_trees(converter), options)
    try:
        yield
    finally:
        tree_ensemble.add_node = original
        random_forest.add_tree_to_attribute_pairs_hist_gradient_boosting = writer
        pool.update(saved)


def _float_outputs_cast(converter: Any) -> Any:
    """onnxmltools' LightGBM converter computes in float32 whatever the input type, while
    skl2onnx declares float64 outputs for float64 inputs: let it write float32 outputs, then
    cast them to the declared doubles (the label output stays int64)."""
    import onnx
    from skl2onnx.common.data_types import DoubleTensorType

    def convert(scope: Any, operator: Any, container: Any) -> None:
        converter(scope, operator, container)
        doubles = {o.full_name for o in operator.outputs if isinstance(o.type, DoubleTensorType)}
        renamed: dict[str, str] = {}
        for node in container.nodes:
            for i, name in enumerate(node.output):
                if name in doubles:
                    node.output[i] = renamed[name] = scope.get_unique_variable_name(
                        f"{name}_float32"
                    )
        for name, float_name in renamed.items():
            container._added_names_.discard(name)  # now produced by the Cast below
            container.add_node(
                "Cast",
                [float_name],
                [name],
                name=scope.get_unique_operator_name("Cast"),
                to=onnx.TensorProto.DOUBLE,
            )

    return convert


def _lightgbm_in_double(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter with the trees' thresholds and leaf values in float64
    (``*_as_tensor``, ai.onnx.ml opset 3), as LightGBM compares and sums them. With its float32
    thresholds a value on a threshold (81.67 / 2 = 40.835 in the demo) took the other branch:
    probabilities off by 0.1 on 3 of 15,000 rows."""
    import onnx
    from onnxmltools.convert.lightgbm.operator_converters import LightGbm

    original_modify, add_node = LightGbm.modify_tree_for_rule_in_set, container.add_node

    def modify(*args: Any, use_float: bool = False, **kwargs: Any) -> Any:
        return original_modify(*args, use_float=False, **kwargs)

    def add_tree_node(op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> Any:
        if op_type.startswith("TreeEnsemble"):
            for key in _TREE_DOUBLES:
                if key in attrs:
                    values = np.asarray(attrs.pop(key), dtype="float64")
                    attrs[f"{key}_as_tensor"] = onnx.numpy_helper.from_array(values)
            attrs["op_version"] = 3
        return add_node(op_type, inputs, outputs, *args, **attrs)

    LightGbm.modify_tree_for_rule_in_set = modify
    container.add_node = add_tree_node
    try:
        LightGbm.convert_lightgbm(scope, operator, container)
    finally:
        LightGbm.modify_tree_for_rule_in_set = original_modify
        del container.add_node


def _register_lightgbm(estimator: Any) -> None:
    """Teach skl2onnx LightGBM's estimators (onnxmltools' converters), when the model is one."""
    if not type(estimator).__module__.startswith("lightgbm"):
        return
    from lightgbm import LGBMClassifier, LGBMRegressor
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        calculate_linear_classifier_output_shapes,
        _float_outputs_cast(_lightgbm_in_double),
        options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        _float_outputs_cast(_lightgbm_in_double),
        options={"split": None},
    )


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
    """skl2onnx conversion with one input per feature column (float64 or string).

    Float64 inputs with ai.onnx.ml opset 3 keep the trees' thresholds and leaf values in
    double precision (``*_as_tensor`` attributes), as scikit-learn computes them; float32
    inputs move rows that lie near a threshold to the other branch."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        StringTensorType,
    )

    estimator = core.steps[-1][1]
    # scikit-learn's forests compare float32 copies of the inputs: give them float32
    number = FloatTensorType if hasattr(estimator, "estimators_") else DoubleTensorType
    types = [
        (c, (number if _is_numeric(features[c]) else StringTensorType)([None, 1]))
        for c in features.columns
    ]
    core = _string_imputers(core)
    estimator = core.steps[-1][1]
    _register_lightgbm(estimator)
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    with _patched_skl2onnx(estimator):
        onx = convert_sklearn(
            core,
            initial_types=types,
            target_opset={"": 17, "ai.onnx.ml": 3},
            options=options,
        )
    return bytes(onx.SerializeToString())


def _array_feed(values: np.ndarray, number: str) -> np.ndarray:
    """One numpy column (the service's arrays, :func:`~mlops_template.features.feature_columns`)
    as :func:`feeds` makes it from a DataFrame column."""
    if values.dtype.kind in "biuf":
        return values.astype(number).reshape(-1, 1)
    text = ["" if v is None or v != v else str(v) for v in values]  # v != v: NaN
    return np.array(text, dtype=object).reshape(-1, 1)


def feeds(features: pd.DataFrame | dict[str, Any], number: str = "float64") -> dict[str, Any]:
    """Column arrays for the ONNX graph: numbers as ``number`` (NaN for missing), strings as
    objects ("" for missing). ``features``: a DataFrame or named numpy arrays."""
    out: dict[str, np.ndarray] = {}
    for c, s in features.items():
        if isinstance(s, np.ndarray):
            out[str(c)] = _array_feed(s, number)
        elif _is_numeric(s):
            out[str(c)] = s.to_numpy(dtype=number, na_value=np.nan).reshape(-1, 1)
        else:
            values = s.to_numpy(dtype=object, na_value="")
            out[str(c)] = np.array([str(v) for v in values], dtype=object).reshape(-1, 1)
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
        types = {i.type for i in self.session.get_inputs()}
        self.number = "float32" if "tensor(float)" in types else "float64"

    def predict_proba(self, features: pd.DataFrame | dict[str, Any]) -> np.ndarray:
        (proba,) = self.session.run([self.outputs[-1]], feeds(features, self.number))
        return np.asarray(proba, dtype="float64")

    def predict(self, features: pd.DataFrame | dict[str, Any]) -> np.ndarray:
        (values,) = self.session.run([self.outputs[0]], feeds(features, self.number))
        return np.asarray(values, dtype="float64").reshape(-1)


def _outputs(model: Any, features: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return np.asarray(model.predict(features), dtype="float64")
    return np.asarray(model.predict_proba(features), dtype="float64")


def allowed_difference(task: str, expected: Any, tolerance: float = TOLERANCE) -> float:
    """How far the ONNX path may be from scikit-learn's outputs ``expected``: ``tolerance``;
    for a regression ``tolerance`` times the largest predicted magnitude, at least 1 (the tree
    operators return float32: a house price of 180,000 comes back rounded to 1/64)."""
    if task != "regression":
        return tolerance
    return tolerance * max(1.0, float(np.max(np.abs(np.asarray(expected, dtype="float64")))))


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
    expected = _outputs(core, features, task)
    diff = float(np.max(np.abs(onnx_out - expected)))
    tolerance = allowed_difference(task, expected, tolerance)
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
