"""sources: every format (CSV, gzipped CSV, Parquet, SQL; local, file:// and memory:// URLs)
and every mode (whole, chunks, columns, seeded sample) on scikit-learn's bundled real
datasets and on nasty generated tables; each error names the file and what was expected."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy
from sklearn import datasets

from mlops_template import cli, sources
from mlops_template.errors import DataError
from mlops_template.sources import Table, chunks, read, read_sample, reservoir, sample

ROOT = Path(__file__).resolve().parents[2]
# how a table is stored: local files by suffix, SQLite, and fsspec URLs
KINDS = [
    "csv",
    "csv.gz",
    "parquet",
    "pq",
    "sqlite",
    "file-url.csv",
    "memory.parquet",
    "memory.csv.gz",
]
REAL = {
    "breast_cancer": datasets.load_breast_cancer,
    "iris": datasets.load_iris,
    "diabetes": datasets.load_diabetes,
    "wine": datasets.load_wine,
}
Store = Callable[[pd.DataFrame, str], Table]


@pytest.fixture
def memory_root() -> Iterator[str]:
    """A private folder of fsspec's process-wide in-memory filesystem, removed afterwards."""
    root = f"memory://tests-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)


@pytest.fixture
def store(tmp_path: Path, memory_root: str) -> Store:
    """Write a frame the way ``kind`` says and return the Table that reads it back."""

    def write(frame: pd.DataFrame, kind: str) -> Table:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_path / 'tables.db'}"
            frame.to_sql("t", sqlalchemy.create_engine(url), index=False, if_exists="replace")
            return sources.table(url, sql_query="SELECT * FROM t")
        if kind.startswith("memory."):
            location = f"{memory_root}/table.{kind.removeprefix('memory.')}"
        elif kind.startswith("file-url."):
            location = (tmp_path / f"table.{kind.removeprefix('file-url.')}").as_uri()
        else:
            location = str(tmp_path / f"table.{kind}")
        target = location.removeprefix("file://")  # pandas cannot write to file:// URLs
        if "csv" in kind:
            frame.to_csv(target, index=False)
        else:
            frame.to_parquet(target, index=False)
        return sources.table(location)

    return write


def _real(name: str) -> pd.DataFrame:
    return REAL[name](as_frame=True).frame


def _contained(part: pd.DataFrame, whole: pd.DataFrame) -> bool:
    """Every row of ``part`` is a row of ``whole``."""
    found = part.merge(whole.drop_duplicates(), how="left", indicator=True)["_merge"]
    return bool(len(found) == len(part) and (found == "both").all())


# --------------------------------------------------------------------------- formats, modes


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", sorted(REAL))
def test_real_dataset_reads_back_whole_and_in_chunks(store: Store, name: str, kind: str) -> None:
    original = _real(name)
    table = store(original, kind)
    whole = read(table)
    pd.testing.assert_frame_equal(whole, original, check_exact=False, rtol=1e-12)
    parts = list(chunks(table, chunk_rows=64))
    assert all(len(p) <= 64 for p in parts) and len(parts) == -(-len(original) // 64)
    assert [p.index[0] for p in parts] == list(range(0, len(original), 64))
    pd.testing.assert_frame_equal(pd.concat(parts), whole)


@pytest.mark.parametrize("kind", KINDS)
def test_real_dataset_sample_is_seeded_bounded_and_counted(store: Store, kind: str) -> None:
    original = _real("breast_cancer")
    table = store(original, kind)
    a, total = sample(table, 100, seed=1, chunk_rows=50)
    b, _ = sample(table, 100, seed=1, chunk_rows=50)
    c, _ = sample(table, 100, seed=2, chunk_rows=50)
    assert total == len(original) == 569 and len(a) == 100
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert _contained(a, original) and not a.duplicated().any()
    everything, total = sample(table, 10_000, seed=1)
    assert total == 569
    pd.testing.assert_frame_equal(everything, read(table))


@pytest.mark.parametrize("kind", KINDS)
def test_column_selection_keeps_table_order_and_skips_absent(store: Store, kind: str) -> None:
    original = _real("iris")
    table = store(original, kind)
    wanted = ["target", "petal width (cm)", "not a column"]
    expected = original[["petal width (cm)", "target"]]
    pd.testing.assert_frame_equal(read(table, columns=wanted), expected)
    pd.testing.assert_frame_equal(pd.concat(chunks(table, chunk_rows=40, columns=wanted)), expected)
    picked, total = sample(table, 30, seed=0, columns=wanted)
    assert total == 150 and list(picked.columns) == list(expected.columns) and len(picked) == 30


def test_reservoir_sample_does_not_depend_on_chunk_size_or_store(store: Store) -> None:
    """CSV and SQL are sampled by the reservoir: one key per row, drawn in table order."""
    original = _real("diabetes")
    csv, sql = store(original, "csv"), store(original, "sqlite")
    first, _ = sample(csv, 50, seed=9, chunk_rows=7)
    pd.testing.assert_frame_equal(first, sample(csv, 50, seed=9, chunk_rows=1_000)[0])
    pd.testing.assert_frame_equal(first, sample(sql, 50, seed=9, chunk_rows=33)[0])


def test_read_sample_signature_and_every_source(store: Store) -> None:
    """The entry point `mlops init` calls: location, optional format / query, keyword-only."""
    signature = inspect.signature(read_sample)
    assert list(signature.parameters) == ["location", "fmt", "sql_query", "max_rows", "seed"]
    assert all(p.kind is p.KEYWORD_ONLY for p in list(signature.parameters.values())[1:])
    original = _real("wine")
    for kind in ("csv", "parquet", "memory.csv.gz"):
        frame, total = read_sample(store(original, kind).location, max_rows=20, seed=3)
        assert total == 178 and len(frame) == 20 and _contained(frame, original)
    sql = store(original, "sqlite")
    frame, total = read_sample(sql.location, sql_query=sql.query, max_rows=500, seed=3)
    assert total == 178 and len(frame) == 178
    as_csv = store(original, "csv").location
    renamed = Path(as_csv).rename(Path(as_csv).with_suffix(".data"))
    frame, total = read_sample(str(renamed), fmt="csv", max_rows=20, seed=3)
    assert total == 178 and len(frame) == 20


# --------------------------------------------------------------------------- nasty tables


def _nasty(n: int = 12_000, seed: int = 0) -> pd.DataFrame:
    """Missing values in every kind of column, timestamps with and without a zone, booleans,
    an integer id and a string column with 10k distinct values."""
    rng = np.random.default_rng(seed)
    gaps = rng.random(n) < 0.1
    amount = rng.lognormal(3, 1, n)
    count = pd.array(rng.integers(0, 50, n), dtype="Int64")
    count[gaps] = pd.NA
    when = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**7, n), "s")
    flag = pd.array(rng.random(n) < 0.3, dtype="boolean")
    flag[rng.random(n) < 0.05] = pd.NA
    codes = np.array([f"code-{i:05d}" for i in range(10_000)])
    code = np.concatenate([codes, rng.choice(codes, n - 10_000)])
    return pd.DataFrame(
        {
            "id": np.arange(10**9, 10**9 + n, dtype="int64"),
            "amount": np.where(gaps, np.nan, amount),
            "count": count,
            "when": when.where(~gaps, pd.NaT),
            "local_time": when.tz_localize(None),
            "is_new": rng.random(n) < 0.5,
            "flag": flag,
            "code": pd.Series(code).where((np.arange(n) < 10_000) | (rng.random(n) > 0.1), None),
        }
    )


def test_nasty_table_round_trips_through_parquet_exactly(store: Store) -> None:
    original = _nasty()
    for kind in ("parquet", "memory.parquet"):
        table = store(original, kind)
        pd.testing.assert_frame_equal(read(table), original)
        pd.testing.assert_frame_equal(pd.concat(chunks(table, chunk_rows=1_000)), original)
    assert read(table)["code"].nunique() == 10_000


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "sqlite", "parquet", "memory.csv.gz"])
def test_nasty_table_chunks_equal_whole_and_sample_by_id(store: Store, kind: str) -> None:
    """Text formats infer types per chunk (a chunk without gaps reads `count` as int): the
    values agree with the whole read; the sample holds whole rows, unique, in table order."""
    original = _nasty()
    table = store(original, kind)
    whole = read(table)
    assert len(whole) == len(original) and whole["id"].tolist() == original["id"].tolist()
    assert whole["code"].nunique() == 10_000 and whole["amount"].isna().sum() > 1_000
    joined = pd.concat(chunks(table, chunk_rows=2_500))
    pd.testing.assert_frame_equal(joined, whole, check_dtype=False)
    picked, total = sample(table, 700, seed=5, chunk_rows=2_500)
    assert total == len(original) and len(picked) == 700
    assert picked["id"].is_unique and picked["id"].is_monotonic_increasing
    by_id = whole.set_index("id").loc[picked["id"]].reset_index()
    pd.testing.assert_frame_equal(picked, by_id, check_dtype=False)
    assert not picked["id"].equals(sample(table, 700, seed=6, chunk_rows=2_500)[0]["id"])


def test_parquet_index_comes_back_as_a_column_when_stored_and_named(tmp_path: Path) -> None:
    """A named index saved as a column of the file is data; row numbers are not."""
    frame = _real("iris")
    frame.set_index("target").to_parquet(tmp_path / "named.parquet")
    frame.rename_axis("row").iloc[::-1].to_parquet(tmp_path / "numbers.parquet")
    named = sources.table(tmp_path / "named.parquet")
    expected = frame[["target", *frame.columns[:-1]]]
    pd.testing.assert_frame_equal(read(named), expected)
    pd.testing.assert_frame_equal(pd.concat(chunks(named, chunk_rows=40)), expected)
    numbers = read(sources.table(tmp_path / "numbers.parquet"))
    assert list(numbers.columns) == list(frame.columns) and numbers.index.equals(pd.RangeIndex(150))


# --------------------------------------------------------------------------- reservoir, parquet


def _stream(n: int, size: int) -> list[pd.DataFrame]:
    return [pd.DataFrame({"i": np.arange(s, min(n, s + size))}) for s in range(0, n, size)]


def test_reservoir_is_seeded_uniform_and_in_stream_order() -> None:
    a, total = reservoir(_stream(100_000, 7_000), 1_000, seed=3)
    b, _ = reservoir(_stream(100_000, 7_000), 1_000, seed=3)
    c, _ = reservoir(_stream(100_000, 7_000), 1_000, seed=4)
    assert total == 100_000 and len(a) == 1_000 and a["i"].is_unique
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert a["i"].is_monotonic_increasing
    # uniform: each decile of the stream holds about a tenth of the sample
    counts = np.bincount(a["i"].to_numpy() // 10_000, minlength=10)
    assert counts.min() > 60 and counts.max() < 140, counts


def test_reservoir_keeps_everything_when_the_stream_is_small() -> None:
    out, total = reservoir(_stream(500, 200), 1_000, seed=0)
    assert total == 500 and out["i"].tolist() == list(range(500))
    empty, total = reservoir([], 10, seed=0)
    assert empty.empty and total == 0


@pytest.fixture
def parquet(tmp_path: Path) -> Path:
    n = 50_000
    table = pa.table({"i": np.arange(n), "x": np.arange(n) * 2.0, "unused": np.zeros(n)})
    path = tmp_path / "batch.parquet"
    pq.write_table(table, path, row_group_size=4_096)
    return path


def test_parquet_sample_reads_only_needed_columns_seeded(parquet: Path) -> None:
    table = sources.table(parquet)
    a, total = sample(table, 2_000, seed=1, columns=["i", "x", "absent"])
    b, _ = sample(table, 2_000, seed=1, columns=["i", "x"])
    assert total == 50_000 and list(a.columns) == ["i", "x"] and len(a) == 2_000
    pd.testing.assert_frame_equal(a, b)
    assert a["i"].is_unique and a["i"].is_monotonic_increasing
    assert (a["x"] == a["i"] * 2.0).all()  # rows stay whole across row groups
    assert a["i"].min() < 2_000 and a["i"].max() > 48_000


def test_parquet_sample_from_a_url_closes_its_handle(parquet: Path) -> None:
    import os

    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = open_fds()
    for _ in range(5):
        a, total = sample(sources.table(parquet.as_uri()), 100, seed=2, columns=["i"])
    assert total == 50_000 and len(a) == 100
    assert open_fds() == before
    local, _ = sample(sources.table(parquet), 100, seed=2, columns=["i"])
    pd.testing.assert_frame_equal(a, local)


def test_sql_chunks_come_through_a_streaming_cursor(tmp_path: Path) -> None:
    """stream_results asks server drivers (psycopg, mysqlclient) for a server-side cursor;
    checked on the real execution context of every statement the reader sends."""
    from sqlalchemy.engine import Engine

    url = f"sqlite:///{tmp_path / 'batch.db'}"
    pd.DataFrame({"a": range(1_010)}).to_sql("t", sqlalchemy.create_engine(url), index=False)
    seen: list[dict[str, Any]] = []

    def record(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: Any
    ) -> None:
        if "FROM t" in statement:
            seen.append(dict(context.execution_options))

    sqlalchemy.event.listen(Engine, "before_cursor_execute", record)
    try:
        table = sources.table(url, sql_query="SELECT a FROM t")
        frame, total = sample(table, 100, seed=0, chunk_rows=100)
    finally:
        sqlalchemy.event.remove(Engine, "before_cursor_execute", record)
    assert total == 1_010 and len(frame) == 100
    assert seen and all(o.get("stream_results") for o in seen), seen


# --------------------------------------------------------------------------- errors


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff\xfe not a table \x89\x00")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    ("name", "prepare", "expected"),
    [
        ("nope.csv", None, "does not exist"),
        ("nope.parquet", None, "does not exist"),
        ("empty.csv", _empty, r"is empty \(no header, no rows\)"),
        ("empty.parquet", _empty, r"is empty \(no header, no rows\)"),
        ("broken.parquet", _garbage, "cannot read .* as parquet"),
        ("broken.csv", _garbage, "cannot read .* as csv"),
        ("broken.csv.gz", _garbage, "cannot read .* as csv"),
        ("table.txt", _garbage, r"cannot tell the format .*expected a name ending in \.csv"),
        ("folder.parquet", Path.mkdir, "is a directory: expected one parquet file"),
    ],
)
def test_each_bad_file_is_a_data_error_naming_it(
    tmp_path: Path, name: str, prepare: Callable[[Path], Any] | None, expected: str
) -> None:
    path = tmp_path / name
    if prepare is not None:
        prepare(path)
    with pytest.raises(DataError, match=rf"^data\.path: .*{expected}") as caught:
        read(sources.table(path, name="data.path"))
    assert repr(str(path)) in str(caught.value)
    with pytest.raises(DataError, match=expected):
        read_sample(str(path), max_rows=10, seed=0)
    with pytest.raises(DataError, match=expected):
        list(chunks(sources.table(path), chunk_rows=10))


@pytest.mark.parametrize(
    ("name", "prepare", "expected"),
    [
        ("nope.csv", None, "does not exist"),
        ("empty.parquet", _empty, "is empty"),
        ("broken.parquet", _garbage, "cannot read"),
        ("table.txt", _garbage, "cannot tell the format"),
    ],
)
def test_cli_exits_3_with_one_line_naming_the_file(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    prepare: Callable[[Path], Any] | None,
    expected: str,
) -> None:
    path = tmp_path / name
    if prepare is not None:
        prepare(path)
    code = cli.main(
        [
            "--params",
            str(ROOT / "params.yaml"),
            "validate",
            str(path),
            "--contract",
            str(ROOT / "contract.yaml"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 3 and str(path) in err and expected in err and "Traceback" not in err


def test_missing_memory_url_is_named(memory_root: str) -> None:
    url = f"{memory_root}/nope.parquet"
    with pytest.raises(DataError, match=rf"file '{url}' does not exist"):
        read_sample(url, max_rows=5, seed=0)


def _late_bad_line(path: Path, at: int) -> Path:
    lines = ["a,b"] + [f"{i},{i}" for i in range(1_000)]
    lines.insert(at + 1, "1,2,3,4")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_bad_line_deep_in_a_csv_fails_at_its_chunk(tmp_path: Path) -> None:
    stream = chunks(sources.table(_late_bad_line(tmp_path / "late.csv", 550)), chunk_rows=100)
    assert len(next(stream)) == 100  # the first chunks are fine
    with pytest.raises(DataError, match=r"cannot read '.*late\.csv' as csv: .*Expected 2 fields"):
        list(stream)


@pytest.mark.xfail(
    strict=True,
    reason="pandas-dev/pandas#11569: with chunksize, a too-long line that starts a chunk is "
    "truncated silently (fixed by pandas PR #66944, after the pandas<3.1 pin)",
)
def test_a_bad_line_starting_a_chunk_fails_too(tmp_path: Path) -> None:
    path = _late_bad_line(tmp_path / "late.csv", 500)
    with pytest.raises(DataError, match="Expected 2 fields"):
        list(chunks(sources.table(path), chunk_rows=100))


def test_format_errors_name_the_location() -> None:
    with pytest.raises(DataError, match=r"format 'xlsx' of 'a\.xlsx': expected one of csv"):
        sources.table("a.xlsx", fmt="xlsx")
    with pytest.raises(DataError, match=r"^monitor file: cannot tell the format of 's3://b/k'"):
        sources.table("s3://b/k", name="monitor file")
    assert sources.table("s3://b/K.PQ").fmt == "parquet"
    assert sources.table("b/k.csv.gz").fmt == "csv"
    assert sources.table("b/k.parquet", fmt="csv").fmt == "csv"  # explicit beats the suffix
    with pytest.raises(DataError, match="a SQL source needs a SQLAlchemy URL and a query"):
        sources.table("sqlite:///x.db", fmt="sql")
    with pytest.raises(DataError, match="a SQL source needs"):
        sources.table("sqlite:///x.db", fmt="csv", sql_query="SELECT 1")


def test_failed_query_names_the_database_not_its_password(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    missing = sources.table(url, sql_query="SELECT * FROM missing", name="data.sql")
    for attempt in (lambda: read(missing), lambda: sample(missing, 5, seed=0)):
        with pytest.raises(
            DataError,
            match=r"^data\.sql: query against .*empty\.db.* failed: "
            r".*no such table: missing",
        ):
            attempt()
    secret = sources.table("postgresql+nodriver://user:hunter2@db:5432/x", sql_query="SELECT 1")
    with pytest.raises(
        DataError, match=r"query against 'postgresql\+nodriver://user:\*\*\*@db"
    ) as e:
        read(secret)
    assert "hunter2" not in str(e.value)
