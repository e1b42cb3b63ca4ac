"""One way to open a user's table: a CSV or Parquet file (a local path or any fsspec URL:
``s3://``, ``memory://``, ``file://``) or a SQL query (any SQLAlchemy URL).

A table is read whole (:func:`read`), in chunks of at most ``chunk_rows`` rows so memory
stays bounded (:func:`chunks`), or as a seeded uniform sample of at most ``max_rows`` rows
with the number of rows seen (:func:`sample`, :func:`read_sample`). The data stage, batch
scoring, monitoring and ``mlops init`` all read here, so they accept the same inputs and fail
the same way: a :class:`DataError` that names the file (or URL) and what was expected.

Frames come back with a RangeIndex (a chunk's index is the rows' position in the table). A
column selection keeps the table's column order and leaves out columns the table lacks, so a
contract check downstream can name them. A named pandas index saved in a Parquet file comes
back as a column; row numbers do not.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import pandas as pd

from mlops_template.errors import DataError

Format = Literal["csv", "parquet", "sql"]
FORMATS: tuple[Format, ...] = ("csv", "parquet", "sql")
SUFFIXES: dict[str, Format] = {
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
}
CHUNK_ROWS = 250_000  # rows per chunk when a caller does not choose


@dataclass(frozen=True)
class Table:
    """Where a table lives: ``location`` is a path or fsspec URL (csv, parquet) or a SQLAlchemy
    URL (sql, with ``query``). ``name`` opens every error message: the params key or command
    that pointed here (``data.path``), so the user knows what to fix."""

    location: str
    fmt: Format
    query: str = ""
    name: str = ""

    @property
    def where(self) -> str:
        return f"{self.name}: " if self.name else ""

    @property
    def local(self) -> bool:
        """A file on this machine (not a URL, not a database)."""
        return self.fmt != "sql" and "://" not in self.location

    @property
    def shown(self) -> str:
        """The location as errors show it (a database password is masked)."""
        return _masked(self.location) if self.fmt == "sql" else repr(self.location)


def table(
    location: str | Path,
    *,
    fmt: str | None = None,
    sql_query: str | None = None,
    name: str = "",
) -> Table:
    """A :class:`Table`; the format is ``sql`` when a query is given, else ``fmt``, else the
    file name's suffix (:data:`SUFFIXES`; a URL's query string is ignored)."""
    location = str(location)
    where = f"{name}: " if name else ""
    if sql_query or fmt == "sql":
        if not (sql_query and location) or fmt not in (None, "sql"):
            raise DataError(
                f"{where}a SQL source needs a SQLAlchemy URL and a query, nothing else (got "
                f"url {_masked(location)}, query {sql_query!r}, format {fmt!r})"
            )
        return Table(location, "sql", sql_query, name)
    fmt = fmt or _suffix_format(location)
    if fmt not in FORMATS:
        raise DataError(where + _unknown_format(location, fmt))
    return Table(location, cast(Format, fmt), "", name)


def _suffix_format(location: str) -> str:
    name = location.lower()
    if "://" in name:  # s3://bucket/x.parquet?versionId=... names a parquet file
        name = name.split("?")[0]
    return next((fmt for suffix, fmt in SUFFIXES.items() if name.endswith(suffix)), "")


def _unknown_format(location: str, fmt: str) -> str:
    if fmt:
        return f"format {fmt!r} of {location!r}: expected one of {', '.join(FORMATS)}"
    return (
        f"cannot tell the format of {location!r}: expected a name ending in "
        f"{', '.join(SUFFIXES)} (or an explicit format: {', '.join(FORMATS)})"
    )


def _masked(url: str) -> str:
    import sqlalchemy

    try:
        return repr(sqlalchemy.make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a URL SQLAlchemy can parse: it is shown as given
        return repr(url)


# --------------------------------------------------------------------------- public readers


def read(source: Table, *, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """The whole table (types inferred over all of it, as pandas does for one read)."""
    with closing(_frames(source, None, columns)) as frames:
        return next(frames)


def chunks(
    source: Table, *, chunk_rows: int = CHUNK_ROWS, columns: Iterable[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The table in order, at most ``chunk_rows`` rows at a time; memory holds one chunk.

    Errors surface when iteration starts (or at the chunk that cannot be parsed)."""
    start = 0
    for chunk in _frames(source, chunk_rows, columns):
        yield chunk.set_axis(pd.RangeIndex(start, start + len(chunk)), axis=0)
        start += len(chunk)


def sample(
    source: Table,
    max_rows: int,
    seed: int,
    *,
    columns: Iterable[str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> tuple[pd.DataFrame, int]:
    """A seeded uniform sample of at most ``max_rows`` rows, in table order, and the number of
    rows in the table. Parquet: chosen row numbers are taken batch by batch (the row count is
    in the file's footer); CSV and SQL: :func:`reservoir` over the chunks."""
    if max_rows < 1:
        raise ValueError(f"max_rows={max_rows}: a sample needs at least one row")
    if source.fmt != "parquet":
        return reservoir(chunks(source, chunk_rows=chunk_rows, columns=columns), max_rows, seed)
    with _reading(source):
        _check_file(source)
        return _sample_parquet(source, max_rows, seed, _names(columns), chunk_rows)


def read_sample(
    location: str,
    *,
    fmt: str | None = None,
    sql_query: str | None = None,
    max_rows: int,
    seed: int,
) -> tuple[pd.DataFrame, int]:
    """(sample of at most ``max_rows`` rows, total rows seen) of a file, URL or SQL query."""
    return sample(table(location, fmt=fmt, sql_query=sql_query), max_rows, seed)


def header(source: Table) -> list[str]:
    """The column names as the file writes them (pandas renames a repeated CSV name ``a`` to
    ``a.1`` when reading: this does not, so a caller can refuse duplicates)."""
    if source.fmt == "sql":
        raise ValueError("header: a SQL result has no header to read before the query")
    with _reading(source):
        _check_file(source)
        with _opened(source) as src:
            if source.fmt == "parquet":
                import pyarrow.parquet as pq

                return [str(n) for n in pq.read_schema(src).names]
            row = pd.read_csv(src, header=None, nrows=1, dtype=str)
    return [str(v) for v in row.iloc[0].tolist()] if len(row) else []


def reservoir(chunks: Iterable[pd.DataFrame], n: int, seed: int) -> tuple[pd.DataFrame, int]:
    """A seeded uniform sample of at most ``n`` rows from a stream of chunks, in stream order,
    and the stream's length.

    Every row gets a random key and the ``n`` smallest keys are kept, so memory holds at most
    ``n`` rows plus one chunk whatever the stream's length; the keys are drawn row by row, so
    the sample does not depend on how the stream is cut into chunks."""
    rng = np.random.default_rng(seed)
    kept: pd.DataFrame | None = None
    keys = np.empty(0)
    total = 0
    for chunk in chunks:
        chunk = chunk.set_axis(pd.RangeIndex(total, total + len(chunk)), axis=0)
        total += len(chunk)
        kept = chunk if kept is None else pd.concat([kept, chunk])
        keys = np.concatenate([keys, rng.random(len(chunk))])
        if len(kept) > n:
            best = np.sort(np.argpartition(keys, n)[:n])
            kept, keys = kept.iloc[best], keys[best]
    if kept is None:
        return pd.DataFrame(), 0
    return kept.sort_index().reset_index(drop=True), total


# --------------------------------------------------------------------------- plumbing


def _frames(
    source: Table, rows: int | None, columns: Iterable[str] | None
) -> Generator[pd.DataFrame, None, None]:
    """One reader per format: ``rows=None`` yields the whole table as one frame."""
    readers = {"csv": _csv, "parquet": _parquet, "sql": _sql}
    with _reading(source):
        if source.fmt != "sql":
            _check_file(source)
        yield from readers[source.fmt](source, rows, _names(columns))


@contextmanager
def _reading(source: Table) -> Iterator[None]:
    """pandas, pyarrow, fsspec and SQLAlchemy each raise their own types: one DataError."""
    try:
        yield
    except DataError:
        raise
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{source.where}file {source.shown} is empty (no header, no rows)") from err
    except Exception as err:
        if source.fmt == "sql":
            raise DataError(f"{source.where}query against {source.shown} failed: {err}") from err
        raise DataError(f"{source.where}cannot read {source.shown} as {source.fmt}: {err}") from err


def _check_file(source: Table) -> None:
    import fsspec

    fs, path = fsspec.core.url_to_fs(source.location)
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise DataError(f"{source.where}file {source.shown} does not exist") from None
    if info.get("type") == "directory":
        raise DataError(
            f"{source.where}{source.shown} is a directory: expected one {source.fmt} file"
        )
    if info.get("size") == 0:
        raise DataError(f"{source.where}file {source.shown} is empty (no header, no rows)")


@contextmanager
def _opened(source: Table) -> Iterator[Any]:
    """A local path as it is (pandas and pyarrow read it natively), a URL through fsspec
    (decompressed by suffix: .csv.gz)."""
    if "://" not in source.location:
        yield source.location
        return
    import fsspec

    with fsspec.open(source.location, "rb", compression="infer") as handle:
        yield handle


def _names(columns: Iterable[str] | None) -> set[str] | None:
    return None if columns is None else set(columns)


def _csv(source: Table, rows: int | None, columns: set[str] | None) -> Iterator[pd.DataFrame]:
    usecols = None if columns is None else columns.__contains__
    with _opened(source) as src:
        if rows is None:
            yield pd.read_csv(src, usecols=usecols)
            return
        with pd.read_csv(src, usecols=usecols, chunksize=rows) as reader:
            yield from reader


def _parquet(source: Table, rows: int | None, columns: set[str] | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    with _opened(source) as src, pq.ParquetFile(src) as pf:
        wanted = _wanted(pf, columns)
        if rows is None:
            yield _pandas(pf.read(columns=wanted))
            return
        for batch in pf.iter_batches(batch_size=rows, columns=wanted):
            yield _pandas(batch)


def _sql(source: Table, rows: int | None, columns: set[str] | None) -> Iterator[pd.DataFrame]:
    """Chunks come through a server-side cursor (stream_results): without it, drivers such as
    psycopg buffer the whole result in memory before pandas sees the first chunk."""
    import sqlalchemy

    query = sqlalchemy.text(source.query)
    engine = sqlalchemy.create_engine(source.location)
    try:
        with engine.connect() as conn:
            if rows is None:
                yield _keep(pd.read_sql_query(query, conn), columns)
                return
            streaming = conn.execution_options(stream_results=True, max_row_buffer=rows)
            for chunk in pd.read_sql_query(query, streaming, chunksize=rows):
                yield _keep(chunk, columns)
    finally:
        engine.dispose()


def _sample_parquet(
    source: Table, n: int, seed: int, columns: set[str] | None, rows: int
) -> tuple[pd.DataFrame, int]:
    """Row numbers are drawn from the footer's count; each batch gives up the chosen ones."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _opened(source) as src, pq.ParquetFile(src) as pf:
        total = pf.metadata.num_rows
        wanted = _wanted(pf, columns)
        if total <= n:
            return _pandas(pf.read(columns=wanted)), total
        chosen = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
        pieces, start = [], 0
        for batch in pf.iter_batches(batch_size=rows, columns=wanted):
            end = start + batch.num_rows
            lo, hi = np.searchsorted(chosen, [start, end])
            if hi > lo:
                pieces.append(batch.take(pa.array(chosen[lo:hi] - start)))
            start = end
        return _pandas(pa.Table.from_batches(pieces, schema=pieces[0].schema)), total


def _wanted(pf: Any, columns: set[str] | None) -> list[str] | None:
    return None if columns is None else [c for c in pf.schema_arrow.names if c in columns]


def _pandas(arrow: Any) -> pd.DataFrame:
    """Arrow to pandas. A pandas index saved as a column of the file comes back as a column
    when named; row numbers (an unnamed index, a RangeIndex kept as metadata) do not."""
    frame: pd.DataFrame = arrow.to_pandas()
    named = [n for n in frame.index.names if n is not None and n in arrow.schema.names]
    if named:
        frame = frame.reset_index(level=named)
    return frame.reset_index(drop=True)


def _keep(frame: pd.DataFrame, columns: set[str] | None) -> pd.DataFrame:
    return frame if columns is None else frame[[c for c in frame.columns if c in columns]]
