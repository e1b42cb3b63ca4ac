"""What `mlops init` infers from a table: contract columns, task, split, features, slice.

The rules (README "Using your own data") in one place:

- dtype: pandas' dtype of the column; strings that look like dates are ``datetime`` when the
  contract's own coercion reads every one (else they are noted and not used as inputs);
  ``nullable`` where pandera's :func:`infer_schema` saw a null.
- ``id``: an integer or string column without nulls, all values distinct, whose name has the
  word id / uuid / guid (``row_id``, ``CustomerID``) or is a saved index (``Unnamed: 0``).
- ``category``: strings with at most :data:`CATEGORY_MAX` distinct values; integer codes with
  2..:data:`INT_CODE_MAX` values unless the name says it is a quantity (``n_items``). Other
  strings are ``str``; strings whose every value is distinct (free text) are not model inputs.
- ``min: 0`` only when every sampled value is >= 0 AND a word of the name says the column is
  a count, amount, duration, size or age (:data:`QUANTITY_WORDS`). Never a ``max``: tomorrow's
  data may exceed today's sample.
- task: a target with 2 values is binary; strings, or whole numbers with at most
  :data:`CLASSES_MAX` values, multiclass; other numbers regression (``--task`` overrides).
- split: ``time`` when there is a timestamp, else stratified (classification) or random.
- features: weekday and month (and hour, when times are not all midnight) of each datetime
  column; ids, raw datetimes, free text and all-missing columns dropped; nothing else.
- slice column: the category input with 2..:data:`SLICE_MAX` values whose smallest group is
  largest; none if there is no such column.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_template.config import Task
from mlops_template.contract import ColumnSpec, Contract, DType, check
from mlops_template.errors import ConfigError, DataError
from mlops_template.init.reading import check_duplicates

CATEGORY_MAX = 50  # a string column with at most this many distinct values is a category
INT_CODE_MAX = 10  # an integer column with 2..this many values is a code (unless a quantity)
CLASSES_MAX = 20  # a whole-number target with 3..this many values is multiclass
SLICE_MAX = 20  # evaluate.slice_column: a category with 2..this many values
FREE_TEXT_MIN_ROWS = 20  # all-distinct strings over at least this many rows: free text
TARGET_MISSING_MAX = 0.5

ID_WORDS = frozenset({"id", "uuid", "guid"})
INDEX_NAME = re.compile(r"^(index|Unnamed: \d+)$")
_QUANTITY = """
    amount amt price cost fee fees spend spent revenue sales income salary
    count counts cnt num number qty quantity total n nb items visits clicks views
    age duration days hours minutes seconds weeks months years tenure
    distance length width height depth radius perimeter area volume size weight
    cm mm km kg lb lbs
"""
QUANTITY_WORDS = frozenset(_QUANTITY.split())
TIMESTAMP_WORDS = frozenset({"timestamp", "time", "datetime", "ts", "date", "created", "at"})

Role = Literal["feature", "id", "target", "timestamp", "datetime", "text", "empty"]
Kind = Literal["bool", "int", "float", "datetime", "string", "date-text", "empty"]


@dataclass
class Column:
    """One inferred contract column with the reason for each choice (shown in the table)."""

    name: str
    dtype: DType
    nullable: bool = False
    unique: bool = False
    min: float | None = None
    categories: list[Any] | None = None
    role: Role = "feature"
    notes: list[str] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        """The contract's column entry (only what differs from the defaults)."""
        spec: dict[str, Any] = {"dtype": self.dtype}
        if self.nullable:
            spec["nullable"] = True
        if self.unique:
            spec["unique"] = True
        if self.min is not None:
            spec["min"] = int(self.min) if float(self.min).is_integer() else self.min
        if self.categories is not None:
            spec["categories"] = self.categories
        return spec


@dataclass
class Inference:
    """What `mlops init` concluded about a table: contract columns, task and params values."""

    name: str
    target: str
    task: Task
    columns: list[Column]
    rows_read: int
    rows_total: int
    version: int | str = 1
    id: str | None = None
    timestamp: str | None = None
    split: Literal["stratified", "random", "time"] = "random"
    slice_column: str | None = None
    datetime_parts: dict[str, list[str]] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> str:
        """``12,000 rows``, or ``a seeded sample of 100,000 of 300,000 rows``."""
        if self.rows_read < self.rows_total:
            return f"a seeded sample of {self.rows_read:,} of {self.rows_total:,} rows"
        return f"{self.rows_read:,} rows"

    def contract(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version}
        if self.id:
            out["id"] = self.id
        out["target"] = self.target
        if self.timestamp:
            out["timestamp"] = self.timestamp
        out["columns"] = {c.name: c.spec() for c in self.columns}
        return out

    def features(self) -> dict[str, Any]:
        """params.yaml ``features``: datetime parts, and nothing naming a column not here."""
        return {
            "datetime": [{"column": c, "parts": p} for c, p in self.datetime_parts.items()],
            "log": [],
            "power": [],
            "bins": [],
            "ratios": [],
            "aggregates": [],
            "drop": list(self.drop),
        }


def words(name: str) -> set[str]:
    """The lower-case words of a column name: ``txn_count_24h`` -> {txn, count, 24, h};
    ``CustomerID`` -> {customer, id}."""
    return {w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", name)}


def is_quantity(name: str) -> bool:
    return bool(words(name) & QUANTITY_WORDS)


def _id_name(name: str) -> bool:
    return bool(words(name) & ID_WORDS) or bool(INDEX_NAME.match(name))


_LOOKS_LIKE_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


def looks_like_dates(text: pd.Series) -> bool:
    """Every value holds a date like 2024-01-31 or 31/01/2024 (a cheap guard before parsing)."""
    return bool(text.str.contains(_LOOKS_LIKE_DATE).all())


def contract_datetimes(values: pd.Series) -> pd.Series | None:
    """The values as the contract's datetime coercion reads them, or None if it cannot read
    every one: the data stage parses with that same coercion, so only then is it a datetime."""
    probe = Contract(name="probe", target="v", columns={"v": ColumnSpec(dtype="datetime")})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas: "could not infer format"
        report = check(pd.DataFrame({"v": values.to_numpy()}), probe)
    return report.valid["v"] if report.ok else None


def kind_of(s: pd.Series) -> tuple[Kind, pd.Series]:
    """The column's kind and its non-null values in that kind (dates parsed from strings)."""
    values = s.dropna()
    if isinstance(s.dtype, pd.CategoricalDtype):
        values = values.astype(s.cat.categories.dtype)
    if values.empty:
        return "empty", values
    if values.dtype.kind == "M":
        return "datetime", values
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "boolean":
        return "bool", values
    if inferred == "integer":
        return "int", values
    if inferred in ("floating", "mixed-integer-float", "decimal"):
        return "float", values.astype("float64")
    if inferred in ("datetime64", "datetime", "date"):
        return "datetime", pd.to_datetime(values, utc=True)
    if inferred == "string" and looks_like_dates(values.astype(str)):
        parsed = contract_datetimes(values)
        return ("datetime", parsed) if parsed is not None else ("date-text", values.astype(str))
    if inferred in ("string", "mixed", "mixed-integer", "bytes"):
        return "string", values.astype(str)
    raise DataError(
        f"column {s.name!r}: values of type {inferred} (dtype {s.dtype}) have no contract "
        "dtype (int, float, bool, str, category, datetime)"
    )


def _sample_min(schema_column: Any) -> float | None:
    """The minimum pandera's infer_schema saw (its ``greater_than_or_equal_to`` check)."""
    for chk in getattr(schema_column, "checks", None) or []:
        if chk.name == "greater_than_or_equal_to":
            value = chk.statistics.get("min_value")
            return float(value) if isinstance(value, (int, float, np.number)) else None
    return None


def _lower_bound(col: Column, sample_min: float | None) -> None:
    if sample_min is not None and sample_min >= 0 and is_quantity(col.name):
        col.min = 0
        col.notes.append("min 0 (a quantity)")


def _numeric(name: str, kind: Kind, values: pd.Series, nullable: bool, smin: Any) -> Column:
    n = values.nunique()
    if kind == "int" and not is_quantity(name) and 2 <= n <= INT_CODE_MAX:
        cats = sorted(int(v) for v in values.unique())
        return Column(name, "category", nullable, categories=cats, notes=[f"{n} codes"])
    col = Column(name, "int" if kind == "int" else "float", nullable)
    if n == 1:
        col.notes.append(f"one value in the sample ({_plain(values.iloc[0])})")
    _lower_bound(col, _sample_min(smin))
    return col


def _string(name: str, values: pd.Series, nullable: bool) -> Column:
    n = values.nunique()
    if n == len(values) and n >= FREE_TEXT_MIN_ROWS:
        return Column(name, "str", nullable, role="text", notes=["every value distinct: free text"])
    if n <= CATEGORY_MAX:
        cats = sorted(values.unique().tolist())
        return Column(name, "category", nullable, categories=cats, notes=[f"{n} values"])
    return Column(name, "str", nullable, notes=[f"{n} distinct values (high cardinality)"])


def _id_like(name: str, kind: Kind, values: pd.Series, nullable: bool) -> bool:
    return (
        kind in ("int", "string")
        and not nullable
        and _id_name(name)
        and len(values) > 1
        and values.is_unique
    )


def infer_column(s: pd.Series, schema_column: Any) -> Column:
    """Contract entry and role of one input column (not the target)."""
    name = str(s.name)
    nullable = bool(getattr(schema_column, "nullable", s.isna().any()))
    kind, values = kind_of(s)
    if _id_like(name, kind, values, nullable):
        dtype: DType = "int" if kind == "int" else "str"
        return Column(name, dtype, unique=True, role="id")
    if kind == "empty":
        return Column(name, "float", True, role="empty", notes=["every value missing"])
    if kind == "bool":
        return Column(name, "bool", nullable)
    if kind == "datetime":
        return Column(name, "datetime", nullable, role="datetime")
    if kind == "string":
        return _string(name, values, nullable)
    if kind == "date-text":
        note = "dates in formats the contract cannot parse: write them as ISO 8601 to use them"
        return Column(name, "str", nullable, role="text", notes=[note])
    return _numeric(name, kind, values, nullable, schema_column)


# --------------------------------------------------------------------------- the target


def check_target(frame: pd.DataFrame, target: str, where: str) -> pd.Series:
    """The target column, or an error naming it: missing, empty, mostly missing, constant."""
    if target not in frame.columns:
        shown = ", ".join(map(str, list(frame.columns)[:12]))
        more = ", ..." if frame.shape[1] > 12 else ""
        raise ConfigError(f"--target {target!r}: no such column in {where} (has {shown}{more})")
    s = frame[target]
    missing = float(s.isna().mean())
    if missing == 1:
        raise DataError(f"target {target!r}: every value is missing ({len(s)} rows read)")
    if missing > TARGET_MISSING_MAX:
        raise DataError(
            f"target {target!r}: {missing:.0%} of values are missing "
            f"(at most {TARGET_MISSING_MAX:.0%} allowed); fill or drop those rows first"
        )
    values = s.dropna()
    if values.nunique() < 2:
        raise DataError(
            f"target {target!r}: one value only ({_plain(values.iloc[0])!r}): nothing to learn"
        )
    return s


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (its repr is ``1``, not ``np.int64(1)``)."""
    return value.item() if isinstance(value, np.generic) else value


def infer_task(kind: Kind, values: pd.Series) -> Task:
    n = values.nunique()
    if n == 2:
        return "binary"
    if kind == "string":
        return "multiclass"
    whole = kind in ("int", "bool") or bool(np.all(np.mod(values.astype(float), 1) == 0))
    return "multiclass" if whole and n <= CLASSES_MAX else "regression"


def _classes(kind: Kind, values: pd.Series, target: str) -> list[Any]:
    if kind == "bool":
        return [0, 1]
    if kind == "string":
        return sorted(values.unique().tolist())
    numbers = values.astype(float).unique()
    if not np.all(np.mod(numbers, 1) == 0):
        raise ConfigError(
            f"--task: target {target!r} has fractional values: classes must be whole numbers "
            "or strings (use --task regression)"
        )
    return sorted(int(v) for v in numbers)


def _check_task(task: Task, kind: Kind, values: pd.Series, target: str) -> None:
    n = values.nunique()
    if task == "regression" and kind not in ("int", "float", "bool"):
        raise ConfigError(f"--task regression: target {target!r} is not numeric ({kind})")
    if task == "binary" and n != 2:
        raise ConfigError(f"--task binary: target {target!r} has {n} values, not 2")


def infer_target(s: pd.Series, task: Task | None, schema_column: Any) -> tuple[Column, Task]:
    """The target's contract entry and the task (``task`` overrides the inferred one)."""
    name = str(s.name)
    nullable = bool(schema_column.nullable)
    kind, values = kind_of(s)
    if kind == "date-text":  # labels that happen to look like dates
        kind = "string"
    if kind == "datetime":
        raise DataError(f"target {name!r}: holds dates; a target must be a label or a number")
    chosen = task or infer_task(kind, values)
    _check_task(chosen, kind, values, name)
    if chosen == "regression":
        col = Column(name, "float", nullable, role="target", notes=[chosen])
        _lower_bound(col, _sample_min(schema_column))
    else:
        classes = _classes(kind, values, name)
        col = Column(name, "category", nullable, categories=classes, role="target")
        col.notes.append(f"{chosen}, {len(classes)} classes")
        if len(classes) > CLASSES_MAX:
            col.notes.append("many classes: check --task")
    if nullable:
        col.notes.append(f"{s.isna().sum()} rows without a label")
    return col, chosen


# --------------------------------------------------------------------------- whole table


def _pick_timestamp(columns: list[Column]) -> str | None:
    dates = [c.name for c in columns if c.dtype == "datetime"]
    named = [n for n in dates if words(n) & TIMESTAMP_WORDS]
    return (named or dates)[0] if dates else None


def _datetime_parts(s: pd.Series) -> list[str]:
    """weekday and month; hour too when the sampled times are not all midnight."""
    _, values = kind_of(s)
    times = pd.to_datetime(values, utc=True)
    has_time = bool((times.dt.hour != 0).any() or (times.dt.minute != 0).any())
    return (["hour"] if has_time else []) + ["weekday", "month"]


def _pick_slice(frame: pd.DataFrame, columns: list[Column]) -> str | None:
    """The low-cardinality category whose smallest group is largest (None if there is none)."""
    best: tuple[int, str] | None = None
    for col in columns:
        n = len(col.categories or [])
        if col.role != "feature" or col.dtype != "category" or not 2 <= n <= SLICE_MAX:
            continue
        smallest = int(frame[col.name].value_counts().min())
        if best is None or smallest > best[0]:
            best = (smallest, col.name)
    return best[1] if best else None


def _split(task: Task, timestamp: str | None, target: pd.Series, notes: list[str]) -> Any:
    if timestamp:
        return "time"
    if task == "regression":
        return "random"
    if int(target.value_counts().min()) < 2:
        notes.append("a class has a single row: random split instead of stratified")
        return "random"
    return "stratified"


def infer(
    frame: pd.DataFrame,
    *,
    target: str,
    task: Task | None = None,
    name: str = "dataset",
    rows_total: int | None = None,
    where: str = "the data",
) -> Inference:
    """Infer the contract columns, the task and the data-dependent params of ``frame``."""
    import pandera.pandas as pa

    check_duplicates([str(c) for c in frame.columns], where)
    y = check_target(frame, target, where)
    schema = pa.infer_schema(frame)  # nullable flags and sample minimums
    assert isinstance(schema, pa.DataFrameSchema)
    target_col, chosen = infer_target(y, task, schema.columns[target])
    columns = [
        target_col if c == target else infer_column(frame[c], schema.columns[c])
        for c in frame.columns
    ]
    inputs = [c for c in columns if c.role in ("feature", "datetime", "timestamp")]
    if not inputs:
        raise DataError(f"{where}: no input columns besides the target, ids and free text")
    ids = [c.name for c in columns if c.role == "id"]
    timestamp = _pick_timestamp(columns)
    if timestamp:
        next(c for c in columns if c.name == timestamp).role = "timestamp"
    dates = [c.name for c in columns if c.dtype == "datetime"]
    notes: list[str] = []
    if y.isna().any():
        notes.append(
            f"{int(y.isna().sum())} rows have no {target!r}: the data stage leaves them out of "
            "training and evaluation (label them to use them)"
        )
    return Inference(
        name=name,
        target=target,
        task=chosen,
        columns=columns,
        rows_read=len(frame),
        rows_total=rows_total if rows_total is not None else len(frame),
        id=ids[0] if ids else None,
        timestamp=timestamp,
        split=_split(chosen, timestamp, y.dropna(), notes),
        slice_column=_pick_slice(frame, columns),
        datetime_parts={d: _datetime_parts(frame[d]) for d in dates},
        drop=[c.name for c in columns if c.role in ("id", "text", "empty")] + dates,
        notes=notes,
    )
