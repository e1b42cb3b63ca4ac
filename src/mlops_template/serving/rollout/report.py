"""`mlops compare` and `mlops promote --challenger`: read the inputs, write reports/rollout/.

reports/rollout/compare.json holds the decision; `mlops promote --challenger` moves the
registry's ``champion`` alias to the challenger only when that decision is "promote", or with
``--override``, which both report files then record.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_template import io, paths, sources
from mlops_template.config import Params
from mlops_template.errors import DataError, GateFailed, RegistryError
from mlops_template.serving.rollout.compare import PROMOTE, Comparison, decide

log = logging.getLogger(__name__)
REPORT_MD, REPORT_JSON = paths.ROLLOUT_MD, paths.ROLLOUT_JSON


def window_start(params: Params, since: datetime | None) -> datetime | None:
    if since is not None:
        return since
    hours = params.compare.window_hours
    return datetime.now(UTC) - timedelta(hours=hours) if hours else None


def join_key(params: Params, contract: Any) -> str:
    """What labels are joined on: the route key when it is a column, else the contract's id."""
    key = params.serve.route_key.strip()
    if key and not key.lower().startswith("header:"):
        return key
    if not contract.id:
        raise DataError(
            "mlops compare: labels are joined on serve.route_key (a column) or the contract's "
            "id column, and there is neither"
        )
    return str(contract.id)


def read_labels(location: str, query: str | None, key: str, target: str) -> pd.DataFrame:
    """The labels table (file, URL or SQL through sources.py): one label per key (the last)."""
    table = sources.table(location, sql_query=query, name="mlops compare --labels")
    frame = sources.read(table)
    missing = [c for c in (key, target) if c not in frame.columns]
    if missing:
        raise DataError(
            f"mlops compare --labels {table.shown}: no column {', '.join(missing)} "
            f"(expected the join key {key!r} and the target {target!r})"
        )
    return frame[[key, target]].dropna().drop_duplicates(key, keep="last")


def read_window(path: str, since: datetime | None) -> pd.DataFrame:
    from mlops_template.request_log import read_request_log

    try:
        return read_request_log(path, since=since, roles=None)
    except FileNotFoundError as err:
        raise DataError(f"mlops compare: {err}") from None


def _num(value: Any) -> str:
    return "—" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def render_markdown(result: Comparison, window: str) -> str:
    title = "✅ promote the challenger" if result.decision == PROMOTE else "❌ keep the champion"
    lines = [
        f"### Rollout comparison: {title}",
        "",
        f"Window: {window} · mode: {result.between['mode']} · task: {result.task}",
        "",
    ]
    lines += ["| | champion | challenger |", "| --- | --- | --- |"]
    rows = [
        ("version", "version"),
        ("rows", "rows"),
        ("requests", "requests"),
        ("labelled rows", "labelled_rows"),
    ]
    for label, key in rows:
        lines.append(
            f"| {label} | {_num(result.champion.get(key))} | {_num(result.challenger.get(key))} |"
        )
    for part in ("latency_ms", "score", "label_share"):
        for name in result.champion.get(part, {}):
            a, b = result.champion[part][name], result.challenger.get(part, {}).get(name)
            lines.append(f"| {part} {name} | {_num(a)} | {_num(b)} |")
    lines += [
        "",
        "Between the two: "
        + ", ".join(f"{k} {_num(v)}" for k, v in result.between.items() if k != "mode"),
        "",
    ]
    if result.quality:
        lines += [
            "| metric | champion | challenger | difference | interval | gate | result |",
            "| --- | ---: | ---: | ---: | --- | --- | --- |",
        ]
        for q, row in zip(result.quality, result.gate_rows, strict=True):
            low, high = q["interval"]
            lines.append(
                f"| {q['metric']} | {_num(q['champion'])} | {_num(q['challenger'])} | "
                f"{_num(q['difference'])} | [{_num(low)}, {_num(high)}] "
                f"({q['confidence']:.0%}) | {row.threshold} | {q['status']} {q['note']} |"
            )
        lines.append("")
    for title, items in (("Why keep", result.reasons), ("Notes", result.notes)):
        if items:
            lines += [f"#### {title}", "", *[f"- {i}" for i in items], ""]
    return "\n".join(lines)


def to_json(result: Comparison, window: str) -> dict[str, Any]:
    return {
        "decision": result.decision,
        "window": window,
        "task": result.task,
        "champion": result.champion,
        "challenger": result.challenger,
        "between": result.between,
        "quality": result.quality,
        "gate": [asdict(r) for r in result.gate_rows],
        "reasons": result.reasons,
        "notes": result.notes,
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_compare(
    params: Params,
    log_path: str | None = None,
    since: datetime | None = None,
    labels: str | None = None,
    labels_query: str | None = None,
) -> Comparison:
    """Compare, write the reports, print the Markdown; GateFailed (exit 5) on "keep"."""
    from mlops_template.contract import load_contract

    contract = load_contract(params.data.contract)
    start = window_start(params, since)
    path = log_path or params.serve.request_log
    window = f"{path} since {start.isoformat(timespec='seconds')}" if start else f"{path}, all"
    key = join_key(params, contract) if labels else ""
    frame = read_labels(labels, labels_query, key, contract.target) if labels else None
    result = decide(params, read_window(path, start), frame, key, contract.target)
    markdown = render_markdown(result, window)
    io.write_text(markdown, REPORT_MD)
    io.write_json(to_json(result, window), REPORT_JSON)
    print(markdown, end="", flush=True)
    if result.decision != PROMOTE:
        raise GateFailed(
            f"compare: keep the champion ({'; '.join(result.reasons)}); report in {REPORT_MD}"
        )
    return result


# --------------------------------------------------------------------------- promote


def read_decision(path: Path = REPORT_JSON) -> dict[str, Any]:
    import json

    try:
        data = json.loads(path.read_text())
        if data["decision"] and data["challenger"]["version"]:
            return dict(data)
    except FileNotFoundError:
        raise RegistryError(f"{path}: missing; run `mlops compare` before promoting") from None
    except (ValueError, KeyError, TypeError):
        pass
    raise RegistryError(f"{path}: not a comparison report; run `mlops compare` again")


def challenger_run(tag: str) -> str:
    """The MLflow run the stored challenger model was trained in (package metadata)."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        run_id = bentoml.models.get(tag).info.metadata.get("mlflow_run_id")
    except NotFound:
        raise RegistryError(f"challenger {tag}: not in the BentoML store") from None
    if not run_id:
        raise RegistryError(f"challenger {tag}: its package records no MLflow run to promote")
    return str(run_id)


def promote_challenger(params: Params, image: str | None, override: bool) -> Any:
    """Move ``champion`` to the compared challenger's registry version after a "promote"
    decision (or deliberately without one); record it in the report."""
    from mlops_template.registry import promote, version_of_run

    report = read_decision()
    if report["decision"] != PROMOTE and not override:
        raise GateFailed(
            f"{REPORT_JSON}: the comparison said {report['decision']} "
            f"({'; '.join(report.get('reasons', []))}); promote anyway with --override"
        )
    name = params.tracking.registered_model
    run_id = challenger_run(report["challenger"]["version"])
    done = promote(name, version_of_run(name, run_id), image=image, run_id=run_id)
    overridden = report["decision"] != PROMOTE
    report["promoted"] = {
        "registry_version": done.version,
        "previous": done.previous,
        "override": overridden,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    io.write_json(report, REPORT_JSON)
    how = "OVERRIDDEN: promoted although the comparison said keep" if overridden else "promoted"
    line = f"{how}: {name} champion -> version {done.version} (was {done.previous})"
    before = REPORT_MD.read_text() if REPORT_MD.exists() else ""
    io.write_text(f"{before}\n#### Promotion\n\n{line}\n", REPORT_MD)
    return done
