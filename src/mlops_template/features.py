"""The feature function: ONE stateless function of a DataFrame, used by training AND serving.

Every output value depends only on its own row, so features computed on a batch equal
features computed row by row (tested), and serving cannot drift from training. Stateful
steps (imputation, scaling, encoding) live in the model pipeline (:mod:`mlops_template.train`),
fitted on the training split only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_template import io, paths
from mlops_template.config import FeaturesParams, Params
from mlops_template.errors import ConfigError, DataError

if TYPE_CHECKING:
    from sklearn.preprocessing import FunctionTransformer

log = logging.getLogger(__name__)

_AGGREGATES = {"sum": "sum", "mean": "mean", "min": "min", "max": "max", "std": "std"}


def _require(df: pd.DataFrame, column: str, used_by: str) -> pd.Series:
    if column not in df.columns:
        raise DataError(f"features.{used_by}: input column {column!r} is missing")
    return df[column]


def _numeric(df: pd.DataFrame, column: str, used_by: str) -> pd.Series:
    s = _require(df, column, used_by)
    if s.dtype == bool:
        return s.astype("float64")
    try:
        return s.astype("float64")
    except (TypeError, ValueError):
        raise DataError(
            f"features.{used_by}: column {column!r} must be numeric, got dtype {s.dtype}"
        ) from None


def _datetime_parts(df: pd.DataFrame, spec: FeaturesParams, out: dict[str, Any]) -> None:
    for item in spec.datetime:
        raw = _require(df, item.column, "datetime")
        ts = pd.to_datetime(raw, errors="coerce")
        for part in item.parts:
            name = f"{item.column}_{part}"
            if part == "hour":
                out[name] = ts.dt.hour
            elif part == "weekday":
                out[name] = ts.dt.weekday
            elif part == "day":
                out[name] = ts.dt.day
            elif part == "month":
                out[name] = ts.dt.month
            elif part == "is_weekend":
                out[name] = (ts.dt.weekday >= 5).astype("float64").where(ts.notna())
            elif part == "is_night":
                out[name] = (ts.dt.hour < 6).astype("float64").where(ts.notna())


def _transforms(df: pd.DataFrame, spec: FeaturesParams, out: dict[str, Any]) -> None:
    for column in spec.log:
        x = _numeric(df, column, "log")
        out[f"log_{column}"] = np.log1p(x.clip(lower=0))
    for power in spec.power:
        x = _numeric(df, power.column, "power")
        out[f"{power.column}_pow_{power.exponent:g}"] = np.sign(x) * np.abs(x) ** power.exponent
    for bins in spec.bins:
        values = _numeric(df, bins.column, "bins").to_numpy()
        codes = np.digitize(values, bins.edges).astype("float64")
        codes[np.isnan(values)] = np.nan
        out[bins.name or f"{bins.column}_bin"] = codes
    for ratio in spec.ratios:
        num = _numeric(df, ratio.numerator, "ratios")
        den = _numeric(df, ratio.denominator, "ratios")
        out[ratio.name] = (num / den.where(den != 0)).astype("float64")
    for agg in spec.aggregates:
        block = pd.concat([_numeric(df, c, "aggregates") for c in agg.columns], axis=1)
        out[agg.name] = getattr(block, _AGGREGATES[agg.func])(axis=1)


def build_features(df: pd.DataFrame, spec: FeaturesParams | dict[str, Any]) -> pd.DataFrame:
    """Add the declared features to ``df`` and drop ``spec.drop``; booleans become 0/1.

    Columns that are not mentioned pass through unchanged (the target included).
    """
    if isinstance(spec, dict):
        spec = FeaturesParams.model_validate(spec)
    new: dict[str, Any] = {}
    _datetime_parts(df, spec, new)
    _transforms(df, spec, new)
    clash = sorted(set(new) & set(df.columns))
    if clash:
        raise ConfigError(f"features: new feature names clash with input columns: {clash}")
    missing_drop = [c for c in spec.drop if c not in df.columns and c not in new]
    if missing_drop:
        raise DataError(f"features.drop: columns {missing_drop} are not in the data")
    kept = df.drop(columns=spec.drop, errors="ignore")
    result = pd.concat(
        [kept, pd.DataFrame(new, index=df.index).drop(columns=spec.drop, errors="ignore")],
        axis=1,
    )
    bools = [c for c in result.columns if result[c].dtype == bool]
    if bools:
        result[bools] = result[bools].astype("int8")
    return result


def feature_transformer(spec: FeaturesParams) -> FunctionTransformer:
    """The feature function as the first step of the saved inference pipeline."""
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(
        build_features, kw_args={"spec": spec.model_dump(mode="json")}, validate=False
    )


def run(params: Params) -> None:
    """Entry point of the `features` stage (``mlops stage features``)."""
    for source, target in (
        (paths.TRAIN_SPLIT, paths.TRAIN_FEATURES),
        (paths.TEST_SPLIT, paths.TEST_FEATURES),
    ):
        frame = build_features(pd.read_parquet(source), params.features)
        io.write_parquet(frame, target)
        log.info("features: %s -> %s (%d columns)", source, target, frame.shape[1])
