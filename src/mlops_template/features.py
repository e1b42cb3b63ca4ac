"""The feature function: ONE stateless function of a DataFrame, used by training AND serving.

Every output value depends only on its own row, so features computed on a batch equal
features computed row by row (tested), and serving cannot drift from training. Stateful
steps (imputation, scaling, encoding) live in the model pipeline (:mod:`mlops_template.model`),
fitted on the training split only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from mlops_template.config import FeaturesParams
from mlops_template.errors import ConfigError, DataError

if TYPE_CHECKING:
    from sklearn.preprocessing import FunctionTransformer

log = logging.getLogger(__name__)

_AGGREGATES = {"sum": "sum", "mean": "mean", "min": "min", "max": "max", "std": "std"}


class _Arrays(dict[str, np.ndarray]):
    """Named numpy columns where the feature code expects a DataFrame (serving)."""

    @property
    def columns(self) -> list[str]:
        return list(self)


Table: TypeAlias = "pd.DataFrame | _Arrays"


def _require(df: Table, column: str, used_by: str) -> Any:
    if column not in df.columns:
        raise DataError(f"features.{used_by}: input column {column!r} is missing")
    return df[column]


def _numeric(df: Table, column: str, used_by: str) -> np.ndarray:
    """The column as float64 (NaN for missing). Features are computed on numpy arrays: pandas
    costs tens of µs per operation, which dominates a 1-row request in serving."""
    s = _require(df, column, used_by)
    try:
        if isinstance(s, np.ndarray):  # serving's arrays: missing numbers are NaN already
            return s.astype("float64")
        return s.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        raise DataError(
            f"features.{used_by}: column {column!r} must be numeric, got dtype {s.dtype}"
        ) from None


def _datetimes(raw: pd.Series | np.ndarray) -> np.ndarray:
    """Naive datetime64 values (tz-aware input keeps its local wall time, as ``.dt`` does)."""
    if isinstance(raw, np.ndarray) and raw.dtype.kind == "M":
        return raw
    if raw.dtype.kind != "M":
        raw = pd.to_datetime(raw, errors="coerce")
        if getattr(raw.dtype, "tz", None) is not None:
            raw = raw.dt.tz_localize(None)
    return raw.to_numpy()


def _datetime_parts(df: Table, spec: FeaturesParams, out: dict[str, Any]) -> None:
    """Calendar parts as float64 (NaN for missing); numpy's datetime casts floor, so times
    before 1970 get the right day and hour."""
    for item in spec.datetime:
        ts = _datetimes(_require(df, item.column, "datetime"))
        missing = np.isnat(ts)
        days = ts.astype("datetime64[D]")
        hour = (ts.astype("datetime64[h]") - days).astype("int64")
        weekday = (days.view("int64") + 3) % 7  # 1970-01-01 was a Thursday (Monday = 0)
        months = days.astype("datetime64[M]")
        parts = {
            "hour": hour,
            "weekday": weekday,
            "day": (days - months).astype("int64") + 1,
            "month": months.view("int64") % 12 + 1,
            "is_weekend": weekday >= 5,
            "is_night": hour < 6,
        }
        for part in item.parts:
            values = parts[part].astype("float64")
            values[missing] = np.nan
            out[f"{item.column}_{part}"] = values


def _transforms(df: Table, spec: FeaturesParams, out: dict[str, Any]) -> None:
    for column in spec.log:
        x = _numeric(df, column, "log")
        out[f"log_{column}"] = np.log1p(np.clip(x, 0, None))
    for power in spec.power:
        x = _numeric(df, power.column, "power")
        out[f"{power.column}_pow_{power.exponent:g}"] = np.sign(x) * np.abs(x) ** power.exponent
    for bins in spec.bins:
        values = _numeric(df, bins.column, "bins")
        codes = np.digitize(values, bins.edges).astype("float64")
        codes[np.isnan(values)] = np.nan
        out[bins.name or f"{bins.column}_bin"] = codes
    for ratio in spec.ratios:
        num = _numeric(df, ratio.numerator, "ratios")
        den = _numeric(df, ratio.denominator, "ratios")
        with np.errstate(divide="ignore", invalid="ignore"):
            out[ratio.name] = num / np.where(den != 0, den, np.nan)
    for agg in spec.aggregates:
        block = pd.DataFrame({c: _numeric(df, c, "aggregates") for c in agg.columns})
        out[agg.name] = getattr(block, _AGGREGATES[agg.func])(axis=1).to_numpy()


def _column(s: pd.Series) -> Any:
    """A kept column, copied only when its type must change: booleans become 0/1 (int8),
    nullable booleans 0/1/NaN, strings pandas' "str" (NaN for missing)."""
    if s.dtype == bool:
        return s.to_numpy(dtype="int8")
    if isinstance(s.dtype, pd.BooleanDtype):
        return s.to_numpy(dtype="float64", na_value=np.nan)
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.na_value is pd.NA:
        # the contract's coercion gives pd.NA strings, Parquet gives back NaN ones (pandas'
        # "str"): the model sees the latter everywhere, whatever path the rows came by
        return s.astype("str").array
    return s.array


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
    drop = set(spec.drop)
    columns = {c: _column(df[c]) for c in df.columns if c not in drop}
    columns |= {c: v for c, v in new.items() if c not in drop}
    return pd.DataFrame(columns, index=df.index, copy=False)


def feature_columns(columns: Mapping[str, np.ndarray], spec: FeaturesParams) -> dict[str, Any]:
    """:func:`build_features` on plain numpy arrays (the service: one request's columns, built
    from validated values: numbers float64 with NaN for missing, strings as objects), without
    pandas (about 10x less on one row). The same feature code runs; only the pass-through
    differs: booleans become 0/1 (int8), other columns are kept as they are. Equal to
    :func:`build_features` on the same rows (tests/unit/test_features_arrays.py)."""
    new: dict[str, Any] = {}
    arrays = _Arrays(columns)
    _datetime_parts(arrays, spec, new)
    _transforms(arrays, spec, new)
    drop = set(spec.drop)
    out = {c: v.astype("int8") if v.dtype == bool else v for c, v in columns.items()}
    return {c: v for c, v in (out | new).items() if c not in drop}


def feature_transformer(spec: FeaturesParams) -> FunctionTransformer:
    """The feature function as the first step of the saved inference pipeline."""
    from sklearn.preprocessing import FunctionTransformer

    return FunctionTransformer(
        build_features, kw_args={"spec": spec.model_dump(mode="json")}, validate=False
    )


def feature_recipe(step: Any) -> dict[str, Any] | None:
    """The spec of a feature step made by :func:`feature_transformer` (None for any other
    step): what rebuilds it from this code instead of from a pickle. A whole inference
    pipeline [features -> model] is read at its first step: the one way to read the recipe
    back from a trained model."""
    steps = getattr(step, "steps", None)
    if steps:
        step = steps[0][1]
    if getattr(step, "func", None) is not build_features:
        return None
    return dict(step.kw_args["spec"])


def derived_columns(spec: FeaturesParams) -> list[str]:
    """The columns the feature function adds that combine inputs or decompose a timestamp
    (datetime parts, ratios, aggregates), named as :func:`build_features` names them, less
    the dropped ones."""
    names = [f"{d.column}_{part}" for d in spec.datetime for part in d.parts]
    names += [r.name for r in spec.ratios] + [a.name for a in spec.aggregates]
    return [n for n in names if n not in spec.drop]
