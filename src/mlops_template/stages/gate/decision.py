"""The gate's decision and entry points: read the candidate and the baseline, compare them
(:mod:`mlops_template.gate_rules`), write the reports, raise :class:`GateFailed` (exit 5)
unless every gate passes or an override accepts it; only then write reports/gate_ok.json, the
flag the `package` stage depends on."""

from __future__ import annotations

import logging
from dataclasses import asdict

from mlops_template import baseline_rules as simpler
from mlops_template import paths
from mlops_template.config import Params
from mlops_template.errors import GateFailed
from mlops_template.gate_rules import GateResult, Row, comparable, compare, is_higher_better
from mlops_template.stages.gate.fingerprint import fingerprint, previous_result
from mlops_template.stages.gate.inputs import (
    read_baseline,
    read_candidate,
    read_identity,
    read_identity_at,
)
from mlops_template.stages.gate.report import _json_text, _write, render_markdown, to_json
from mlops_template.stages.gate.settings import resolve_settings

log = logging.getLogger(__name__)


def _notes(result: GateResult) -> list[str]:
    notes = []
    base, dataset = result.baseline.dataset, result.dataset
    if result.baseline.metrics is not None and base and dataset:
        old, new = base["contract"].get("version"), dataset["contract"].get("version")
        if old != new:
            notes.append(
                f"Contract version {old} → {new}: same contract name, target and task, so "
                "the metrics were compared."
            )
    if result.override and not result.passed:
        failed = ", ".join(r.metric for r in result.failed)
        notes.append(f"Override in effect: failed gates ({failed}) were accepted deliberately.")
    elif result.override:
        notes.append("Override was set but not needed: every gate passed.")
    return notes


def decide(params: Params, ref: str, override: bool) -> GateResult:
    """Read the candidate and the baseline (through DVC) and compare them if comparable."""
    candidate = read_candidate()
    dataset = read_identity()
    baseline = read_baseline(ref)
    if baseline.commit is not None and baseline.metrics is not None and candidate:
        baseline = comparable(baseline, read_identity_at(baseline.commit), dataset)
    rows = compare(baseline.metrics, candidate, params.gate.metrics, task=params.data.task)
    # never worse than the class prior / mean; the plain reference model (baselines.py)
    checks, simpler_notes = (
        simpler.check_baselines(candidate, simpler.read(), params.gate.reference, params.data.task)
        if candidate
        else ([], [])
    )
    rows += [Row(**asdict(c)) for c in checks]
    result = GateResult(rows, baseline, override, dataset=dataset, notes=simpler_notes)
    if not candidate:
        result.notes.append(f"{paths.METRICS} is missing or empty: run the evaluate stage.")
    result.notes[:0] = _notes(result)
    return result


def run_gate(
    params: Params, baseline_ref: str | None = None, override: bool | None = None
) -> GateResult:
    """Compare, write reports/gate.md and reports/gate.json, print the report; raise
    GateFailed unless it passed (or was overridden), else write reports/gate_ok.json.

    When the inputs' fingerprint equals the one in reports/gate.json, that decision is
    repeated without reading the baseline again (no DVC import: a no-op `dvc repro` stays
    fast); any changed input decides afresh. The reports are written either way; an error
    leaves none."""
    paths.GATE_OK.unlink(missing_ok=True)
    ref, override = resolve_settings(params, baseline_ref, override)
    for metric, gate in params.gate.metrics.items():
        is_higher_better(metric, gate)  # fail on a bad config before reading anything
    key = fingerprint(params, ref, override)
    result = previous_result(key) if key else None
    markdown = render_markdown(result) if result else ""
    if result is None:
        for stale in (paths.GATE_MD, paths.GATE_JSON):  # no old report on an error
            stale.unlink(missing_ok=True)
        result = decide(params, ref, override)
        markdown = render_markdown(result)
        _write(_json_text(to_json(result, key)), paths.GATE_JSON)
    else:
        log.info("gate: inputs unchanged since %s was written: same decision", paths.GATE_JSON)
    if not paths.GATE_MD.exists() or paths.GATE_MD.read_text() != markdown:
        _write(markdown, paths.GATE_MD)
    print(markdown, end="", flush=True)
    if not result.ok:
        summary = ", ".join(f"{r.metric} ({r.note})" for r in result.failed)
        raise GateFailed(
            f"metric gate failed against {ref}: {summary}; report in {paths.GATE_MD} "
            f"(accept deliberately with {paths.ENV_GATE_OVERRIDE}=1 or `mlops gate --override`)"
        )
    _write(_json_text({"ok": True}), paths.GATE_OK)
    log.info("gate %s against %s", "overridden" if not result.passed else "passed", ref)
    return result


def run(params: Params) -> None:
    """The `gate` stage (dvc.yaml): baseline from params / MLOPS_GATE_BASELINE (default HEAD)."""
    run_gate(params)
