"""The service's request schema, derived from the data contract.

One pydantic field per input column (type, ge/le, Literal categories, required unless
nullable), extra fields forbidden, floats finite and integers within int64 (what the model's
columns hold), so the OpenAPI document describes exactly what the model accepts and bad
requests fail with a 4xx naming the field. :func:`bounded_error` keeps error bodies small.

Types are strict, the same in pydantic's JSON mode (BentoML's path) and Python mode (the fast
path, after orjson): an int is a JSON integer (not ``1.0``, ``"1"`` or ``true``), a float a
JSON number (an integer is a number), a bool ``true``/``false``, a string or category a JSON
string. The one conversion kept: a datetime is an ISO 8601 string (a date, or a date and time
with an optional UTC offset, converted to naive UTC as in training data); a number or a
numeric string (pydantic's Unix time) is refused.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Annotated, Any, Literal

import numpy as np
import orjson
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    create_model,
)
from pydantic_core import PydanticCustomError

from mlops_template.contract import ColumnSpec, Contract

_EARLIEST = dt.datetime(1678, 1, 1)
_LATEST = dt.datetime(2262, 1, 1)
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_ERRORS = 20  # errors listed in a 4xx body
MAX_TEXT = 100  # characters kept of a value (a field name, an input) in a 4xx body
MAX_MESSAGE = 300  # ... of a message


def _naive_utc(value: dt.datetime) -> dt.datetime:
    """Aware datetimes become naive UTC (as in training data); pandas' range is enforced."""
    if value.tzinfo is not None:
        try:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError:  # e.g. 0001-01-01 with a positive offset
            raise ValueError("datetime out of range after conversion to UTC") from None
    if not _EARLIEST <= value < _LATEST:
        raise ValueError(f"datetime must be between {_EARLIEST:%Y-%m-%d} and {_LATEST:%Y-%m-%d}")
    return value


def _iso_string(value: Any) -> Any:
    """A datetime arrives as an ISO 8601 string: pydantic's lax mode would also read a number,
    or a string of digits, as Unix time."""
    if isinstance(value, str) and value[4:5] == "-" and value[:4].isdigit():
        return value  # pydantic parses the rest
    raise PydanticCustomError(
        "datetime_type", "Input should be an ISO 8601 date or datetime string"
    )


def _same_type(categories: tuple[Any, ...]) -> Any:
    """A category's JSON type is the contract's: Literal[1] alone also takes ``1.0`` and
    ``true`` (equal in Python), even in strict mode."""
    types = {type(c) for c in categories}

    def check(value: Any) -> Any:
        if type(value) not in types:
            expected = " or ".join(sorted(t.__name__ for t in types))
            raise PydanticCustomError("literal_error", f"Input should be a category ({expected})")
        return value

    return check


_PY_TYPE: dict[str, Any] = {
    "int": Annotated[int, Strict()],
    "float": Annotated[float, Strict()],
    "bool": Annotated[bool, Strict()],
    "str": Annotated[str, Strict()],
    "datetime": Annotated[dt.datetime, BeforeValidator(_iso_string), AfterValidator(_naive_utc)],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=False)


def _field(spec: ColumnSpec) -> tuple[Any, Any]:
    if spec.dtype == "category":
        categories = tuple(spec.categories or [])
        annotation: Any = Literal[categories]
        if not all(isinstance(c, str) for c in categories):  # strings: strict already
            annotation = Annotated[annotation, BeforeValidator(_same_type(categories))]
    else:
        annotation = _PY_TYPE[spec.dtype]
    if spec.nullable:
        annotation = annotation | None
    low, high = spec.min, spec.max
    if spec.dtype == "int":  # the model's int64 columns: a larger JSON integer is a 400, not a 500
        low = INT64_MIN if low is None else max(low, INT64_MIN)
        high = INT64_MAX if high is None else min(high, INT64_MAX)
    field = Field(
        None if spec.nullable else ...,
        ge=low,
        le=high,
        description=spec.description or None,
    )
    return annotation, field


def record_model(contract: Contract) -> type[BaseModel]:
    """A pydantic model for one input record (every contract column but the target)."""
    fields = {
        name: _field(spec) for name, spec in contract.columns.items() if name != contract.target
    }
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        "Record", __base__=_Strict, **fields
    )
    return model


def typed_column(values: list[Any], dtype: str) -> Any:
    """One typed column straight from Python values (about 10x cheaper than DataFrame.astype
    for small requests); same dtypes as the pandera coercion training data went through."""
    if dtype == "float64":
        return np.array([np.nan if v is None else v for v in values], dtype="float64")
    if dtype in ("int64", "bool", "datetime64[ns]"):
        return np.array(values, dtype=dtype)
    return pd.array(values, dtype=dtype)


@cache
def _kind(dtype: str) -> str:
    """numpy's kind letter of a pandas dtype name (looked up once: about 8 µs a call)."""
    return str(pd.api.types.pandas_dtype(dtype).kind)


def array_column(values: list[Any], dtype: str) -> np.ndarray:
    """One column as a plain numpy array for the service's pandas-free path: datetimes
    datetime64[ns], numbers (nullable ones too) float64 with NaN for missing (int64 / bool
    when none is missing), everything else Python objects (None for missing)."""
    kind = _kind(dtype)
    if kind == "M":
        return np.array(values, dtype="datetime64[ns]")
    if kind not in "biuf":
        return np.array(values, dtype=object)
    if any(v is None for v in values):
        return np.array([np.nan if v is None else v for v in values], dtype="float64")
    return np.array(values, dtype={"b": "bool", "f": "float64"}.get(kind, "int64"))


def _cut(value: Any, limit: int = MAX_TEXT) -> Any:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "…"
    if isinstance(value, list):
        return [_cut(v, limit) for v in value[:MAX_ERRORS]]
    if isinstance(value, dict):
        return {
            _cut(k): _cut(v, MAX_MESSAGE if k in ("msg", "error") else limit)
            for k, v in value.items()
        }
    return value


def error_reason(body: Any, status: int) -> str:
    """The error type of a 4xx body: pydantic's ``detail[0].type`` (our own rejections use the
    same shape), else the status code."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return str(detail[0].get("type") or status)[:MAX_TEXT]
    return str(status)


def bounded_error(raw: bytes, status: int) -> tuple[bytes, str]:
    """A 4xx body cut to size, and its error type (for the rejection counter): at most
    ``MAX_ERRORS`` errors listed (``error`` says how many there were), every value cut to
    ``MAX_TEXT`` characters and messages to ``MAX_MESSAGE``, so a 1 MB bad key or 1,000 bad
    records never come back in full."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw[: MAX_MESSAGE * 4].decode("utf-8", "replace")
        return _cut(text, MAX_MESSAGE).encode(), str(status)
    reason = error_reason(body, status)
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        total = len(body["detail"])
        if total > MAX_ERRORS:
            body["error"] = f"{total} errors, the first {MAX_ERRORS} listed"
    return orjson.dumps(_cut(body)), reason
