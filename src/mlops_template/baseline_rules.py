"""The simpler-model rule of the gate: "a simpler model is not better" (ML Test Score), checked
on the user's data every run from reports/baselines.json (written by evaluate through
:mod:`mlops_template.baselines`).

:func:`check_baselines`: a model worse than the prior on the task's primary metric
(:data:`~mlops_template.metric_directions.PRIMARY`) or on log loss fails, with or without a git
baseline; one behind the reference by more than ``gate.reference.max_behind`` is reported, or
fails when ``gate.reference.action`` is ``fail``. Pure, and imports neither pandas nor
scikit-learn: the gate stays fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops_template import paths
from mlops_template.errors import DataError
from mlops_template.metric_directions import HIGHER_IS_BETTER, PRIMARY

if TYPE_CHECKING:
    from mlops_template.config import ReferenceGate

HGB_MAX_CATEGORIES = 255  # scikit-learn's limit for a native categorical column
THRESHOLD_METRICS = frozenset({"accuracy", "precision", "recall", "f1"})
TOLERANCE = 1e-9  # metrics are rounded to 6 decimals: a tie is no loss
PRIOR = "class prior"
MEAN = "training mean"
REFERENCE = "plain HistGradientBoosting"


def checked_metrics(task: str) -> list[str]:
    primary = PRIMARY[task]
    return [primary] if task == "regression" else [primary, "log_loss"]


# --------------------------------------------------------------------------- check


@dataclass(frozen=True)
class Check:
    """One row of the gate's report (the fields of the gate's ``Row``): ``baseline`` is the
    simpler model's value, ``candidate`` the model's."""

    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    threshold: str
    status: Literal["pass", "fail", "info"]
    note: str = ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _worse_by(metric: str, simple: float, model: float) -> float:
    """How much worse the model is than the simpler one (negative: better)."""
    return simple - model if HIGHER_IS_BETTER.get(metric, True) else model - simple


def _prior_check(metric: str, simple: float, model: float, name: str) -> Check:
    worse = _worse_by(metric, simple, model)
    delta = round(model - simple, 12)
    rule = f"not worse than the {name}"
    if worse > TOLERANCE:
        sign = "<" if HIGHER_IS_BETTER.get(metric, True) else ">"
        note = f"worse than the {name}: {metric} {model:.4f} {sign} {simple:.4f}"
        return Check(f"{metric} vs {name}", simple, model, delta, rule, "fail", note)
    return Check(f"{metric} vs {name}", simple, model, delta, rule, "pass")


def _reference_check(
    metric: str, simple: float, model: float, margin: float | None, action: str
) -> Check:
    behind = _worse_by(metric, simple, model)
    delta = round(model - simple, 12)
    name = f"{metric} vs {REFERENCE}"
    if margin is None:
        return Check(name, simple, model, delta, "not gated", "info")
    rule = f"behind by ≤ {margin:g} ({action})"
    if behind <= margin + TOLERANCE:
        return Check(name, simple, model, delta, rule, "pass")
    note = f"behind the {REFERENCE} reference by {behind:.4g} > {margin:g}"
    if action == "fail":
        return Check(name, simple, model, delta, rule, "fail", note)
    return Check(name, simple, model, delta, rule, "info", f"⚠️ {note} (reported only)")


def check_baselines(
    candidate: Mapping[str, Any],
    baselines: Mapping[str, Any] | None,
    rules: ReferenceGate,
    task: str,
) -> tuple[list[Check], list[str]]:
    """The gate's rows for the simpler models, and notes for its report.

    Against the prior: a model worse on :data:`PRIMARY` or log loss fails. Against the
    reference (when evaluate measured it): ``rules.max_behind`` per metric; beyond it the row
    fails if ``rules.action`` is ``fail``, else it is shown as a warning. ``baselines`` None:
    evaluate wrote no reports/baselines.json (nothing checked, a note says so)."""
    if baselines is None:
        return [], [f"{paths.BASELINES} is missing: the model was not compared with the prior."]
    checks: list[Check] = []
    prior = (baselines.get("prior") or {}).get("metrics") or {}
    name = MEAN if task == "regression" else PRIOR
    for metric in checked_metrics(task):
        simple, model = _number(prior.get(metric)), _number(candidate.get(metric))
        if simple is not None and model is not None:
            checks.append(_prior_check(metric, simple, model, name))
    reference = baselines.get("reference") or {}
    notes = []
    if "metrics" not in reference:
        why = reference.get("skipped", "not measured")
        notes.append(f"The {REFERENCE} reference was not fitted: {why}.")
        return checks, notes
    measured = reference["metrics"]
    wanted = list(dict.fromkeys([*checked_metrics(task), *rules.max_behind]))
    if task == "binary":  # the model's labels follow its own threshold, the reference's 0.5
        wanted = [m for m in wanted if m not in THRESHOLD_METRICS]
    for metric in wanted:
        simple, model = _number(measured.get(metric)), _number(candidate.get(metric))
        if simple is not None and model is not None:
            margin = rules.max_behind.get(metric)
            checks.append(_reference_check(metric, simple, model, margin, rules.action))
    return checks, notes


def read(path: Path = paths.BASELINES) -> dict[str, Any] | None:
    """reports/baselines.json; None when evaluate did not write it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); re-run the evaluate stage") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
