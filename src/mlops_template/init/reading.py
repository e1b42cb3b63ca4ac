"""Reading the table `mlops init` infers from: a seeded sample of a file, a URL or a query."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import pandas as pd

from mlops_template.errors import DataError
from mlops_template.sources import read_sample


@dataclass(frozen=True)
class Source:
    """Where the data comes from: a local file, an fsspec URL, or a SQL query."""

    location: str  # a path, a URL, or a SQLAlchemy URL (with ``query``)
    query: str | None = None

    @property
    def kind(self) -> Literal["csv", "parquet", "sql"]:
        if self.query is not None:
            return "sql"
        name = self.location.lower().split("?")[0]
        return "parquet" if name.endswith((".parquet", ".pq", ".parq")) else "csv"

    @property
    def local(self) -> bool:
        return self.query is None and "://" not in self.location

    @property
    def label(self) -> str:
        """How messages name the source."""
        return "the query" if self.kind == "sql" else self.location

    @property
    def name(self) -> str:
        """A contract name: the file's stem, or the database's name for SQL."""
        path = urlparse(self.location).path if not self.local else self.location
        stem = Path(path).name.split(".")[0]
        return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "dataset"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _check_file(source: Source) -> None:
    """Fail early, naming the file, before pandas gives a longer message."""
    if not source.local:
        return
    path = Path(source.location)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, expected a CSV or Parquet file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (no header, no rows)")


def _csv_header(location: str) -> list[str]:
    """The header row as written: pandas renames duplicate names (``a``, ``a.1``) when reading."""
    try:
        row = pd.read_csv(location, header=None, nrows=1, dtype=str)
    except pd.errors.EmptyDataError:
        raise DataError(f"{location}: the file is empty (no header, no rows)") from None
    except Exception as err:
        raise DataError(f"{location}: cannot read it as csv: {_first_line(err)}") from None
    return [str(v) for v in row.iloc[0].tolist()] if len(row) else []


def check_duplicates(names: list[str], where: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{where}: duplicate column names {dup}: rename them so each is unique")


def read(source: Source, *, max_rows: int, seed: int) -> tuple[pd.DataFrame, int]:
    """Read a seeded sample and the total row count; raise DataError naming the source."""
    _check_file(source)
    if source.kind == "csv":
        check_duplicates(_csv_header(source.location), source.location)
    frame, total = read_sample(
        source.location,
        fmt=None if source.kind == "sql" else source.kind,
        sql_query=source.query,
        max_rows=max_rows,
        seed=seed,
    )
    if total == 0:
        raise DataError(f"{source.label}: has a header but no rows")
    check_duplicates([str(c) for c in frame.columns], source.label)
    return frame, total
