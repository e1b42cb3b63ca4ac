"""Reading the table `mlops init` infers from: a seeded sample of a file, a URL or a query,
through :mod:`mlops_template.sources` (the same formats, checks and messages as every other
reader of user data)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

from mlops_template import sources
from mlops_template.errors import DataError

WHERE = "mlops init"


def table(location: str, query: str | None = None) -> sources.Table:
    """The table `mlops init` reads: a file or URL, or a SQLAlchemy URL with ``query``."""
    return sources.table(location, sql_query=query, name=WHERE)


def label(source: sources.Table) -> str:
    """How messages name the source."""
    return "the query" if source.fmt == "sql" else source.location


def contract_name(source: sources.Table) -> str:
    """A contract name: the file's stem, or the database's name for SQL."""
    path = urlparse(source.location).path if not source.local else source.location
    stem = Path(path).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-") or "dataset"


def check_duplicates(names: list[str], where: str) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{where}: duplicate column names {dup}: rename them so each is unique")


def read(source: sources.Table, *, max_rows: int, seed: int) -> tuple[pd.DataFrame, int]:
    """Read a seeded sample and the total row count; raise DataError naming the source."""
    if source.fmt == "csv":
        check_duplicates(sources.header(source), label(source))
    frame, total = sources.sample(source, max_rows, seed)
    if total == 0:
        raise DataError(f"{label(source)}: has a header but no rows")
    check_duplicates([str(c) for c in frame.columns], label(source))
    return frame, total
