"""Append-only log of served requests (rows + predictions) that monitoring reads.

The path's suffix picks the format: ``.db`` / ``.sqlite`` is SQLite in WAL mode, ``.jsonl`` is
JSON Lines (one object per scored row, each batch written with a single ``write`` under an
exclusive ``flock``). Both are safe with several worker processes appending. Writes happen on a
background thread fed by a bounded queue (rows are serialised there too, with orjson), so
logging never blocks or fails a request; errors are counted and logged, never raised. The
thread writes what has queued up in one transaction (at most ``BATCH_ITEMS`` requests), and
:meth:`RequestLog.close` writes the rest before a worker stops: nothing is lost on a normal
stop. ``dropped`` (rows refused by a full queue) and ``errors`` (failed writes) are counters
the service exports on /metrics.

Each row also records its ``role`` (champion, challenger, or shadow: predicted off the response
path) and the model call's ``latency_ms``. A log written before these columns existed still
opens: SQLite tables gain them on first write (old rows read as champion), JSONL lines without
them read the same way. Readers see answered rows only unless they ask for shadow rows.

Columns named in ``drop`` (the contract's ``pii`` columns) are never written: they are left out
of every logged record, so the log (and the monitoring reading it) holds no personal data.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

log = logging.getLogger(__name__)

_DDL = (
    "CREATE TABLE IF NOT EXISTS requests (request_id TEXT, logged_at TEXT, "
    "model_version TEXT, record TEXT, prediction TEXT, role TEXT, latency_ms REAL)"
)
_ADDED = {"role": "TEXT", "latency_ms": "REAL"}  # columns newer than the first logs
CHAMPION = "champion"
ANSWERED = ("champion", "challenger")  # roles whose predictions reached a client


def _columns(conn: sqlite3.Connection) -> set[str]:
    return {row[1] for row in conn.execute("PRAGMA table_info(requests)")}


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(_DDL)
    for name in _ADDED.keys() - _columns(conn):  # an older log: add the columns (NULL = old)
        conn.execute(f"ALTER TABLE requests ADD COLUMN {name} {_ADDED[name]}")
    return conn


Batch = tuple[str, str, str, dict[str, list[Any]], list[dict[str, Any]], str, float | None]
Row = tuple[str, str, str, str, str, str, float | None]


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def _rows(item: Batch) -> list[Row]:
    request_id, logged_at, version, columns, predictions, role, latency = item
    names = list(columns)
    records = (
        dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)
    )
    return [
        (request_id, logged_at, version, _dumps(r), _dumps(p), role, latency)
        for r, p in zip(records, predictions, strict=True)
    ]


class _SqliteSink:
    def __init__(self, path: Path) -> None:
        self.conn = _connect(path)

    def write(self, rows: list[Row]) -> None:
        with self.conn:
            self.conn.executemany(f"INSERT INTO requests ({_INSERT}) VALUES ({_MARKS})", rows)


class _JsonlSink:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, rows: list[Row]) -> None:
        lines = "".join(
            f'{{"request_id":"{i}","logged_at":"{t}","model_version":{json.dumps(v)},'
            f'"record":{r},"prediction":{p},"role":"{role}","latency_ms":{json.dumps(ms)}}}\n'
            for i, t, v, r, p, role, ms in rows
        ).encode()
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            view = memoryview(lines)
            while view:  # one write in practice; loop only on a short write
                view = view[os.write(self.fd, view) :]
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)


RETRIES = 5  # attempts per batch on a locked SQLite file (0.05 s, doubling)
BATCH_ITEMS = 256  # queued requests written in one transaction at most
Hook = Callable[[int], None]


def _ignore(_: int) -> None:
    return None


class RequestLog:
    """Background writer; ``append`` only enqueues (drops and counts when the queue is full).
    ``on_dropped`` / ``on_error`` are called with the rows dropped / the failed writes (the
    service counts them in Prometheus)."""

    def __init__(
        self,
        path: str | Path,
        max_queue: int = 10_000,
        drop: Collection[str] = (),
        *,
        on_dropped: Hook = _ignore,
        on_error: Hook = _ignore,
    ) -> None:
        self.path = Path(path)
        self.drop = frozenset(drop)  # never logged: the contract's pii columns
        self.errors = 0
        self.dropped = 0
        self.on_dropped, self.on_error = on_dropped, on_error
        self._queue: queue.Queue[Batch | threading.Event | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def append(
        self,
        request_id: str,
        model_version: str,
        columns: dict[str, list[Any]],
        predictions: list[dict[str, Any]],
        role: str = CHAMPION,
        latency_ms: float | None = None,
    ) -> None:
        """Queue one request: its input columns (name -> values) and per-row predictions,
        which model ``role`` made them and how long its call took."""
        if self.drop:
            columns = {name: v for name, v in columns.items() if name not in self.drop}
        now = datetime.now(UTC).isoformat()
        item = (request_id, now, model_version, columns, predictions, role, latency_ms)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += len(predictions)
            self.on_dropped(len(predictions))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written (tests, shutdown); False if that
        took longer than ``timeout`` seconds."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Write everything queued, then stop the thread (a worker shutting down); False if
        rows were still queued after ``timeout`` seconds."""
        if not self._thread.is_alive():
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _sink(self) -> _SqliteSink | _JsonlSink:
        return _JsonlSink(self.path) if self.path.suffix == ".jsonl" else _SqliteSink(self.path)

    def _run(self) -> None:
        sink: _SqliteSink | _JsonlSink | None = None
        while True:
            batch, marks, stop = self._take()
            if batch:
                sink = self._write(sink, batch)
            for done in marks:
                done.set()
            if stop:
                return

    def _take(self) -> tuple[list[Batch], list[threading.Event], bool]:
        """The next queued requests (waits for one, then takes what is there, at most
        ``BATCH_ITEMS``), the flush marks among them, and whether close() was asked."""
        batch: list[Batch] = []
        marks: list[threading.Event] = []
        item = self._queue.get()
        while True:
            if item is None:
                return batch, marks, True
            if isinstance(item, threading.Event):
                marks.append(item)
                if batch:  # a flush waits for what was queued before it, not after
                    return batch, marks, False
            else:
                batch.append(item)
            if len(batch) >= BATCH_ITEMS:
                return batch, marks, False
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return batch, marks, False

    def _write(self, sink: _SqliteSink | _JsonlSink | None, batch: list[Batch]) -> Any:
        """Write queued requests in one go; a locked SQLite file (another worker switching it
        to WAL or creating the table at the same moment fails at once, whatever the busy
        timeout) is retried on a fresh connection before the rows count as an error."""
        rows = [row for item in batch for row in _rows(item)]
        for attempt in range(RETRIES):
            try:
                sink = sink or self._sink()
                sink.write(rows)
                return sink
            except sqlite3.OperationalError:
                if attempt == RETRIES - 1:
                    break
                sink = None
                time.sleep(0.05 * 2**attempt)
            except Exception:  # logging must never take the service down
                break
        self.errors += 1
        self.on_error(1)
        log.exception("request log: could not write %d rows to %s", len(rows), self.path)
        return None


_FIELDS = ("request_id", "logged_at", "model_version", "record", "prediction")
_INSERT = ", ".join((*_FIELDS, *_ADDED))
_MARKS = ", ".join("?" * (len(_FIELDS) + len(_ADDED)))


def _query(
    have: set[str], since: str, version: str, roles: Collection[str] | None
) -> tuple[str, list[str]]:
    """The SELECT and its arguments; a table without the newer columns (an old log) reads them
    as NULL (role: champion) and is never altered by a reader."""
    fields = [*_FIELDS, *(name if name in have else f"NULL AS {name}" for name in _ADDED)]
    where, args = [], []
    if roles is not None:
        role = "COALESCE(role, 'champion')" if "role" in have else "'champion'"
        where.append(f"{role} IN ({', '.join('?' * len(roles))})")
        args += list(roles)
    if since:
        where.append("logged_at >= ?")
        args.append(since)
    if version:
        where.append("model_version = ?")
        args.append(version)
    sql = f"SELECT {', '.join(fields)} FROM requests"
    return sql + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY rowid", args


def _sqlite_rows(
    path: Path, since: str, version: str, size: int, roles: Collection[str] | None
) -> Iterator[list[tuple]]:
    """Rows in insertion order, ``size`` at a time: the cursor streams, the log is never
    loaded whole. ``logged_at`` is ISO-8601 UTC text, so a string comparison is a time one."""
    conn = sqlite3.connect(path)
    try:
        cursor = conn.execute(*_query(_columns(conn), since, version, roles))
        while rows := cursor.fetchmany(size):
            yield [
                (i, t, v, orjson.loads(r), orjson.loads(p), role or CHAMPION, ms)
                for i, t, v, r, p, role, ms in rows
            ]
    finally:
        conn.close()


def _jsonl_rows(
    path: Path, since: str, version: str, size: int, roles: Collection[str] | None
) -> Iterator[list[tuple]]:
    batch: list[tuple] = []
    with open(path, "rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            x = orjson.loads(line)
            if (since and x["logged_at"] < since) or (version and x["model_version"] != version):
                continue
            role = x.get("role") or CHAMPION
            if roles is not None and role not in roles:
                continue
            batch.append((*(x[f] for f in _FIELDS), role, x.get("latency_ms")))
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def _frame(rows: list[tuple]) -> pd.DataFrame:
    """Parsed log rows -> the columns of :func:`read_request_log`."""
    index = pd.RangeIndex(len(rows))
    records = pd.DataFrame([r[3] for r in rows], index=index)
    preds = [dict(r[4]) for r in rows]
    probas = pd.DataFrame([p.pop("probabilities", None) or {} for p in preds], index=index)
    preds_frame = pd.DataFrame(preds, index=index).drop(columns=["model_version"], errors="ignore")
    out = pd.concat([records, preds_frame, probas.add_prefix("proba_")], axis=1)
    out["model_version"] = [r[2] for r in rows]
    out["request_id"] = [r[0] for r in rows]
    out["logged_at"] = pd.to_datetime([r[1] for r in rows], utc=True, format="ISO8601")
    out["role"] = [r[5] for r in rows]
    out["latency_ms"] = pd.array([r[6] for r in rows], dtype="Float64")
    return out


def _utc_text(since: datetime | None) -> str:
    if since is None:
        return ""
    if since.tzinfo is None:
        raise ValueError(f"since={since.isoformat()}: give a time zone (the log is in UTC)")
    return since.astimezone(UTC).isoformat()


def iter_request_log(
    path: str | Path,
    *,
    since: datetime | None = None,
    model_version: str = "",
    chunk_rows: int = 50_000,
    roles: Collection[str] | None = ANSWERED,
) -> Iterator[pd.DataFrame]:
    """The log in chunks of at most ``chunk_rows`` scored records, oldest first, each in the
    shape of :func:`read_request_log`; only records logged at or after ``since`` (aware
    datetime) and, when given, served by ``model_version``, made in one of ``roles`` (by
    default the answered ones: shadow predictions never reached a client; None: all).
    Memory holds one chunk."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"request log {path} does not exist (no request served yet?)")
    rows = _jsonl_rows if path.suffix == ".jsonl" else _sqlite_rows
    for batch in rows(path, _utc_text(since), model_version, chunk_rows, roles):
        yield _frame(batch)


def read_request_log(
    path: str | Path,
    *,
    since: datetime | None = None,
    model_version: str = "",
    roles: Collection[str] | None = ANSWERED,
) -> pd.DataFrame:
    """One row per scored record: input columns, prediction, proba_<class>, model_version,
    request_id, logged_at (UTC), role, latency_ms. Loads the whole selection: large logs go
    through :func:`iter_request_log`."""
    chunks = list(iter_request_log(path, since=since, model_version=model_version, roles=roles))
    if not chunks:
        return _frame([])
    return pd.concat(chunks, ignore_index=True)
