"""What a monitoring run leaves behind: reports/monitoring/summary.json and summary.md (the
body of the drift issue the monitor workflow opens), the Evidently HTML report and the
contract failure table."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_template import io, paths
from mlops_template.monitor.batch import RequestLogWindow
from mlops_template.monitor.core import Outcome


def render_markdown(summary: dict[str, Any], source: str) -> str:
    """A short human summary (the body of the drift issue the monitor workflow opens)."""
    lines = [
        f"## Monitoring: {summary['status']}",
        "",
        f"Current batch: `{source}`, "
        f"{summary['rows_total']} rows ({summary['rows_sampled']} sampled) vs "
        f"{summary['rows_reference']} reference rows.",
        "",
    ]
    for reason in summary.get("reasons", []):
        lines.append(f"- retrain: {reason}")
    age = summary.get("model_age") or {}
    if age.get("days") is not None:
        lines.append(f"- model age: {age['days']:.1f} days (trained {age['trained_at']})")
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
        lines += [
            "",
            "| metric | evaluation | this batch | drop | allowed |",
            "| --- | --- | --- | --- | --- |",
        ]
        for name, c in checks.items():
            lines.append(
                f"| {name} | {c['baseline']:.4f} | {c['current']:.4f} | "
                f"{c['drop']:.4f} | {c['allowed']} |"
            )
    return "\n".join(lines) + "\n"


OUTPUTS = (
    paths.MONITOR_REPORT,
    paths.MONITOR_SUMMARY,
    paths.MONITOR_SUMMARY_MD,
    paths.MONITOR_CONTRACT_FAILURES,
)


def clear_outputs() -> None:
    """A run that stops early must not leave the previous run's report behind."""
    for stale in OUTPUTS:
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


def log_selection(source: RequestLogWindow, sample: pd.DataFrame) -> dict[str, Any]:
    """Which rows of the log were monitored: window, version filter, versions in the sample."""
    has_versions = "model_version" in sample
    versions = sample["model_version"].value_counts() if has_versions else pd.Series()
    return {
        "since": source.since.isoformat() if source.since else None,
        "model_version": source.model_version or None,
        "sampled_model_versions": {str(k): int(v) for k, v in versions.items()},
    }
