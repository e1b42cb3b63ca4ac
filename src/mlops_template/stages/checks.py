"""Declared checks on an evaluation, beyond the headline metrics (reports/checks.json):

- every input column adds value: its permutation importance reaches
  ``evaluate.min_feature_importance`` (a column that adds nothing is a cost and a risk);
- every slice of ``evaluate.slice_column`` is good enough and no slice is far behind the best
  one (the fairness gap between groups): ``evaluate.slice_checks.<column>.min`` / ``max_gap``,
  declared per column, so a params.yaml pointed at another dataset's column checks nothing
  it did not declare.

Pure functions on what `evaluate` already computed; the stage writes the result and, for a
failed check whose action is ``fail``, stops with exit status 5 after writing its reports.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_template.config import EvaluateParams
from mlops_template.errors import ConfigError
from mlops_template.metric_directions import HIGHER_IS_BETTER


def feature_value(importance: pd.DataFrame, floor: float | None) -> dict[str, Any]:
    """Columns whose permutation importance (the drop of the scoring metric when the column
    is shuffled) is below ``floor``; ``floor`` None switches the check off."""
    if floor is None:
        return {"checked": False, "failed": False, "below": {}}
    values = dict(zip(importance["feature"], importance["importance"], strict=True))
    below = {name: float(v) for name, v in values.items() if v < floor}
    return {"checked": True, "failed": bool(below), "floor": floor, "below": below}


def _better(metric: str) -> bool:
    return HIGHER_IS_BETTER.get(metric, True)


def slice_quality(
    slices: dict[str, Any],
    floors: dict[str, float],
    gaps: dict[str, float],
    min_rows: int,
) -> dict[str, Any]:
    """Per metric: the worst slice against its floor (a ceiling for lower-is-better metrics)
    and the gap between the best and the worst slice. Slices with fewer than ``min_rows`` rows
    or no finite value are reported as skipped, never judged on noise."""
    entries = slices.get("slices", {})
    problems: list[str] = []
    per_metric: dict[str, Any] = {}
    known = set().union(*(e.keys() for e in entries.values())) - {"rows"} if entries else set()
    not_produced: list[str] = []
    for metric in sorted(set(floors) | set(gaps)):
        if metric not in HIGHER_IS_BETTER:
            key = "min" if metric in floors else "max_gap"
            raise ConfigError(
                f"evaluate.slice_checks.{slices.get('column')}.{key}.{metric}: unknown metric "
                f"(known: {', '.join(HIGHER_IS_BETTER)})"
            )
        if metric not in known:  # e.g. roc_auc of a regression: skipped, as the gate does
            not_produced.append(metric)
            continue
        values = {
            name: float(e[metric])
            for name, e in entries.items()
            if e["rows"] >= min_rows and pd.notna(e.get(metric))
        }
        skipped = sorted(set(entries) - set(values))
        if not values:
            per_metric[metric] = {"skipped": skipped, "note": "no slice to judge"}
            continue
        higher = _better(metric)
        ranked = sorted(values, key=values.__getitem__, reverse=higher)  # best first
        best, worst = ranked[0], ranked[-1]
        gap = abs(values[best] - values[worst])
        result: dict[str, Any] = {
            "worst": {"slice": worst, "value": values[worst]},
            "best": {"slice": best, "value": values[best]},
            "gap": round(gap, 6),
            "skipped": skipped,
        }
        if metric in floors:
            limit = floors[metric]
            bad = {n: v for n, v in values.items() if (v < limit if higher else v > limit)}
            result["floor"] = limit
            result["below_floor"] = bad
            for name, v in sorted(bad.items()):
                side = "below the floor" if higher else "above the ceiling"
                problems.append(f"slice {name}: {metric} {v:.4f} {side} {limit}")
        if metric in gaps:
            result["max_gap"] = gaps[metric]
            if gap > gaps[metric]:
                problems.append(
                    f"{metric} gap {gap:.4f} > {gaps[metric]} between slices {best} "
                    f"({values[best]:.4f}) and {worst} ({values[worst]:.4f})"
                )
        per_metric[metric] = result
    column = slices.get("column")
    return {
        "column": column,
        "failed": bool(problems),
        "problems": problems,
        "metrics": per_metric,
        "not_produced": not_produced,
    }


def check_evaluation(
    importance: pd.DataFrame, slices: dict[str, Any], params: EvaluateParams
) -> dict[str, Any]:
    """Both checks and what a failure does (``fail``: the stage stops; ``report``: a warning)."""
    features = feature_value(importance, params.min_feature_importance)
    features["action"] = params.feature_importance_action
    column = slices.get("column") if slices else None
    spec = params.slice_checks.get(column) if column else None
    if spec is None:
        declared = ", ".join(params.slice_checks) or "none"
        note = f"no evaluate.slice_checks for slice column {column} (declared: {declared})"
        slice_result: dict[str, Any] = {
            "column": column,
            "failed": False,
            "problems": [],
            "note": note,
        }
    else:
        slice_result = slice_quality(slices, spec.min, spec.max_gap, params.slice_min_rows)
    return {"features": features, "slices": slice_result}


def failures(result: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(messages that stop the stage, messages that are only reported)."""
    stop: list[str] = list(result["slices"]["problems"])
    warn: list[str] = []
    f = result["features"]
    if f["failed"]:
        shown = ", ".join(f"{n} {v:.4f}" for n, v in sorted(f["below"].items()))
        text = (
            f"input columns below evaluate.min_feature_importance {f['floor']}: {shown} "
            "(they add nothing the model uses: drop them in features.drop, or lower the floor)"
        )
        (stop if f["action"] == "fail" else warn).append(text)
    return stop, warn
