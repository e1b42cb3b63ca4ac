"""The current batch: where it comes from, how a bounded sample of it is read, and which of its
rows satisfy the data contract.

Files and SQL queries are read through :mod:`mlops_template.sources`; the service's request
log through :mod:`mlops_template.request_log`, sampled by the same reservoir.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from mlops_template import sources
from mlops_template.config import Params
from mlops_template.contract import Contract, check
from mlops_template.errors import ConfigError, DataError

LOG_CHUNK_ROWS = 50_000  # request-log rows per chunk (each row is parsed JSON: heavier)


@dataclass
class RequestLogWindow:
    """The service's request log as the current batch, cut to the rows logged since a time
    and served by one model version. Any other batch is a :class:`sources.Table`."""

    location: str
    since: datetime | None = None
    model_version: str = ""


# Where the current batch comes from: a file or query (read through sources) or the log.
Source = sources.Table | RequestLogWindow


def describe(source: Source) -> str:
    """The source as reports name it: ``file:<path>``, ``sql:<url>`` (password masked) or
    ``request_log:<path>``."""
    if isinstance(source, RequestLogWindow):
        return f"request_log:{source.location}"
    if source.fmt == "sql":
        return f"sql:{source.shown.strip(chr(39))}"
    return f"file:{source.location}"


def parse_since(text: str) -> datetime:
    """``--since``: an ISO time (UTC unless it says otherwise) or a look-back like 24h / 7d."""
    ago = re.fullmatch(r"(\d+)([hd])", text.strip())
    if ago:
        hours = int(ago[1]) * (24 if ago[2] == "d" else 1)
        return datetime.now(UTC) - timedelta(hours=hours)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: expected an ISO time (2026-05-01T00:00) or hours/days (24h, 7d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def resolve_source(
    params: Params,
    current: str | None = None,
    sql: bool = False,
    request_log: str | None = None,
    since: datetime | None = None,
    model_version: str | None = None,
) -> Source:
    """Command-line choice (--current / --sql / --request-log, --since, --model-version) over
    params.yaml's monitor (window_hours and model_version apply to the request log only)."""
    source = _pick_source(params, current, sql, request_log)
    if not isinstance(source, RequestLogWindow):
        if since is not None or model_version:
            raise ConfigError("--since and --model-version select rows of the request log only")
        return source
    m = params.monitor
    if since is None and m.window_hours:
        since = datetime.now(UTC) - timedelta(hours=m.window_hours)
    source.since = since
    source.model_version = m.model_version if model_version is None else model_version
    return source


def file_source(location: str) -> sources.Table:
    return sources.table(location, name="monitor file")


def sql_source(url: str, query: str) -> sources.Table:
    if not (url and query):
        raise ConfigError("monitor.sql.url and monitor.sql.query are required for --sql")
    return sources.table(url, sql_query=query, name="monitor sql")


def _pick_source(params: Params, current: str | None, sql: bool, request_log: str | None) -> Source:
    m = params.monitor
    if current:
        return file_source(current)
    if sql:
        return sql_source(m.sql.url, m.sql.query)
    if request_log is not None:
        return RequestLogWindow(request_log or params.serve.request_log)
    if m.source == "file":
        if not m.path:
            raise ConfigError("monitor.path is required when monitor.source is 'file'")
        return file_source(m.path)
    if m.source == "sql":
        return sql_source(m.sql.url, m.sql.query)
    return RequestLogWindow(m.path or params.serve.request_log)


def read_current(source: Source, columns: list[str], n: int, seed: int) -> tuple[pd.DataFrame, int]:
    """A seeded sample of at most ``n`` rows of the batch, restricted to ``columns``, and the
    batch's full length; a batch without rows is a DataError."""
    if isinstance(source, RequestLogWindow):
        frame, total = _sample_request_log(source, columns, n, seed)
    else:
        frame, total = sources.sample(source, n, seed, columns=columns)
    if total == 0:
        window = version = ""
        if isinstance(source, RequestLogWindow):
            window = f" logged since {source.since.isoformat()}" if source.since else ""
            version = f" served by {source.model_version}" if source.model_version else ""
        raise DataError(f"monitor {describe(source)}: no rows{window}{version}")
    return frame[[c for c in frame.columns if c in columns]], total


def _sample_request_log(
    source: RequestLogWindow, columns: list[str], n: int, seed: int
) -> tuple[pd.DataFrame, int]:
    where = f"monitor request_log {source.location!r}"
    if not Path(source.location).exists():
        raise DataError(f"{where}: file does not exist (no request served yet?)")
    try:
        return sources.reservoir(_request_log_chunks(source, set(columns)), n, seed)
    except Exception as err:  # sqlite3 / orjson on a damaged log
        raise DataError(f"{where}: cannot read the request log: {err}") from err


def _request_log_chunks(source: RequestLogWindow, columns: set[str]) -> Iterator[pd.DataFrame]:
    from mlops_template.request_log import iter_request_log

    for chunk in iter_request_log(
        source.location,
        since=source.since,
        model_version=source.model_version,
        chunk_rows=LOG_CHUNK_ROWS,
    ):
        yield chunk[[c for c in chunk.columns if c in columns]]


@dataclass
class ContractResult:
    valid: pd.DataFrame
    failures: pd.DataFrame
    usable: bool  # False when a failure concerns whole columns: drift cannot be measured

    @property
    def ok(self) -> bool:
        return self.failures.empty


def check_batch(frame: pd.DataFrame, contract: Contract) -> ContractResult:
    """Validate the batch; rows failing a row-level check are dropped, the rest is coerced."""
    with_target = contract.target in frame.columns
    report = check(frame, contract, with_target=with_target)
    if report.ok:
        return ContractResult(report.valid, report.failures, usable=True)
    index = pd.to_numeric(report.failures["index"], errors="coerce")
    if index.isna().any():
        return ContractResult(frame.iloc[0:0], report.failures, usable=False)
    rest = frame.drop(index=index.astype(int).unique())
    again = check(rest, contract, with_target=with_target) if len(rest) else None
    if again is None or not again.ok:
        return ContractResult(frame.iloc[0:0], report.failures, usable=False)
    return ContractResult(again.valid, report.failures, usable=True)


def attach_labels(current: pd.DataFrame, path: str, contract: Contract) -> tuple[pd.DataFrame, int]:
    """Labels that arrived later (a CSV/Parquet file of id + target), joined to the served
    rows by the contract's id column; served rows without a label are left out. Returns the
    labelled rows and how many served rows had none."""
    if not contract.id or contract.id in contract.pii_columns:
        raise ConfigError(
            f"--labels {path}: the contract has no (non-pii) id column to join labels on"
        )
    key, target = contract.id, contract.target
    where = f"monitor --labels {path}"
    labels = sources.read(sources.table(path, name=where), columns=[key, target])
    missing = [c for c in (key, target) if c not in labels.columns]
    if missing:
        raise DataError(f"{where}: no column {', '.join(missing)}")
    if key not in current.columns:
        raise DataError(f"{where}: the monitored rows have no {key} column to join on")
    by_id = dict(zip(labels[key].astype(str), labels[target], strict=True))
    found = current[key].astype(str).map(by_id)
    labelled = current[found.notna()].assign(**{target: found[found.notna()]})
    if labelled.empty:
        raise DataError(f"{where}: no label matches a monitored row's {key}")
    return labelled, int(found.isna().sum())
