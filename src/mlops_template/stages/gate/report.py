"""The gate's report: reports/gate.md (the pull-request comment) and reports/gate.json (the
decision, which the fingerprint cache reads back)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mlops_template import io, paths
from mlops_template.gate_rules import Baseline, GateResult, Row, describe_dataset

# First line of reports/gate.md: lets CI find and update its own PR comment.
MARKER = "<!-- mlops-gate-report -->"


def from_json(data: Mapping[str, Any]) -> GateResult:
    """The result :func:`to_json` wrote (all the report shows; not the baseline's metrics)."""
    base = data["baseline"]
    baseline = Baseline(
        base["ref"],
        base["commit"],
        None,
        dict(data["params_diff"]),
        base["note"],
        base["dataset"],
    )
    rows = [Row(**row) for row in data["rows"]]
    return GateResult(rows, baseline, bool(data["override"]), list(data["notes"]), data["dataset"])


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


_STATUS = {"pass": "✅ pass", "fail": "❌ **fail**", "skip": "skipped", "info": "·"}


def _header(result: GateResult) -> list[str]:
    base = result.baseline
    commit = f" @ `{base.commit[:8]}`" if base.commit else ""
    line = f"Baseline: `{base.ref}`{commit} · candidate: `{paths.METRICS}` in the workspace"
    if result.dataset:
        line += f" · dataset: {describe_dataset(result.dataset)}"
    lines = [line, ""]
    if base.note:
        lines += [
            f"Not compared, {base.note}. This run's metrics become a baseline once committed "
            f"with `{paths.DATASET}`.",
            "",
        ]
    return lines


def render_markdown(result: GateResult) -> str:
    """The report posted to the pull request, the job summary and reports/gate.md."""
    if result.passed:
        title = "✅ Metric gate passed"
    elif result.override:
        title = "⚠️ Metric gate failed — overridden, the change is accepted"
    else:
        title = "❌ Metric gate failed"
    base = result.baseline
    lines = [
        MARKER,
        f"### {title}",
        "",
        *_header(result),
        "| metric | baseline | candidate | delta | gate | result | note |",
        "| --- | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in (r for r in result.rows if r.status != "skip"):
        lines.append(
            f"| {r.metric} | {_num(r.baseline)} | {_num(r.candidate)} | "
            f"{_num(r.delta, signed=True)} | {r.threshold} | {_STATUS[r.status]} | {r.note} |"
        )
    lines += ["", "#### Params changed against the baseline", ""]
    if base.params_diff:
        lines += ["| param | baseline | candidate |", "| --- | --- | --- |"]
        for key, change in sorted(base.params_diff.items()):
            old, new = (_cell(change[k]) for k in ("old", "new"))
            lines.append(f"| {key} | {old} | {new} |")
    else:
        lines.append("No params changed.")
    notes = list(result.notes)
    if skipped := [r for r in result.rows if r.status == "skip"]:
        names = ", ".join(r.metric for r in skipped)
        notes.append(f"Gates not applied ({skipped[0].note}): {names}.")
    if notes:
        lines += ["", "#### Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def to_json(result: GateResult, key: str | None = None) -> dict[str, Any]:
    """reports/gate.json; ``key``: the inputs' :func:`fingerprint` (lets the next run reuse it)."""
    base = result.baseline
    baseline: dict[str, Any] = {"ref": base.ref, "commit": base.commit, "note": base.note}
    baseline |= {"compared": base.metrics is not None, "dataset": base.dataset}
    return {
        "passed": result.passed,
        "override": result.override,
        "ok": result.ok,
        "baseline": baseline,
        "dataset": result.dataset,
        "failed": [r.metric for r in result.failed],
        "rows": [asdict(r) for r in result.rows],
        "params_diff": base.params_diff,
        "notes": result.notes,
        "fingerprint": key,
    }


def _write(text: str, target: Path) -> None:
    io.write_text(text, target)


def _json_text(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
