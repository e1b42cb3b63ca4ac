"""The metric gate's rules, as pure functions: ``compare(baseline, candidate, gates) -> rows``.

Shared by the `gate` stage (a candidate's metrics against a git ref's) and `mlops compare`
(a challenger's metrics against the champion's on served traffic), so the promotion decision
and the gate come from the same rules. Reads nothing, writes nothing.

Rules (docs/review.md): no baseline (first run, a ref without metrics, a new metric) passes
with a note; a gated metric missing from the candidate fails; floors and ceilings (``min`` /
``max``) apply with or without a baseline; gates on metrics the task never produces (``rmse``
for a classifier) are skipped. Only metrics of the same dataset are compared
(:func:`comparable`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mlops_template import paths
from mlops_template.config import MetricGate
from mlops_template.errors import ConfigError, DataError
from mlops_template.metric_directions import HIGHER_IS_BETTER

REGRESSION_METRICS = frozenset({"rmse", "mae", "r2"})
CLASSIFICATION_METRICS = frozenset(HIGHER_IS_BETTER) - REGRESSION_METRICS
# Metrics are rounded to 6 decimals; a drop of exactly the allowed amount must pass.
TOLERANCE = 1e-9
NO_BASELINE = "no comparable baseline"

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
    """The committed metrics of ``ref`` (None: no comparable ones, ``note`` says why), its
    dataset identity and the params diff against it."""

    ref: str
    commit: str | None = None
    metrics: dict[str, float] | None = None
    params_diff: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""
    dataset: dict[str, Any] | None = None


@dataclass
class GateResult:
    rows: list[Row]
    baseline: Baseline
    override: bool = False
    notes: list[str] = field(default_factory=list)
    dataset: dict[str, Any] | None = None  # what the candidate metrics were measured on

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


def _identity_key(identity: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "contract": identity["contract"]["name"],
        "target": identity["target"],
        "task": identity["task"],
    }


def identity_difference(baseline: Mapping[str, Any], candidate: Mapping[str, Any]) -> str:
    """How two dataset identities differ in what makes their metrics comparable: the
    contract's name, the target and the task ("" when they agree). A new version of the same
    contract is still compared (the report notes it)."""
    old, new = _identity_key(baseline), _identity_key(candidate)
    return "; ".join(f"{key} {old[key]!r} → {new[key]!r}" for key in old if old[key] != new[key])


def comparable(
    baseline: Baseline, base_dataset: Mapping[str, Any] | None, dataset: Mapping[str, Any] | None
) -> Baseline:
    """``baseline`` without its metrics (``note`` says why) unless they were measured on the
    candidate's dataset: the gate never compares metrics of two datasets. ``base_dataset`` is
    the identity committed with the baseline (None: it records none, e.g. older metrics);
    ``dataset`` the candidate's (None: unknown, which is bad data beside real metrics)."""
    if baseline.metrics is None:
        return baseline
    where = f"{baseline.ref} ({(baseline.commit or '')[:8]})"
    if base_dataset is None:
        why = f"{where} records no dataset identity ({paths.DATASET}) beside its metrics"
        return replace(baseline, metrics=None, note=f"{NO_BASELINE}: {why}")
    if dataset is None:
        raise DataError(
            f"{paths.DATASET} is missing: the gate cannot tell which dataset {paths.METRICS} "
            "was measured on; re-run the evaluate stage (it writes both)"
        )
    base_dataset = dict(base_dataset)
    if difference := identity_difference(base_dataset, dataset):
        why = f"{where} was evaluated on another dataset ({difference})"
        return replace(baseline, metrics=None, dataset=base_dataset, note=f"{NO_BASELINE}: {why}")
    return replace(baseline, dataset=base_dataset)


def describe_dataset(identity: Mapping[str, Any]) -> str:
    contract = identity["contract"]
    version = contract.get("version")
    name = f"`{contract['name']}`" + (f" v{version}" if version is not None else "")
    return f"{name}, target `{identity['target']}`, {identity['task']}"
