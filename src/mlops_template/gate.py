"""The metric gate: compare the workspace's reports/metrics.json with the committed metrics of
a git ref and fail when a gate declared in params.yaml (``gate.metrics``) fails.

`dvc metrics diff` shows a change but cannot fail a build; this does. The pure core is
:func:`compare` (baseline, candidate, gates -> rows); :func:`read_baseline` reads a ref's
metrics and params through DVC; :func:`run_gate` ties them together, writes reports/gate.md
and reports/gate.json and raises :class:`GateFailed` (exit 5) unless every gate passes or an
override (``gate.override``, ``MLOPS_GATE_OVERRIDE=1``, ``mlops gate --override``) accepts it;
only then it writes reports/gate_ok.json, the flag the `package` stage depends on.

Rules (README "Pull-request metric review"): no baseline (first run, a ref without metrics, a
new metric) passes with a note; a gated metric missing from the candidate fails; floors and
ceilings (``min`` / ``max``) apply with or without a baseline; gates on metrics the task never
produces (``rmse`` for a classifier) are skipped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlops_template import io, paths
from mlops_template.config import MetricGate, Params
from mlops_template.errors import ConfigError, DataError, GateFailed
from mlops_template.metric_directions import HIGHER_IS_BETTER

log = logging.getLogger(__name__)

ENV_BASELINE = "MLOPS_GATE_BASELINE"
ENV_OVERRIDE = "MLOPS_GATE_OVERRIDE"
# First line of reports/gate.md: lets CI find and update its own PR comment.
MARKER = "<!-- mlops-gate-report -->"
REGRESSION_METRICS = frozenset({"rmse", "mae", "r2"})
CLASSIFICATION_METRICS = frozenset(HIGHER_IS_BETTER) - REGRESSION_METRICS
# Metrics are rounded to 6 decimals; a drop of exactly the allowed amount must pass.
TOLERANCE = 1e-9

Status = Literal["pass", "fail", "skip", "info"]


@dataclass(frozen=True)
class Row:
    """One metric in the report; ``status`` "info" is an ungated metric, shown for review."""

    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    threshold: str
    status: Status
    note: str = ""


@dataclass
class Baseline:
    """The committed metrics (None: none found) and params diff of ``ref``."""

    ref: str
    commit: str | None = None
    metrics: dict[str, float] | None = None
    params_diff: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""


@dataclass
class GateResult:
    rows: list[Row]
    baseline: Baseline
    override: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Row]:
        return [r for r in self.rows if r.status == "fail"]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def ok(self) -> bool:
        """What the exit status follows: passed, or failed but deliberately overridden."""
        return self.passed or self.override


# --------------------------------------------------------------------------- pure core


def is_higher_better(metric: str, gate: MetricGate) -> bool:
    if gate.direction is not None:
        return gate.direction == "higher"
    if metric not in HIGHER_IS_BETTER:
        raise ConfigError(
            f"gate.metrics.{metric}.direction: required for a metric without a known "
            f"direction (known: {', '.join(sorted(HIGHER_IS_BETTER))}); use higher or lower"
        )
    return HIGHER_IS_BETTER[metric]


def applies_to(metric: str, task: str | None) -> bool:
    """False for a known metric the task never produces (``rmse`` in a classification run)."""
    if task is None:
        return True
    if task == "regression":
        return metric not in CLASSIFICATION_METRICS
    return metric not in REGRESSION_METRICS


def describe(gate: MetricGate, higher: bool) -> str:
    """The gate in words, for the report's threshold column."""
    parts = ["higher is better" if higher else "lower is better"]
    if gate.max_drop_abs is not None:
        parts.append(f"worse by ≤ {gate.max_drop_abs:g}")
    if gate.max_drop_rel is not None:
        parts.append(f"worse by ≤ {gate.max_drop_rel:.1%}")
    if gate.min is not None:
        parts.append(f"≥ {gate.min:g}")
    if gate.max is not None:
        parts.append(f"≤ {gate.max:g}")
    return "; ".join(parts)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _bound_failures(gate: MetricGate, value: float) -> list[str]:
    out = []
    if gate.min is not None and value < gate.min - TOLERANCE:
        out.append(f"below the floor {gate.min:g}")
    if gate.max is not None and value > gate.max + TOLERANCE:
        out.append(f"above the ceiling {gate.max:g}")
    return out


def _drop_failures(gate: MetricGate, base: float, value: float, higher: bool) -> list[str]:
    worse = (base - value) if higher else (value - base)
    out = []
    if gate.max_drop_abs is not None and worse > gate.max_drop_abs + TOLERANCE:
        out.append(f"worse by {worse:.4g} > {gate.max_drop_abs:g}")
    if gate.max_drop_rel is not None and worse > TOLERANCE:
        rel = worse / abs(base) if base else math.inf
        if rel > gate.max_drop_rel + TOLERANCE:
            out.append(f"worse by {rel:.1%} > {gate.max_drop_rel:.1%}")
    return out


def check(metric: str, gate: MetricGate, baseline: Any, candidate: Any) -> Row:
    """Apply one gate to one metric."""
    higher = is_higher_better(metric, gate)
    threshold = describe(gate, higher)
    base, value = _finite(baseline), _finite(candidate)
    if value is None:
        note = "missing from the candidate" if candidate is None else f"not a number: {candidate}"
        return Row(metric, base, None, None, threshold, "fail", note)
    delta = None if base is None else round(value - base, 12)
    failures = _bound_failures(gate, value)
    if base is not None:
        failures += _drop_failures(gate, base, value, higher)
    note = "; ".join(failures) if failures else ("" if base is not None else "no baseline")
    return Row(metric, base, value, delta, threshold, "fail" if failures else "pass", note)


def compare(
    baseline: Mapping[str, Any] | None,
    candidate: Mapping[str, Any],
    gates: Mapping[str, MetricGate],
    task: str | None = None,
) -> list[Row]:
    """Gated metrics first (in declaration order), then every other metric as "info".

    ``baseline`` None means there is no baseline at all (every gate passes on its floors and
    ceilings alone); ``task`` skips gates on metrics that task never produces.
    """
    base = dict(baseline or {})
    rows = []
    for metric, gate in gates.items():
        if not applies_to(metric, task):
            higher = is_higher_better(metric, gate)
            note = f"not produced by a {task} task"
            rows.append(Row(metric, None, None, None, describe(gate, higher), "skip", note))
            continue
        rows.append(check(metric, gate, base.get(metric), candidate.get(metric)))
    for metric in sorted((set(candidate) | set(base)) - set(gates)):
        b, c = _finite(base.get(metric)), _finite(candidate.get(metric))
        delta = None if b is None or c is None else round(c - b, 12)
        note = "" if c is not None else "missing from the candidate"
        rows.append(Row(metric, b, c, delta, "not gated", "info", note))
    return rows


# --------------------------------------------------------------------------- inputs


def read_candidate(path: Path = paths.METRICS) -> dict[str, Any]:
    """The workspace's metrics; {} when the file is missing (every gated metric then fails).
    A file that is not a JSON object is bad data (DataError, exit 3), not a failed gate."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); re-run the evaluate stage") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
    return data


def _flatten_params(diff: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for file, keys in diff.items():
        prefix = "" if file == str(paths.PARAMS) else f"{file}:"
        for key, change in keys.items():
            out[prefix + key] = {"old": change.get("old"), "new": change.get("new")}
    return out


def _baseline_error(diff: Mapping[str, Any], ref: str, metrics_path: Path) -> Exception | None:
    """What DVC met reading ``metrics_path`` at ``ref``; None when it was read or is simply
    absent there (a first run: no baseline)."""
    errors = diff.get("errors", {}).get(ref)
    if isinstance(errors, Exception):  # the whole revision (e.g. its dvc.yaml) was unreadable
        return errors
    err = (errors or {}).get(str(metrics_path))
    return None if err is None or isinstance(err, FileNotFoundError) else err


def read_baseline(ref: str, metrics_path: Path = paths.METRICS) -> Baseline:
    """The metrics committed at ``ref`` and the params diff against it, through DVC
    (`dvc metrics diff <ref>` / `dvc params diff <ref>`). A repository without commits or a
    ref without the metrics file has no baseline (the gate passes with a note); an unknown ref
    is a ConfigError (in CI: fetch the base branch); a baseline DVC cannot read is a DataError
    -- never a silent "no baseline"."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc.scm import RevError
    from scmrepo.exceptions import RevError as ScmRevError

    try:
        repo = Repo()
    except NotDvcRepoError:
        return Baseline(ref, note="not inside a DVC repository: no baseline")
    with repo:
        if repo.scm.no_commits:
            return Baseline(ref, note="the repository has no commits yet: no baseline")
        try:
            commit = repo.scm.resolve_rev(ref)
            metrics = repo.metrics.diff(a_rev=ref, all=True)
            params = repo.params.diff(a_rev=ref, all=False)
        except (RevError, ScmRevError):
            raise ConfigError(
                f"gate.baseline_ref: unknown git revision {ref!r} (fetch it first, e.g. "
                "`git fetch origin main`; in CI check out with fetch-depth: 0)"
            ) from None
        except DvcException as err:
            raise DataError(f"DVC could not read the baseline at {ref!r}: {err}") from None
    if unreadable := _baseline_error(metrics, ref, metrics_path):
        raise DataError(
            f"{metrics_path} at {ref!r} ({commit[:8]}) is unreadable "
            f"({type(unreadable).__name__}: {unreadable}); the gate needs a readable baseline"
        )
    old = {
        name: change["old"]
        for name, change in metrics.get("diff", {}).get(str(metrics_path), {}).items()
        if change.get("old") is not None
    }
    params_diff = _flatten_params(params.get("diff", {}))
    if not old:
        note = f"{ref} has no committed {metrics_path}: no baseline (first run?)"
        return Baseline(ref, commit, None, params_diff, note)
    return Baseline(ref, commit, old, params_diff)


# --------------------------------------------------------------------------- settings


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: expected 1/true/yes or 0/false/no")


def resolve_settings(
    params: Params, baseline_ref: str | None = None, override: bool | None = None
) -> tuple[str, bool]:
    """Precedence: command-line argument, then environment, then params.yaml."""
    ref = baseline_ref or os.environ.get(ENV_BASELINE) or params.gate.baseline_ref
    if not override:
        env_override = _env_flag(ENV_OVERRIDE)
        override = params.gate.override if env_override is None else env_override
    return ref, override


# --------------------------------------------------------------------------- report


def _num(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


_STATUS = {"pass": "✅ pass", "fail": "❌ **fail**", "skip": "skipped", "info": "·"}


def render_markdown(result: GateResult) -> str:
    """The report posted to the pull request, the job summary and reports/gate.md."""
    if result.passed:
        title = "✅ Metric gate passed"
    elif result.override:
        title = "⚠️ Metric gate failed — overridden, the change is accepted"
    else:
        title = "❌ Metric gate failed"
    base = result.baseline
    commit = f" @ `{base.commit[:8]}`" if base.commit else ""
    lines = [
        MARKER,
        f"### {title}",
        "",
        f"Baseline: `{base.ref}`{commit} · candidate: `{paths.METRICS}` in the workspace",
        "",
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


def to_json(result: GateResult) -> dict[str, Any]:
    return {
        "passed": result.passed,
        "override": result.override,
        "ok": result.ok,
        "baseline": {"ref": result.baseline.ref, "commit": result.baseline.commit},
        "failed": [r.metric for r in result.failed],
        "rows": [asdict(r) for r in result.rows],
        "params_diff": result.baseline.params_diff,
        "notes": result.notes,
    }


# --------------------------------------------------------------------------- entry points


def _notes(result: GateResult) -> list[str]:
    notes = [result.baseline.note] if result.baseline.note else []
    if result.override and not result.passed:
        failed = ", ".join(r.metric for r in result.failed)
        notes.append(f"Override in effect: failed gates ({failed}) were accepted deliberately.")
    elif result.override:
        notes.append("Override was set but not needed: every gate passed.")
    return notes


def run_gate(
    params: Params, baseline_ref: str | None = None, override: bool | None = None
) -> GateResult:
    """Compare, write reports/gate.md and reports/gate.json, print the report; raise
    GateFailed unless it passed (or was overridden). The reports are written either way."""
    for stale in (paths.GATE_MD, paths.GATE_JSON, paths.GATE_OK):  # no old report on an error
        stale.unlink(missing_ok=True)
    ref, override = resolve_settings(params, baseline_ref, override)
    gates = params.gate.metrics
    for metric, gate in gates.items():
        is_higher_better(metric, gate)  # fail on a bad config before reading anything
    baseline = read_baseline(ref)
    candidate = read_candidate()
    rows = compare(baseline.metrics, candidate, gates, task=params.data.task)
    result = GateResult(rows, baseline, override)
    if not candidate:
        result.notes.append(f"{paths.METRICS} is missing or empty: run the evaluate stage.")
    result.notes[:0] = _notes(result)
    markdown = render_markdown(result)
    io.write_text(markdown, paths.GATE_MD)
    io.write_json(to_json(result), paths.GATE_JSON)
    print(markdown, end="", flush=True)
    summary = ", ".join(f"{r.metric} ({r.note})" for r in result.failed)
    if not result.ok:
        raise GateFailed(
            f"metric gate failed against {ref}: {summary}; report in {paths.GATE_MD} "
            f"(accept deliberately with {ENV_OVERRIDE}=1 or `mlops gate --override`)"
        )
    io.write_json({"ok": True}, paths.GATE_OK)
    log.info("gate %s against %s", "overridden" if not result.passed else "passed", ref)
    return result


def run(params: Params) -> None:
    """The `gate` stage (dvc.yaml): baseline from params / MLOPS_GATE_BASELINE (default HEAD)."""
    run_gate(params)
