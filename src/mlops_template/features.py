"""The feature function: ONE stateless function of a DataFrame, used by training AND serving.

Every output value depends only on its own row, so features computed on a batch equal
features computed row by row (tested), and serving cannot drift from training. Stateful
steps (imputation, scaling, encoding) live in the model pipeline (:mod:`mlops_template.model`),
fitted on the training split only.
"""

from __future__ import annotations

import logging
import math
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

# fdlibm's log and exp kernels (< 1 ulp). numpy's np.log1p, np.exp and np.power are
# dispatched by CPU: with AVX-512 they run Intel's SVML, elsewhere the C library, and the two
# differ by one ulp on about 5 % of values, so the feature files (and the model trained on
# them) differed between machines. These use only +, -, *, / and exact scalings (frexp,
# ldexp, rint), which give the same bits on every IEEE-754 machine, in numpy at any SIMD width
# as in Python floats (the path for a few rows: serving's one-row requests).
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10
_INV_LN2 = 1.4426950408889634
_SQRT_HALF = 0.7071067811865476
_LG = (6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
       2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
       1.479819860511658591e-01)  # fmt: skip
_EP = (1.66666666666666019037e-01, -2.77777777770155933842e-03, 6.61375632143793436117e-05,
       -1.65339022054652515390e-06, 4.13813679705723846039e-08)  # fmt: skip
_FEW = 8  # up to this many values: Python floats (about 20x less than numpy on one value)
_BLOCK = 65_536  # more: numpy in blocks that stay in the CPU cache (about 1.6x less time)


def _log_kernel(m: Any, k: Any, c: Any, u: Any) -> Any:
    """log(u + c) from u = m * 2**k with m in [sqrt(1/2), sqrt(2)) (fdlibm's log1p)."""
    f = m - 1.0  # exact: m is within a factor 2 of 1
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG[0] + w * (_LG[2] + w * (_LG[4] + w * _LG[6]))) + w * (
        _LG[1] + w * (_LG[3] + w * _LG[5])
    )
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + (k * _LN2_LO + c / u))) - f)


def _exp_kernel(x: Any, k: Any) -> Any:
    """e**x / 2**k for k = rint(x / ln 2) (fdlibm's exp)."""
    hi = x - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_EP[0] + t * (_EP[1] + t * (_EP[2] + t * (_EP[3] + t * _EP[4]))))
    return 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)


def _two_sum_one(x: Any) -> tuple[Any, Any]:
    """u, c with u + c == 1 + x exactly (Knuth's TwoSum)."""
    u = 1.0 + x
    v = u - 1.0
    return u, (1.0 - (u - v)) + (x - v)


def _log1p_float(x: float) -> float:
    if not -1.0 < x < math.inf:  # the exact special values
        return -math.inf if x == -1.0 else x if x == math.inf or x != x else math.nan
    u, c = _two_sum_one(x)
    m, k = math.frexp(u)
    if m < _SQRT_HALF:
        m, k = m + m, k - 1
    return float(_log_kernel(m, float(k), c, u))


def _exp_float(x: float) -> float:
    if not -745.2 < x < 709.782712893384:
        return 0.0 if x <= -745.2 else x + math.inf  # inf, or NaN for NaN
    k = round(x * _INV_LN2)
    h = k // 2
    return math.ldexp(math.ldexp(_exp_kernel(x, float(k)), h), k - h)


def _elementwise(scalar: Any, array: Any, x: Any) -> np.ndarray:
    x = np.asarray(x, dtype="float64")
    flat = x.ravel()
    if flat.size <= _FEW:
        return np.array([scalar(v) for v in flat.tolist()], dtype="float64").reshape(x.shape)
    out = np.empty_like(flat)
    for start in range(0, flat.size, _BLOCK):
        out[start : start + _BLOCK] = array(flat[start : start + _BLOCK])
    return out.reshape(x.shape)


def log1p(x: np.ndarray) -> np.ndarray:
    """log(1 + x), the same bits on every machine (NaN below -1, -inf at -1)."""
    return _elementwise(_log1p_float, _log1p_array, x)


def exp(x: np.ndarray) -> np.ndarray:
    """e**x, the same bits on every machine."""
    return _elementwise(_exp_float, _exp_array, x)


def _log1p_array(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        u, c = _two_sum_one(x)
        ok = (u > 0) & (u < np.inf)
        m, k = np.frexp(np.where(ok, u, 1.0))
        low = m < _SQRT_HALF
        m[low] *= 2.0
        k = (k - low).astype("float64")
        out = _log_kernel(m, k, np.where(ok, c, 0.0), np.where(ok, u, 1.0))
        if not ok.all():
            out[~ok] = np.log(u[~ok])  # -inf at 0, NaN below, inf, NaN: exact special values
    return out


def _exp_array(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):
        ok = (x > -745.2) & (x < 709.782712893384)
        xs = np.where(ok, x, 0.0)
        k = np.rint(xs * _INV_LN2)
        h = np.floor(k / 2)  # 2**k in two steps: finite where e**x is not yet infinite
        out = np.ldexp(np.ldexp(_exp_kernel(xs, k), h.astype("int32")), (k - h).astype("int32"))
        if not ok.all():
            out[~ok] = np.where(x[~ok] <= -745.2, 0.0, x[~ok] + np.inf)
    return out


def power(x: np.ndarray, exponent: float) -> np.ndarray:
    """sign(x) * |x| ** exponent, the same bits on every machine: a square root for 0.5,
    products for integers up to 16, else exp(exponent * log|x|) (within ~10 ulp)."""
    a = np.abs(np.asarray(x, dtype="float64"))
    with np.errstate(divide="ignore", invalid="ignore"):
        if exponent == 0.5:
            out = np.sqrt(a)
        elif float(exponent).is_integer() and abs(exponent) <= 16:
            out = np.ones_like(a)
            for _ in range(int(abs(exponent))):
                out = out * a
            if exponent < 0:
                out = 1.0 / out
        else:
            out = exp(exponent * _elementwise(_log_float, _log_array, a))
        return np.sign(x) * out


def _log_array(a: np.ndarray) -> np.ndarray:
    """log(a) for a >= 0 (or NaN)."""
    ok = (a > 0) & (a < np.inf)
    m, k = np.frexp(np.where(ok, a, 1.0))
    low = m < _SQRT_HALF
    m[low] *= 2.0
    out = _log_kernel(m, (k - low).astype("float64"), 0.0, 1.0)
    if not ok.all():
        out[~ok] = np.log(a[~ok])
    return out


def _log_float(a: float) -> float:
    if not 0.0 < a < math.inf:
        return -math.inf if a == 0.0 else a if a == math.inf or a != a else math.nan
    m, k = math.frexp(a)
    if m < _SQRT_HALF:
        m, k = m + m, k - 1
    return float(_log_kernel(m, float(k), 0.0, 1.0))


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
        out[f"log_{column}"] = log1p(np.clip(x, 0, None))
    for item in spec.power:
        x = _numeric(df, item.column, "power")
        out[f"{item.column}_pow_{item.exponent:g}"] = power(x, item.exponent)
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
