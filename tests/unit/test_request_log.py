"""The request log: both formats round-trip and survive concurrent writers."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path
from typing import Any

import pytest

from mlops_template.request_log import RequestLog, read_request_log


@pytest.mark.parametrize("name", ["requests.db", "requests.jsonl"])
def test_concurrent_appends_all_rows_readable(tmp_path: Path, name: str) -> None:
    """Two writers (as two worker processes would be) fed by 8 threads each."""
    logs = [RequestLog(tmp_path / name), RequestLog(tmp_path / name)]

    def feed(thread: int) -> None:
        for i in range(20):
            ids = [thread * 100 + i * 2, thread * 100 + i * 2 + 1]
            columns = {
                "transaction_id": ids,
                "timestamp": [dt.datetime(2024, 1, 1, 12), dt.datetime(2024, 1, 2)],
                "channel": ["online", None],
            }
            preds = [{"prediction": 1, "probabilities": {"0": 0.25, "1": 0.75}}] * 2
            logs[thread % 2].append(f"req-{thread}-{i}", "m:1", columns, preds)

    threads = [threading.Thread(target=feed, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for log in logs:
        log.flush()
    out = read_request_log(tmp_path / name)
    assert len(out) == 8 * 20 * 2
    assert out["transaction_id"].is_unique
    assert set(out["proba_1"]) == {0.75} and set(out["prediction"]) == {1}
    assert out["timestamp"].iloc[0].startswith("2024-01-0")
    assert str(out["logged_at"].dt.tz) == "UTC"
    assert logs[0].errors == logs[1].errors == 0


def test_missing_log_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"requests\.jsonl"):
        read_request_log(tmp_path / "requests.jsonl")


def test_request_log_suffix_is_checked(raw_params: dict[str, Any]) -> None:
    from mlops_template.config import parse_params
    from mlops_template.errors import ConfigError

    raw_params["serve"]["request_log"] = "logs/requests.txt"
    with pytest.raises(ConfigError, match=r"serve\.request_log"):
        parse_params(raw_params)


@pytest.mark.parametrize(("failures", "written", "errors"), [(2, 2, 0), (99, 0, 1)])
def test_a_locked_database_is_retried_before_rows_count_as_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failures: int, written: int, errors: int
) -> None:
    """Two workers opening the log at once: one of them sees 'database is locked' at once
    (switching to WAL ignores the busy timeout). The batch is retried, not lost."""
    import sqlite3

    from mlops_template import request_log

    real = request_log._SqliteSink.write
    calls = {"n": 0}

    def flaky(self: object, rows: list[tuple]) -> None:
        calls["n"] += 1
        if calls["n"] <= failures:
            raise sqlite3.OperationalError("database is locked")
        real(self, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(request_log, "RETRIES", 5)
    monkeypatch.setattr(request_log._SqliteSink, "write", flaky)
    log = RequestLog(tmp_path / "requests.db")
    columns = {"transaction_id": [1, 2], "channel": ["online", None]}
    log.append("req", "m:1", columns, [{"prediction": 0}, {"prediction": 1}])
    log.flush()
    assert log.errors == errors
    rows = read_request_log(tmp_path / "requests.db") if written else []
    assert len(rows) == written


def _one(i: int) -> tuple[dict[str, list[Any]], list[dict[str, Any]]]:
    return {"transaction_id": [i]}, [{"prediction": 0}]


@pytest.mark.parametrize("name", ["requests.db", "requests.jsonl"])
def test_close_writes_everything_queued_in_few_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """A stopping worker: every queued row is written before close() returns; rows that queued
    up while a write was running go out together (one transaction / one write each)."""
    from mlops_template import request_log

    writes: list[int] = []
    sink = request_log._JsonlSink if name.endswith(".jsonl") else request_log._SqliteSink
    real = sink.write
    gate = threading.Event()

    def slow(self: Any, rows: list[tuple]) -> None:
        gate.wait(5)
        writes.append(len(rows))
        real(self, rows)

    monkeypatch.setattr(sink, "write", slow)
    log = RequestLog(tmp_path / name)
    for i in range(500):
        log.append(f"r{i}", "m:1", *_one(i))
    gate.set()
    assert log.close(timeout=30)
    assert not log._thread.is_alive()
    assert sorted(read_request_log(tmp_path / name)["transaction_id"]) == list(range(500))
    assert sum(writes) == 500 and len(writes) <= 1 + 500 // request_log.BATCH_ITEMS + 1
    assert log.errors == log.dropped == 0


def test_a_full_queue_drops_rows_and_counts_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The response path never waits for the log: beyond ``max_queue`` queued requests rows
    are dropped, counted in ``dropped`` and reported to ``on_dropped`` (the /metrics counter)."""
    from mlops_template import request_log

    gate, writing = threading.Event(), threading.Event()
    real = request_log._JsonlSink.write

    def blocked(self: Any, rows: list[tuple]) -> None:
        writing.set()
        gate.wait(5)
        real(self, rows)

    monkeypatch.setattr(request_log._JsonlSink, "write", blocked)
    reported: list[int] = []
    log = RequestLog(tmp_path / "requests.jsonl", max_queue=3, on_dropped=reported.append)
    log.append("r0", "m:1", *_one(0))
    assert writing.wait(5)  # the writer holds request 0; the queue takes 3 more
    for i in range(1, 11):
        log.append(f"r{i}", "m:1", *_one(i))
    gate.set()
    assert log.close(timeout=30)
    assert sorted(read_request_log(tmp_path / "requests.jsonl")["transaction_id"]) == [0, 1, 2, 3]
    assert log.dropped == sum(reported) == len(reported) == 7


def test_failed_writes_are_reported_to_on_error(tmp_path: Path) -> None:
    reported: list[int] = []
    blocker = tmp_path / "file"
    blocker.write_text("")
    log = RequestLog(blocker / "requests.jsonl", on_error=reported.append)  # parent is a file
    log.append("r", "m:1", *_one(1))
    assert log.flush(timeout=10)
    assert log.errors == sum(reported) == 1


@pytest.mark.parametrize("name", ["requests.db", "requests.jsonl"])
def test_pii_columns_are_never_written(tmp_path: Path, name: str) -> None:
    log = RequestLog(tmp_path / name, drop=["email", "customer_id"])
    columns = {
        "customer_id": [918273645],
        "email": ["jane.doe@example.com"],
        "amount": [12.5],
    }
    log.append("req-1", "m:1", columns, [{"prediction": 0}])
    log.flush()
    out = read_request_log(tmp_path / name)
    assert list(out["amount"]) == [12.5]
    assert "email" not in out and "customer_id" not in out
    raw = (tmp_path / name).read_bytes()
    assert b"jane.doe" not in raw and b"918273645" not in raw and b"email" not in raw
    assert log.errors == 0
