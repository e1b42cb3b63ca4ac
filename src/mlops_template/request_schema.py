"""The service's request schema, derived from the data contract.

One pydantic field per input column (type, ge/le, Literal categories, required unless
nullable), extra fields forbidden and floats finite, so the OpenAPI document describes exactly
what the model accepts and bad requests fail with a 4xx naming the field.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model

from mlops_template.contract import ColumnSpec, Contract

_EARLIEST = dt.datetime(1678, 1, 1)
_LATEST = dt.datetime(2262, 1, 1)


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


_PY_TYPE: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "datetime": Annotated[dt.datetime, AfterValidator(_naive_utc)],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=False)


def _field(spec: ColumnSpec) -> tuple[Any, Any]:
    if spec.dtype == "category":
        annotation: Any = Literal[tuple(spec.categories or [])]
    else:
        annotation = _PY_TYPE[spec.dtype]
    if spec.nullable:
        annotation = annotation | None
    field = Field(
        None if spec.nullable else ...,
        ge=spec.min,
        le=spec.max,
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
