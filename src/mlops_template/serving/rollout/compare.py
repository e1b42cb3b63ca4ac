"""`mlops compare`: champion vs challenger on a window of the request log, decided by the
metric gate's rules.

Per model: rows, requests, version, prediction distribution and model-call latency. Between
them: drift of the challenger's predictions from the champion's (the monitor's thresholds),
and, on rows both predicted (shadow), the agreement rate (classification) or mean absolute
difference (regression). With labels (joined by the route key column, else the contract's id):
each gated metric per model and a bootstrap interval of the difference (paired on shadow rows,
independent arms in canary / A/B).

The decision (:func:`decide`) is "promote" only when every applicable ``gate.metrics`` rule
(:func:`mlops_template.gate_rules.check`)
passes both on the point estimates and at the worse end of
the interval, each model has ``compare.min_labelled_rows`` labelled rows, and in shadow mode
the challenger answered ``compare.min_shadow_coverage`` of the champion's rows. Anything else
is "keep", with the reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.config import Params
from mlops_template.errors import DataError
from mlops_template.gate_rules import Row, Status, applies_to, check
from mlops_template.metrics import Metric, metric
from mlops_template.serving.rollout.routing import CHALLENGER, CHAMPION, SHADOW

PROMOTE, KEEP = "promote", "keep"


@dataclass
class Arm:
    """One model's rows in the window."""

    role: str
    version: str
    rows: pd.DataFrame
    classes: list[str] | None  # classification: class names as logged (proba_<class>)


@dataclass
class Comparison:
    task: str
    champion: dict[str, Any]
    challenger: dict[str, Any]
    between: dict[str, Any]
    quality: list[dict[str, Any]] = field(default_factory=list)
    gate_rows: list[Row] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return KEEP if self.reasons else PROMOTE


# --------------------------------------------------------------------------- arms


def _latest_version(rows: pd.DataFrame, role: str, notes: list[str]) -> pd.DataFrame:
    """Rows of the newest version in this role (a window can span a change of model)."""
    versions = rows.groupby("model_version")["logged_at"].max().sort_values()
    if len(versions) > 1:
        left = rows["model_version"] != versions.index[-1]
        notes.append(
            f"{role}: the window holds {len(versions)} versions; compared {versions.index[-1]}, "
            f"left out {int(left.sum())} rows of {', '.join(versions.index[:-1])}"
        )
        rows = rows[~left]
    return rows.reset_index(drop=True)


def arms(log: pd.DataFrame, notes: list[str]) -> tuple[Arm, Arm, bool]:
    """(champion, challenger, paired): the challenger's rows are its shadow predictions
    (paired with the champion's by request and position) or the rows it answered."""
    roles = log["role"]
    shadow = bool((roles == SHADOW).any())
    theirs = log[roles.isin([SHADOW] if shadow else [CHALLENGER])]
    if theirs.empty:
        raise DataError(
            "mlops compare: no challenger or shadow rows in the request-log window "
            "(serve.strategy shadow, canary or ab logs them)"
        )
    if shadow and (roles == CHALLENGER).any():
        notes.append("the window holds shadow and challenger rows: compared the shadow rows")
    ours = _latest_version(log[roles == CHAMPION], CHAMPION, notes)
    theirs = _latest_version(theirs, CHALLENGER, notes)
    if ours.empty:
        raise DataError("mlops compare: no champion rows in the request-log window")
    classes = [c.removeprefix("proba_") for c in log.columns if c.startswith("proba_")] or None
    return (
        Arm(CHAMPION, ours["model_version"].iloc[0], ours, classes),
        Arm(CHALLENGER, theirs["model_version"].iloc[0], theirs, classes),
        shadow,
    )


def _ordinal(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(_n=rows.groupby("request_id").cumcount())


def paired(champion: Arm, challenger: Arm) -> pd.DataFrame:
    """Rows both predicted: same request, same position within it (``_c`` / ``_s`` columns)."""
    left = _ordinal(champion.rows)
    right = _ordinal(challenger.rows)[["request_id", "_n", "prediction", *_probas(challenger)]]
    return left.merge(right, on=["request_id", "_n"], suffixes=("_c", "_s"))


def _probas(arm: Arm) -> list[str]:
    return [f"proba_{c}" for c in arm.classes or []]


# --------------------------------------------------------------------------- describe


def score(arm: Arm, task: str) -> np.ndarray:
    """The number per row that drift is measured on: P(positive) for binary, the value for
    regression, the top class probability for multiclass."""
    if task == "regression":
        return arm.rows["prediction"].to_numpy(dtype="float64")
    proba = arm.rows[_probas(arm)].to_numpy(dtype="float64")
    return proba[:, 1] if task == "binary" else proba.max(axis=1)


def describe(arm: Arm, task: str) -> dict[str, Any]:
    """Rows, requests, version, prediction distribution, model-call latency per request."""
    values = score(arm, task)
    per_request = arm.rows.drop_duplicates("request_id")["latency_ms"].astype("float64")
    out: dict[str, Any] = {
        "version": arm.version,
        "rows": len(arm.rows),
        "requests": int(arm.rows["request_id"].nunique()),
        "latency_ms": {
            "p50": _round(per_request.quantile(0.5)),
            "p95": _round(per_request.quantile(0.95)),
        },
        "score": {
            "mean": _round(values.mean()),
            **{f"p{q}": _round(np.quantile(values, q / 100)) for q in (5, 50, 95)},
        },
    }
    if task != "regression":
        shares = arm.rows["prediction"].astype(str).value_counts(normalize=True)
        out["label_share"] = {c: _round(shares.get(c, 0.0)) for c in arm.classes or []}
    return out


def _round(value: Any) -> float | None:
    number = float(value)
    return None if np.isnan(number) else round(number, 6)


def drift(champion: Arm, challenger: Arm, task: str, threshold: float) -> dict[str, Any]:
    """How far the challenger's predictions are from the champion's: Wasserstein distance of
    the scores over the champion's spread (Evidently's normed "wasserstein", the monitor's
    default) and, for classes, the Jensen-Shannon distance of the label shares; drifted at
    ``monitor.column_threshold``."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import wasserstein_distance

    a, b = score(champion, task), score(challenger, task)
    spread = float(np.std(a)) or 1.0
    out: dict[str, Any] = {"score_wasserstein": _round(wasserstein_distance(a, b) / spread)}
    if task != "regression":
        classes = champion.classes or []
        pa = champion.rows["prediction"].astype(str).value_counts(normalize=True)
        pb = challenger.rows["prediction"].astype(str).value_counts(normalize=True)
        p = [pa.get(c, 0.0) for c in classes]
        q = [pb.get(c, 0.0) for c in classes]
        out["label_jensenshannon"] = _round(jensenshannon(p, q, base=2))
    out["threshold"] = threshold
    out["drifted"] = any(
        v is not None and v >= threshold for k, v in out.items() if k != "threshold"
    )
    return out


def agreement(pairs: pd.DataFrame, task: str) -> dict[str, Any]:
    """On rows both models predicted: how often they agree, or how far apart they are."""
    if pairs.empty:
        return {"paired_rows": 0}
    if task == "regression":
        diff = (pairs["prediction_c"].astype(float) - pairs["prediction_s"].astype(float)).abs()
        return {"paired_rows": len(pairs), "mean_abs_difference": _round(diff.mean())}
    same = pairs["prediction_c"].astype(str) == pairs["prediction_s"].astype(str)
    return {"paired_rows": len(pairs), "agreement_rate": _round(same.mean())}


# --------------------------------------------------------------------------- quality


@dataclass
class Labelled:
    """One model's labelled rows as arrays (classification labels as strings)."""

    y: np.ndarray
    prediction: np.ndarray
    proba: np.ndarray  # binary: P(classes[1]); multiclass: a column per class (as metrics.py)
    classes: np.ndarray

    def take(self, index: np.ndarray) -> Labelled:
        return Labelled(self.y[index], self.prediction[index], self.proba[index], self.classes)


def labelled(arm: Arm, task: str, target: str) -> Labelled:
    rows = arm.rows
    if task == "regression":
        y = rows[target].to_numpy(dtype="float64")
        pred = rows["prediction"].to_numpy(dtype="float64")
        return Labelled(y, pred, np.empty(len(rows)), np.empty(0))
    proba = rows[_probas(arm)].to_numpy(dtype="float64")
    if task == "binary":
        proba = proba[:, 1]
    y = rows[target].astype(str).to_numpy()
    classes = np.asarray(arm.classes or [])
    return Labelled(y, rows["prediction"].astype(str).to_numpy(), proba, classes)


def _value(fn: Metric, data: Labelled) -> float:
    """The metric of metrics.py (NaN where it is undefined, e.g. one class in a resample)."""
    return fn(data.y, data.prediction, data.proba, data.classes)


def bootstrap(
    fn: Metric, a: Labelled, b: Labelled, paired_rows: bool, resamples: int, seed: int
) -> np.ndarray:
    """Resampled differences fn(b) - fn(a): rows drawn jointly when both models predicted the
    same rows (shadow), each arm on its own otherwise (canary / A/B)."""
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for i in range(resamples):
        ia = rng.integers(0, len(a.y), len(a.y))
        ib = ia if paired_rows else rng.integers(0, len(b.y), len(b.y))
        out[i] = _value(fn, b.take(ib)) - _value(fn, a.take(ia))
    return out[~np.isnan(out)]


def quality(
    params: Params, a: Labelled, b: Labelled, paired_rows: bool
) -> tuple[list[dict[str, Any]], list[Row]]:
    """Per gated metric: both values, the difference and its interval; the gate's verdict on
    the point estimate and at the interval's worse end."""
    c = params.compare
    task = params.data.task
    table, rows = [], []
    for name, gate in params.gate.metrics.items():
        fn = metric(name, task)
        if fn is None or not applies_to(name, task):
            continue
        base, cand = _value(fn, a), _value(fn, b)
        diffs = bootstrap(fn, a, b, paired_rows, c.resamples, c.seed)
        tail = (1 - c.confidence) / 2
        low, high = np.quantile(diffs, [tail, 1 - tail]) if len(diffs) else (np.nan, np.nan)
        point = check(name, gate, base, cand)
        higher = point.threshold.startswith("higher")
        worst = base + (low if higher else high)
        pessimistic = check(name, gate, base, worst)
        status: Status = "pass" if point.status == pessimistic.status == "pass" else "fail"
        notes = [point.note] if point.status == "fail" else []
        if pessimistic.status == "fail":
            notes.append(f"at the {c.confidence:.0%} interval's worse end, {pessimistic.note}")
        note = "; ".join(notes)
        rows.append(Row(name, base, cand, point.delta, point.threshold, status, note))
        table.append(
            {
                "metric": name,
                "champion": _round(base),
                "challenger": _round(cand),
                "difference": _round(cand - base),
                "interval": [_round(low), _round(high)],
                "confidence": c.confidence,
                "status": status,
                "note": note,
            }
        )
    return table, rows


# --------------------------------------------------------------------------- decide


def join_labels(arm: Arm, labels: pd.DataFrame, key: str, target: str) -> Arm:
    """The arm's rows that have a label (inner join on ``key`` compared as text)."""
    rows = arm.rows.drop(columns=[target], errors="ignore")
    rows = rows.assign(_key=rows[key].astype(str))
    right = labels.assign(_key=labels[key].astype(str))[["_key", target]]
    joined = rows.merge(right, on="_key", how="inner").drop(columns="_key")
    return Arm(arm.role, arm.version, joined, arm.classes)


def decide(
    params: Params,
    log: pd.DataFrame,
    labels: pd.DataFrame | None,
    key: str,
    target: str,
) -> Comparison:
    """The comparison and its decision (pure: the log window and labels are given)."""
    c = params.compare
    task = params.data.task
    notes: list[str] = []
    champion, challenger, shadow = arms(log, notes)
    pairs = paired(champion, challenger) if shadow else pd.DataFrame()
    between = drift(champion, challenger, task, params.monitor.column_threshold)
    between |= agreement(pairs, task) | {"mode": "shadow (paired rows)" if shadow else "split"}
    result = Comparison(task, describe(champion, task), describe(challenger, task), between)
    result.notes = notes
    if shadow:
        notes.append(
            "the shadow model predicts requests in batches (those arriving within 50 ms, up to "
            "256 rows): its "
            "latency is that of a batched call, the champion's that of one request"
        )
        coverage = len(pairs) / len(champion.rows)
        between["shadow_coverage"] = _round(coverage)
        if coverage < c.min_shadow_coverage:
            result.reasons.append(
                f"the shadow model answered {coverage:.1%} of the champion's rows "
                f"(compare.min_shadow_coverage {c.min_shadow_coverage:.0%}): it failed or was "
                "dropped on the others"
            )
    if labels is None:
        result.reasons.append("no labels given (--labels): quality unknown, nothing to decide on")
        return result
    _judge(result, params, champion, challenger, labels, key, target, pairs if shadow else None)
    return result


def _judge(
    result: Comparison,
    params: Params,
    champion: Arm,
    challenger: Arm,
    labels: pd.DataFrame,
    key: str,
    target: str,
    pairs: pd.DataFrame | None,
) -> None:
    task = params.data.task
    if pairs is not None:  # shadow: the same rows for both models, in the same order
        champion, challenger = _side(pairs, champion, "_c"), _side(pairs, challenger, "_s")
    champion = join_labels(champion, labels, key, target)
    challenger = join_labels(challenger, labels, key, target)
    counts = {CHAMPION: len(champion.rows), CHALLENGER: len(challenger.rows)}
    result.champion["labelled_rows"], result.challenger["labelled_rows"] = counts.values()
    low = [f"{role} {n}" for role, n in counts.items() if n < params.compare.min_labelled_rows]
    if low:
        result.reasons.append(
            f"too few labelled rows to decide ({', '.join(low)}; compare.min_labelled_rows "
            f"{params.compare.min_labelled_rows})"
        )
        return
    a, b = labelled(champion, task, target), labelled(challenger, task, target)
    result.quality, result.gate_rows = quality(params, a, b, pairs is not None)
    for row in result.gate_rows:
        if row.status == "fail":
            result.reasons.append(f"{row.metric}: {row.note}")
    if not result.gate_rows:
        result.reasons.append(f"no gate.metrics rule applies to a {task} task")


def _side(pairs: pd.DataFrame, arm: Arm, end: str) -> Arm:
    """One model's view of the paired rows (its ``prediction<end>`` / ``proba_*<end>``)."""
    own = {f"prediction{end}": "prediction"} | {f"{p}{end}": p for p in _probas(arm)}
    return Arm(arm.role, arm.version, pairs.rename(columns=own), arm.classes)
