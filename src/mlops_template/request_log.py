"""Append-only log of served requests (rows + predictions) that monitoring reads.

SQLite in WAL mode: several worker processes append safely. Writes happen on a background
thread fed by a bounded queue, so logging never blocks or fails a request; errors are counted
and logged, never raised to the caller.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

_DDL = (
    "CREATE TABLE IF NOT EXISTS requests (request_id TEXT, logged_at TEXT, "
    "model_version TEXT, record TEXT, prediction TEXT)"
)


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(_DDL)
    return conn


class RequestLog:
    """Background writer; ``append`` only enqueues (drops and counts when the queue is full)."""

    def __init__(self, path: str | Path, max_queue: int = 10_000) -> None:
        self.path = Path(path)
        self.errors = 0
        self.dropped = 0
        self._queue: queue.Queue[list[tuple[str, str, str, str, str]]] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()

    def append(
        self,
        request_id: str,
        model_version: str,
        records: list[dict[str, Any]],
        predictions: list[dict[str, Any]],
    ) -> None:
        now = datetime.now(UTC).isoformat()
        rows = [
            (request_id, now, model_version, json.dumps(r, default=str), json.dumps(p))
            for r, p in zip(records, predictions, strict=True)
        ]
        try:
            self._queue.put_nowait(rows)
        except queue.Full:
            self.dropped += len(rows)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything queued so far is written (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)  # type: ignore[arg-type]
        done.wait(timeout)

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                conn = conn or _connect(self.path)
                with conn:
                    conn.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?)", item)
            except Exception:  # logging must never take the service down
                self.errors += 1
                log.exception("request log: could not write %d rows to %s", len(item), self.path)


def read_request_log(path: str | Path) -> pd.DataFrame:
    """One row per scored record: input columns, prediction, proba_<class>, model_version,
    request_id, logged_at (UTC)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"request log {path} does not exist (no request served yet?)")
    with sqlite3.connect(path) as conn:
        raw = pd.read_sql_query("SELECT * FROM requests ORDER BY rowid", conn)
    records = pd.DataFrame([json.loads(r) for r in raw["record"]], index=raw.index)
    preds = pd.DataFrame([json.loads(p) for p in raw["prediction"]], index=raw.index)
    probas = pd.DataFrame(
        [p.pop("probabilities", {}) or {} for p in preds.to_dict("records")], index=raw.index
    ).add_prefix("proba_")
    out = pd.concat(
        [records, preds.drop(columns=["probabilities", "model_version"], errors="ignore"), probas],
        axis=1,
    )
    out["model_version"] = raw["model_version"]
    out["request_id"] = raw["request_id"]
    out["logged_at"] = pd.to_datetime(raw["logged_at"], utc=True)
    return out
