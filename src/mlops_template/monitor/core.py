"""The pure core of monitoring: contract check, drift, quality and the retrain decision on
frames already in memory. Writes nothing, reads nothing: tests and callers pass everything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.config import MonitorParams
from mlops_template.contract import Contract
from mlops_template.errors import DataError
from mlops_template.monitor.batch import check_batch
from mlops_template.monitor.drift import (
    Columns,
    Drift,
    columns_for,
    derived_features,
    evidently_frame,
    measure_drift,
    with_derived,
)
from mlops_template.monitor.quality import quality


@dataclass
class Outcome:
    summary: dict[str, Any]
    failures: pd.DataFrame
    drift: Drift | None
    reasons: list[str]


def model_age(meta: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Days since the model was trained (``mlflow.trained_at`` of models/model.json), or
    None with a note when the description does not say (trained before it was recorded)."""
    from mlops_template.model import parse_trained_at

    when = parse_trained_at(meta.get("mlflow"))
    if when is None:
        return {"days": None, "trained_at": None, "note": "models/model.json has no trained_at"}
    days = ((now or datetime.now(UTC)) - when).total_seconds() / 86400
    return {"days": round(days, 2), "trained_at": when.isoformat()}


def retrain_reasons(
    drift: Drift,
    qual: dict[str, Any] | None,
    params: MonitorParams,
    age: dict[str, Any] | None = None,
) -> list[str]:
    """Plain sentences, one per crossed threshold."""
    reasons = []
    limit, days = params.max_model_age_days, (age or {}).get("days")
    if limit is not None and days is not None and days > limit:
        reasons.append(
            f"model age {days:.1f} days > monitor.max_model_age_days {limit:g} "
            f"(trained {age['trained_at']})"  # type: ignore[index]
        )
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
    now: datetime | None = None,
) -> Outcome:
    """The pure core: contract check, drift, quality, decision. Writes nothing.

    ``served`` (aligned with ``current``): the model output the service logged for each row
    (P(positive), label or value); prediction drift is then measured on what was served, not
    on a re-scoring by the local model. The contract's pii columns are dropped first: they are
    neither checked, measured nor reported. ``now``: the time the model's age is taken at."""
    current = current.drop(columns=[c for c in contract.pii_columns if c in current.columns])
    contract = contract.without_pii()
    result = check_batch(current, contract)
    summary: dict[str, Any] = {
        "rows_total": int(total_rows if total_rows is not None else len(current)),
        "rows_sampled": len(current),
        "rows_reference": len(reference),
        "contract": {
            "ok": result.ok,
            "failures": len(result.failures),
            "rows_dropped": len(current) - len(result.valid),
        },
    }
    if not result.usable:
        summary |= {"status": "contract_violation", "retrain": False}
        return Outcome(summary, result.failures, None, [])
    cols = columns_for(contract, meta)
    valid = result.valid.reset_index(drop=True)
    labelled = meta["target"] in valid.columns
    kept = served.loc[result.valid.index] if served is not None else None
    use_served = kept is not None and bool(kept.notna().all())
    # labelled served rows: quality is measured on what was served (the online metric; a
    # multiclass log keeps labels only, so that model is re-scored)
    online = labelled and use_served and meta["task"] != "multiclass"
    output = score(model, valid, meta) if (labelled and not online) or not use_served else None
    if kept is not None and use_served:
        valid[cols.prediction] = kept.to_numpy()
        if online:
            output = kept.to_numpy(dtype="float64")
    elif output is not None:  # nothing served (or not for every row): the local model's output
        valid[cols.prediction] = prediction_column(output, meta)
    summary["prediction_source"] = "served" if use_served else "model"
    if labelled:
        summary["quality_source"] = "served" if online else "model"
    spec, derived = derived_features(model) if params.derived_features else (None, [])
    if spec is not None and derived:
        valid, reference = (
            with_derived(valid, spec, derived),
            with_derived(reference, spec, derived),
        )
        cols = Columns(
            cols.numerical + derived, cols.categorical, cols.prediction, cols.prediction_numerical
        )
    drift = measure_drift(
        evidently_frame(valid, cols), evidently_frame(reference, cols), cols, params
    )
    qual = (
        quality(valid, output, meta, baseline, params.quality_drop, threshold)
        if labelled and output is not None
        else None
    )
    age = model_age(meta, now)
    reasons = retrain_reasons(drift, qual, params, age)
    status = "contract_violation" if not result.ok else ("retrain" if reasons else "ok")
    summary |= {
        "status": status,
        "retrain": bool(reasons),
        "reasons": reasons,
        "drift": {
            "share": drift.share,
            "threshold": params.drift_share,
            "drifted_columns": drift.drifted,
            "columns": drift.columns,
        },
        "prediction_drift": drift.prediction,
        "quality": qual,
        "model_age": age | {"max_days": params.max_model_age_days},
    }
    return Outcome(summary, result.failures, drift, reasons)


def score(model: Any, frame: pd.DataFrame, meta: dict[str, Any]) -> np.ndarray:
    """The local model's output on the batch (for quality, or when nothing was served)."""
    from mlops_template.model import model_output

    try:  # pii columns are never features (train refuses them): absent ones are filled
        return model_output(model, frame.reindex(columns=meta["input_columns"]), meta["task"])
    except Exception as err:  # scikit-learn raises plain ValueError / TypeError
        raise DataError(f"monitor: the model could not score the batch: {err}") from err


def prediction_column(output: np.ndarray, meta: dict[str, Any]) -> np.ndarray:
    """What the reference stores for the output: P(positive), the class label or the value."""
    if meta["task"] == "multiclass":
        from mlops_template.model import labels_for

        return labels_for(output, np.asarray(meta["classes"], dtype=object), None)
    return output
