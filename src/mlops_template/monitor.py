"""`mlops monitor`: compare a current batch with the reference and say when to retrain.

The reference is the held-out split as the evaluate stage scored it (data/reference/). A
current batch comes from a CSV/Parquet file, a SQL query or the service's request log (all of
it, or its last hours). Large batches are sampled (seeded; Parquet row by row without loading
the file, the other sources chunk by chunk through a reservoir) so memory stays bounded. The
sample is checked against the data contract first: contract failures are reported apart from
drift (exit 8). Then Evidently measures per-column drift, the share of drifted input columns
and drift of the model's output; when the batch has labels, quality is compared with
reports/metrics.json. Crossing a threshold of the ``monitor`` section of params.yaml exits 7
("retrain"). The summary is written whenever the batch could be read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_template import io, metrics, paths
from mlops_template.config import PVALUE_METHODS, FeaturesParams, MonitorParams, Params
from mlops_template.contract import Contract, check, describe_failures, load_contract
from mlops_template.errors import BatchContractViolation, ConfigError, DataError, RetrainNeeded

log = logging.getLogger(__name__)

CHUNK_ROWS = 250_000  # rows per batch read from a large source
LOG_CHUNK_ROWS = 50_000  # request-log rows per chunk (each row is parsed JSON: heavier)


# --------------------------------------------------------------------------- reading


@dataclass
class Source:
    """Where the current batch comes from: kind is file, sql or request_log. A request log can
    be cut to the rows logged since a time and served by one model version."""

    kind: str
    location: str = ""
    query: str = ""
    since: datetime | None = None
    model_version: str = ""

    def describe(self) -> str:
        return f"{self.kind}:{self.location}" if self.location else self.kind


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
    if source.kind != "request_log":
        if since is not None or model_version:
            raise ConfigError("--since and --model-version select rows of the request log only")
        return source
    m = params.monitor
    if since is None and m.window_hours:
        since = datetime.now(UTC) - timedelta(hours=m.window_hours)
    source.since = since
    source.model_version = m.model_version if model_version is None else model_version
    return source


def _pick_source(params: Params, current: str | None, sql: bool, request_log: str | None) -> Source:
    m = params.monitor
    if current:
        return Source("file", current)
    if sql:
        if not (m.sql.url and m.sql.query):
            raise ConfigError("monitor.sql.url and monitor.sql.query are required for --sql")
        return Source("sql", m.sql.url, m.sql.query)
    if request_log is not None:
        return Source("request_log", request_log or params.serve.request_log)
    if m.source == "file":
        if not m.path:
            raise ConfigError("monitor.path is required when monitor.source is 'file'")
        return Source("file", m.path)
    if m.source == "sql":
        return Source("sql", m.sql.url, m.sql.query)
    return Source("request_log", m.path or params.serve.request_log)


def reservoir(chunks: Iterable[pd.DataFrame], n: int, seed: int) -> tuple[pd.DataFrame, int]:
    """A seeded uniform sample of at most ``n`` rows from a stream of chunks, in stream order.

    Every row gets a random key and the ``n`` smallest keys are kept, so memory holds at most
    ``n`` rows plus one chunk whatever the stream's length."""
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


def sample_parquet(path: str, columns: list[str], n: int, seed: int) -> tuple[pd.DataFrame, int]:
    """Seeded sample of ``n`` rows of a Parquet file, reading only ``columns``, batch by batch."""
    if "://" not in path:
        return _sample_parquet(path, columns, n, seed)
    import fsspec

    with fsspec.open(path, "rb") as handle:
        return _sample_parquet(handle, columns, n, seed)


def _sample_parquet(handle: Any, columns: list[str], n: int, seed: int) -> tuple[pd.DataFrame, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(handle)
    total = pf.metadata.num_rows
    wanted = [c for c in pf.schema_arrow.names if c in columns]
    if total <= n:
        return pf.read(columns=wanted).to_pandas(), total
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    pieces, start = [], 0
    for batch in pf.iter_batches(batch_size=CHUNK_ROWS, columns=wanted):
        end = start + batch.num_rows
        lo, hi = np.searchsorted(chosen, [start, end])
        if hi > lo:
            pieces.append(batch.take(pa.array(chosen[lo:hi] - start)))
        start = end
    return pa.Table.from_batches(pieces, schema=pieces[0].schema).to_pandas(), total


def _csv_chunks(path: str, columns: list[str]) -> Iterator[pd.DataFrame]:
    yield from pd.read_csv(path, usecols=lambda c: c in columns, chunksize=CHUNK_ROWS)


def _sql_chunks(url: str, query: str) -> Iterator[pd.DataFrame]:
    """Server-side cursor (stream_results): without it, drivers such as psycopg buffer the
    whole result in memory before pandas sees the first chunk."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            streaming = conn.execution_options(stream_results=True, max_row_buffer=CHUNK_ROWS)
            yield from pd.read_sql_query(sqlalchemy.text(query), streaming, chunksize=CHUNK_ROWS)
    finally:
        engine.dispose()


def _request_log_chunks(source: Source) -> Iterator[pd.DataFrame]:
    from mlops_template.request_log import iter_request_log

    yield from iter_request_log(
        source.location,
        since=source.since,
        model_version=source.model_version,
        chunk_rows=LOG_CHUNK_ROWS,
    )


def read_current(source: Source, columns: list[str], n: int, seed: int) -> tuple[pd.DataFrame, int]:
    """The (sampled) current batch, restricted to ``columns``, and the batch's full length."""
    where = f"monitor {source.kind} {source.location!r}"
    local = source.kind != "sql" and "://" not in source.location
    if local and not Path(source.location).exists():
        hint = " (no request served yet?)" if source.kind == "request_log" else ""
        raise DataError(f"{where}: file does not exist{hint}")
    try:
        if source.kind == "file" and source.location.endswith((".parquet", ".pq")):
            frame, total = sample_parquet(source.location, columns, n, seed)
        elif source.kind == "file":
            frame, total = reservoir(_csv_chunks(source.location, columns), n, seed)
        elif source.kind == "sql":
            frame, total = reservoir(_sql_chunks(source.location, source.query), n, seed)
        else:
            chunks = (
                c[[x for x in c.columns if x in columns]] for c in _request_log_chunks(source)
            )
            frame, total = reservoir(chunks, n, seed)
    except DataError:
        raise
    except Exception as err:  # pandas, pyarrow, sqlalchemy and sqlite each raise their own
        raise DataError(f"{where}: cannot read the batch: {err}") from None
    if total == 0:
        window = f" logged since {source.since.isoformat()}" if source.since else ""
        version = f" served by {source.model_version}" if source.model_version else ""
        raise DataError(f"{where}: no rows{window}{version}")
    return frame[[c for c in frame.columns if c in columns]], total


# --------------------------------------------------------------------------- contract


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


# --------------------------------------------------------------------------- drift


@dataclass
class Columns:
    """Input columns by Evidently type, and the model-output column drift is measured on."""

    numerical: list[str]
    categorical: list[str]
    prediction: str
    prediction_numerical: bool

    @property
    def inputs(self) -> list[str]:
        return self.numerical + self.categorical


def columns_for(contract: Contract, meta: dict[str, Any]) -> Columns:
    """Contract dtypes decide the types (never Evidently's guessing); id and time are skipped."""
    skip = {contract.target, contract.id, contract.timestamp}
    inputs = [c for c in meta.get("input_columns", contract.feature_columns) if c not in skip]
    num = [c for c in inputs if contract.columns[c].dtype in ("int", "float")]
    cat = [c for c in inputs if c not in num and contract.columns[c].dtype != "datetime"]
    if meta["task"] == "binary":
        return Columns(num, cat, f"proba_{meta['classes'][1]}", True)
    return Columns(num, cat, "prediction", meta["task"] == "regression")


def derived_features(model: Any) -> tuple[FeaturesParams | None, list[str]]:
    """The model's own feature spec and the derived columns worth a drift check of their own:
    datetime parts (the timestamp itself is not compared, so "more night-time" shows only
    here), ratios and aggregates (they combine columns). Log, power and bin transforms are
    left out: each is a function of one input column whose drift is measured already."""
    step = getattr(model, "named_steps", {}).get("features")
    raw = getattr(step, "kw_args", None) or {}
    if "spec" not in raw:
        return None, []
    spec = FeaturesParams.model_validate(raw["spec"])
    names = [f"{d.column}_{part}" for d in spec.datetime for part in d.parts]
    names += [r.name for r in spec.ratios] + [a.name for a in spec.aggregates]
    return spec, [n for n in names if n not in spec.drop]


def with_derived(frame: pd.DataFrame, spec: FeaturesParams, names: list[str]) -> pd.DataFrame:
    from mlops_template.features import build_features

    built = build_features(frame, spec)
    return frame.assign(**{n: pd.to_numeric(built[n], errors="coerce") for n in names})


def prediction_column(output: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """What the reference stores for the output: P(positive), the class label or the value."""
    if meta["task"] == "multiclass":
        return np.asarray(meta["classes"], dtype=object)[np.argmax(output, axis=1)]
    return output


def evidently_frame(frame: pd.DataFrame, cols: Columns) -> pd.DataFrame:
    """Plain dtypes Evidently handles: float64 numbers (nullable ints too), object labels."""
    out = pd.DataFrame(index=frame.index)
    for c in cols.numerical:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in cols.categorical:
        values = frame[c].astype(object)
        out[c] = values.where(values.notna(), None).map(lambda v: None if v is None else str(v))
    pred = frame[cols.prediction]
    out[cols.prediction] = (
        pred.astype("float64") if cols.prediction_numerical else pred.astype(str).astype(object)
    )
    return out.reset_index(drop=True)


@dataclass
class Drift:
    share: float
    drifted: list[str]
    columns: dict[str, dict[str, Any]]
    prediction: dict[str, Any]
    snapshot: Any = field(repr=False, default=None)


def _drifted(score: float, method: str, threshold: float) -> bool:
    return score < threshold if method in PVALUE_METHODS else score >= threshold


def measure_drift(
    current: pd.DataFrame, reference: pd.DataFrame, cols: Columns, params: MonitorParams
) -> Drift:
    """Evidently's DataDriftPreset on the input columns plus ValueDrift on the model output.

    A column with no value at all in the current sample (a broken feed) or in the reference
    cannot be compared: Evidently raises on it. It is reported as drifted with no score and
    left out of the Evidently run; anything else Evidently cannot handle is a DataError."""
    empty = [c for c in cols.inputs if current[c].isna().all() or reference[c].isna().all()]
    if current[cols.prediction].isna().all():
        raise DataError(f"monitor: model output {cols.prediction} has no value in the batch")
    measured = Columns([c for c in cols.numerical if c not in empty],
                       [c for c in cols.categorical if c not in empty],
                       cols.prediction, cols.prediction_numerical)  # fmt: skip
    if not measured.inputs:
        raise DataError(f"monitor: every input column is empty in the batch: {', '.join(empty)}")
    try:
        drift = _evidently(current, reference, measured, params)
    except Exception as err:  # Evidently / scipy raise plain ValueError, TypeError, ...
        raise DataError(f"monitor: Evidently could not measure drift: {err}") from err
    for c in empty:
        where = "current batch" if current[c].isna().all() else "reference"
        drift.columns[c] = {"method": "empty", "score": None, "threshold": None,
                            "drifted": True, "note": f"no value in the {where}"}  # fmt: skip
        log.warning("monitor: column %s has no value in the %s: counted as drifted", c, where)
    drift.drifted = sorted(c for c, v in drift.columns.items() if v["drifted"])
    drift.share = round(len(drift.drifted) / len(drift.columns), 6)
    return drift


def _evidently(
    current: pd.DataFrame, reference: pd.DataFrame, cols: Columns, params: MonitorParams
) -> Drift:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numerical = cols.numerical + ([cols.prediction] if cols.prediction_numerical else [])
    categorical = cols.categorical + ([] if cols.prediction_numerical else [cols.prediction])
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    pred_method = params.num_method if cols.prediction_numerical else params.cat_method
    report = Report(
        [
            DataDriftPreset(
                columns=cols.inputs, drift_share=params.drift_share,
                num_method=params.num_method, cat_method=params.cat_method,
                num_threshold=params.column_threshold, cat_threshold=params.column_threshold,
            ),
            ValueDrift(column=cols.prediction, method=pred_method,
                       threshold=params.column_threshold),
        ]
    )  # fmt: skip
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return _parse(json.loads(snapshot.json()), cols, params, snapshot)


def _parse(result: dict[str, Any], cols: Columns, params: MonitorParams, snapshot: Any) -> Drift:
    share, per_column = 0.0, {}
    for m in result["metrics"]:
        kind = m["config"]["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share = float(m["value"]["share"])
        elif kind == "ValueDrift":
            column = m["config"]["column"]
            numeric = column in cols.numerical or (
                column == cols.prediction and cols.prediction_numerical
            )
            method = params.num_method if numeric else params.cat_method
            score = float(m["value"])
            per_column[column] = {
                "method": method,
                "score": round(score, 6),
                "threshold": params.column_threshold,
                "drifted": _drifted(score, method, params.column_threshold),
            }
    prediction = per_column.pop(cols.prediction) | {"column": cols.prediction}
    drifted = sorted(c for c, v in per_column.items() if v["drifted"])
    return Drift(round(share, 6), drifted, per_column, prediction, snapshot)


# --------------------------------------------------------------------------- quality


def quality(
    frame: pd.DataFrame,
    output: np.ndarray,
    meta: dict[str, Any],
    baseline: dict[str, float] | None,
    allowed: dict[str, float],
    threshold: float,
) -> dict[str, Any]:
    """Metrics on the labelled batch vs the evaluation metrics; a drop beyond ``allowed`` fails."""
    if baseline is None and allowed:
        raise DataError(
            f"{paths.METRICS}: missing, so the labelled batch's quality has nothing to be compared "
            "with (pull or reproduce the evaluate stage, or empty monitor.quality_drop)"
        )
    baseline = baseline or {}
    classes = np.asarray(meta["classes"]) if meta.get("classes") is not None else None
    current = metrics.score(meta["task"], frame[meta["target"]].to_numpy(), output, classes,
                            threshold)  # fmt: skip
    checks: dict[str, Any] = {}
    for name, limit in sorted(allowed.items()):
        if name not in current or name not in baseline:
            raise ConfigError(
                f"monitor.quality_drop.{name}: not a metric of this task "
                f"(known: {', '.join(sorted(baseline))})"
            )
        now, before = current[name], baseline[name]
        drop = (before - now) if metrics.HIGHER_IS_BETTER[name] else (now - before)
        failed = bool(np.isfinite(drop) and drop > limit)
        checks[name] = {"baseline": before, "current": now, "drop": round(drop, 6),
                        "allowed": limit, "failed": failed}  # fmt: skip
    return {"metrics": current, "checks": checks}


# --------------------------------------------------------------------------- the run


@dataclass
class Outcome:
    summary: dict[str, Any]
    failures: pd.DataFrame
    drift: Drift | None
    reasons: list[str]


def retrain_reasons(drift: Drift, qual: dict[str, Any] | None, params: MonitorParams) -> list[str]:
    """Plain sentences, one per crossed threshold."""
    reasons = []
    n, k = len(drift.columns), len(drift.drifted)
    if drift.share >= params.drift_share:
        reasons.append(
            f"drift share {drift.share:.2f} >= {params.drift_share:.2f} "
            f"({k} of {n} columns drifted: {', '.join(drift.drifted)})"
        )
    p = drift.prediction
    if params.prediction_drift and p["drifted"]:
        reasons.append(
            f"prediction {p['column']} drifted ({p['method']} {p['score']:.3f}, "
            f"threshold {p['threshold']})"
        )
    for name, c in (qual or {}).get("checks", {}).items():
        if c["failed"]:
            reasons.append(
                f"{name} dropped {c['drop']:.3f} > {c['allowed']} "
                f"({c['baseline']:.4f} -> {c['current']:.4f})"
            )
    return reasons


def monitor(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    *,
    model: Any,
    meta: dict[str, Any],
    contract: Contract,
    baseline: dict[str, float] | None,
    params: MonitorParams,
    threshold: float = 0.5,
    total_rows: int | None = None,
    served: pd.Series | None = None,
) -> Outcome:
    """The pure core: contract check, drift, quality, decision. Writes nothing.

    ``served`` (aligned with ``current``): the model output the service logged for each row
    (P(positive), label or value); prediction drift is then measured on what was served, not
    on a re-scoring by the local model."""
    result = check_batch(current, contract)
    summary: dict[str, Any] = {
        "rows_total": int(total_rows if total_rows is not None else len(current)),
        "rows_sampled": len(current),
        "rows_reference": len(reference),
        "contract": {"ok": result.ok, "failures": len(result.failures),
                     "rows_dropped": len(current) - len(result.valid)},
    }  # fmt: skip
    if not result.usable:
        summary |= {"status": "contract_violation", "retrain": False}
        return Outcome(summary, result.failures, None, [])
    cols = columns_for(contract, meta)
    valid = result.valid.reset_index(drop=True)
    labelled = meta["target"] in valid.columns
    kept = served.loc[result.valid.index] if served is not None else None
    use_served = kept is not None and bool(kept.notna().all())
    output = score(model, valid, meta) if labelled or not use_served else None
    if kept is not None and use_served:
        valid[cols.prediction] = kept.to_numpy()
    elif output is not None:  # nothing served (or not for every row): the local model's output
        valid[cols.prediction] = prediction_column(output, meta)
    summary["prediction_source"] = "served" if use_served else "model"
    spec, derived = derived_features(model) if params.derived_features else (None, [])
    if spec is not None and derived:
        valid, reference = (
            with_derived(valid, spec, derived),
            with_derived(reference, spec, derived),
        )
        cols = Columns(cols.numerical + derived, cols.categorical, cols.prediction,
                       cols.prediction_numerical)  # fmt: skip
    drift = measure_drift(evidently_frame(valid, cols), evidently_frame(reference, cols),
                          cols, params)  # fmt: skip
    qual = (
        quality(valid, output, meta, baseline, params.quality_drop, threshold)
        if labelled and output is not None
        else None
    )
    reasons = retrain_reasons(drift, qual, params)
    status = "contract_violation" if not result.ok else ("retrain" if reasons else "ok")
    summary |= {
        "status": status,
        "retrain": bool(reasons),
        "reasons": reasons,
        "drift": {"share": drift.share, "threshold": params.drift_share,
                  "drifted_columns": drift.drifted, "columns": drift.columns},
        "prediction_drift": drift.prediction,
        "quality": qual,
    }  # fmt: skip
    return Outcome(summary, result.failures, drift, reasons)


def score(model: Any, frame: pd.DataFrame, meta: dict[str, Any]) -> np.ndarray:
    """The local model's output on the batch (for quality, or when nothing was served)."""
    from mlops_template.model import model_output

    try:
        return model_output(model, frame[meta["input_columns"]], meta["task"])
    except Exception as err:  # scikit-learn raises plain ValueError / TypeError
        raise DataError(f"monitor: the model could not score the batch: {err}") from err


def render_markdown(summary: dict[str, Any], source: str) -> str:
    """A short human summary (the body of the drift issue the monitor workflow opens)."""
    lines = [f"## Monitoring: {summary['status']}", "", f"Current batch: `{source}`, "
             f"{summary['rows_total']} rows ({summary['rows_sampled']} sampled) vs "
             f"{summary['rows_reference']} reference rows.", ""]  # fmt: skip
    for reason in summary.get("reasons", []):
        lines.append(f"- retrain: {reason}")
    c = summary["contract"]
    if not c["ok"]:
        lines.append(f"- contract: {c['failures']} failures, {c['rows_dropped']} rows dropped")
    if "drift" in summary:
        lines += ["", "| column | method | score | drifted |", "| --- | --- | --- | --- |"]
        rows = summary["drift"]["columns"] | {
            f"{summary['prediction_drift']['column']} (prediction)": summary["prediction_drift"]
        }
        for name, v in rows.items():
            score = "-" if v["score"] is None else f"{v['score']:.4f}"
            lines.append(f"| {name} | {v['method']} | {score} | {v['drifted']} |")
    checks = (summary.get("quality") or {}).get("checks", {})
    if checks:
        lines += ["", "| metric | evaluation | this batch | drop | allowed |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, c in checks.items():
            lines.append(f"| {name} | {c['baseline']:.4f} | {c['current']:.4f} | "
                         f"{c['drop']:.4f} | {c['allowed']} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def _clear_outputs() -> None:
    for stale in (paths.MONITOR_REPORT, paths.MONITOR_SUMMARY, paths.MONITOR_SUMMARY_MD,
                  paths.MONITOR_CONTRACT_FAILURES):  # fmt: skip
        stale.unlink(missing_ok=True)


def write(outcome: Outcome, source: str) -> None:
    """Summary (JSON + Markdown) always; the HTML report when drift was measured."""
    if outcome.drift is not None:
        snap = outcome.drift.snapshot
        io.write_atomic(paths.MONITOR_REPORT, lambda p: snap.save_html(str(p)))
    if not outcome.failures.empty:
        io.write_csv(outcome.failures, paths.MONITOR_CONTRACT_FAILURES)
    io.write_text(render_markdown(outcome.summary, source), paths.MONITOR_SUMMARY_MD)
    io.write_json(outcome.summary | {"source": source}, paths.MONITOR_SUMMARY)


def _log_selection(source: Source, sample: pd.DataFrame) -> dict[str, Any]:
    """Which rows of the log were monitored: window, version filter, versions in the sample."""
    versions = sample["model_version"].value_counts() if "model_version" in sample else None
    return {
        "since": source.since.isoformat() if source.since else None,
        "model_version": source.model_version or None,
        "sampled_model_versions": {} if versions is None else {
            str(k): int(v) for k, v in versions.items()},
    }  # fmt: skip


def load_reference(n: int, seed: int) -> pd.DataFrame:
    if not paths.REFERENCE.exists():
        raise DataError(f"{paths.REFERENCE}: no reference sample (run `dvc repro evaluate`)")
    reference = pd.read_parquet(paths.REFERENCE)
    if len(reference) > n:
        reference = reference.sample(n=n, random_state=seed).sort_index()
    return reference.reset_index(drop=True)


def run(params: Params, source: Source) -> dict[str, Any]:
    """Entry point of `mlops monitor`: read, check, measure, write, then exit 0, 7 or 8."""
    from mlops_template.model import load

    _clear_outputs()
    m = params.monitor
    contract = load_contract(params.data.contract)
    model, model_meta = load()
    meta = model_meta.model_dump()
    baseline = json.loads(paths.METRICS.read_text()) if paths.METRICS.exists() else None
    reference = load_reference(m.sample_rows, m.seed)
    logged = [columns_for(contract, meta).prediction, "model_version"]
    wanted = list(contract.columns) + (logged if source.kind == "request_log" else [])
    current, total = read_current(source, wanted, m.sample_rows, m.seed)
    log.info("monitor: %d of %d rows from %s vs %d reference rows",
             len(current), total, source.describe(), len(reference))  # fmt: skip
    served = current.get(logged[0]) if source.kind == "request_log" else None
    outcome = monitor(
        current[[c for c in current.columns if c in contract.columns]], reference, model=model,
        meta=meta, contract=contract, baseline=baseline, params=m,
        threshold=model_meta.threshold or 0.5, total_rows=total, served=served,
    )  # fmt: skip
    if source.kind == "request_log":
        outcome.summary["request_log"] = _log_selection(source, current)
    write(outcome, source.describe())
    finish(outcome, source.describe())
    return outcome.summary


def preflight(source: Source) -> None:
    """Can a run measure anything here? The deployed model and its reference must be in the
    workspace (pulled from the DVC remote in CI: never retrained for the check) and the
    source must be configured and, if local, exist. Raises DataError naming what is missing,
    so a scheduled workflow can skip with a notice instead of failing every day."""
    missing = [str(p) for p in (paths.MODEL, paths.MODEL_META, paths.REFERENCE) if not p.exists()]
    problems = []
    if missing:
        problems.append(
            f"no deployed model in the workspace ({', '.join(missing)} missing): configure a "
            "DVC remote and `make dvc-pull`, or `make repro`"
        )
    local = source.kind != "sql" and "://" not in source.location
    if source.kind == "sql" and not (source.location and source.query):
        problems.append("monitor.sql.url / monitor.sql.query are empty")
    elif local and not Path(source.location).exists():
        problems.append(
            f"current data {source.describe()} not found: point monitor.source / monitor.path "
            "(or monitor.sql) at data this machine can reach"
        )
    if problems:
        raise DataError("monitor preflight: " + "; ".join(problems))
    log.info("monitor preflight: model, reference and %s are in place", source.describe())


def finish(outcome: Outcome, source: str) -> None:
    """Log the verdict; raise the documented status (8 contract before 7 retrain)."""
    s = outcome.summary
    if "drift" in s:
        log.info("monitor: drift share %.2f (%d of %d columns), prediction %s %.3f",
                 s["drift"]["share"], len(s["drift"]["drifted_columns"]),
                 len(s["drift"]["columns"]), s["prediction_drift"]["method"],
                 s["prediction_drift"]["score"])  # fmt: skip
    retrain = "retrain: " + "; ".join(outcome.reasons) if outcome.reasons else ""
    if not outcome.failures.empty:
        text = describe_failures(outcome.failures, f"monitored batch {source}")
        more = f"\n{retrain}" if retrain else ""
        raise BatchContractViolation(
            f"{text}\nfull failure table: {paths.MONITOR_CONTRACT_FAILURES}{more}",
            outcome.failures,
        )
    if retrain:
        raise RetrainNeeded(retrain)
    log.info("monitor: no drift over the thresholds, no retraining needed")
