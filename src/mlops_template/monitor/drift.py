"""Drift of the current batch against the reference, measured by Evidently.

Column types come from the data contract (never Evidently's guessing); the model's output is
compared as a column of its own, and the feature function's derived columns (datetime parts,
ratios, aggregates) can be compared too. A column with no value in either frame is reported
as drifted, with no score, instead of failing the run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mlops_template.config import PVALUE_METHODS, FeaturesParams, MonitorParams
from mlops_template.contract import Contract
from mlops_template.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Columns:
    """Input columns by Evidently type, and the model-output column drift is measured on."""

    numerical: list[str]
    categorical: list[str]
    prediction: str
    prediction_numerical: bool

    @property
    def inputs(self) -> list[str]:
        return self.numerical + self.categorical


def columns_for(contract: Contract, meta: dict[str, Any]) -> Columns:
    """Contract dtypes decide the types (never Evidently's guessing); id, time and pii columns
    (and any the contract does not declare) are skipped."""
    skip = {contract.target, contract.id, contract.timestamp, *contract.pii_columns}
    declared = meta.get("input_columns", contract.feature_columns)
    inputs = [c for c in declared if c not in skip and c in contract.columns]
    num = [c for c in inputs if contract.columns[c].dtype in ("int", "float")]
    cat = [c for c in inputs if c not in num and contract.columns[c].dtype != "datetime"]
    if meta["task"] == "binary":
        return Columns(num, cat, f"proba_{meta['classes'][1]}", True)
    return Columns(num, cat, "prediction", meta["task"] == "regression")


def derived_features(model: Any) -> tuple[FeaturesParams | None, list[str]]:
    """The model's own feature spec and the derived columns worth a drift check of their own:
    datetime parts (the timestamp itself is not compared, so "more night-time" shows only
    here), ratios and aggregates (they combine columns). Log, power and bin transforms are
    left out: each is a function of one input column whose drift is measured already."""
    from mlops_template.features import derived_columns, feature_recipe

    recipe = feature_recipe(model)
    if recipe is None:
        return None, []
    spec = FeaturesParams.model_validate(recipe)
    return spec, derived_columns(spec)


def with_derived(frame: pd.DataFrame, spec: FeaturesParams, names: list[str]) -> pd.DataFrame:
    from mlops_template.features import build_features

    present = [c for c in spec.drop if c in frame.columns]  # pii columns are never read
    built = build_features(frame, spec.model_copy(update={"drop": present}))
    return frame.assign(**{n: pd.to_numeric(built[n], errors="coerce") for n in names})


def evidently_frame(frame: pd.DataFrame, cols: Columns) -> pd.DataFrame:
    """Plain dtypes Evidently handles: float64 numbers (nullable ints too), object labels."""
    out = pd.DataFrame(index=frame.index)
    for c in cols.numerical:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in cols.categorical:
        values = frame[c].astype(object)
        out[c] = values.where(values.notna(), None).map(lambda v: None if v is None else str(v))
    pred = frame[cols.prediction]
    out[cols.prediction] = (
        pred.astype("float64") if cols.prediction_numerical else pred.astype(str).astype(object)
    )
    return out.reset_index(drop=True)


@dataclass
class Drift:
    share: float
    drifted: list[str]
    columns: dict[str, dict[str, Any]]
    prediction: dict[str, Any]
    snapshot: Any = field(repr=False, default=None)


def _drifted(score: float, method: str, threshold: float) -> bool:
    return score < threshold if method in PVALUE_METHODS else score >= threshold


def measure_drift(
    current: pd.DataFrame, reference: pd.DataFrame, cols: Columns, params: MonitorParams
) -> Drift:
    """Evidently's DataDriftPreset on the input columns plus ValueDrift on the model output.

    A column with no value at all in the current sample (a broken feed) or in the reference
    cannot be compared: Evidently raises on it. It is reported as drifted with no score and
    left out of the Evidently run; anything else Evidently cannot handle is a DataError."""
    empty = [c for c in cols.inputs if current[c].isna().all() or reference[c].isna().all()]
    if current[cols.prediction].isna().all():
        raise DataError(f"monitor: model output {cols.prediction} has no value in the batch")
    measured = Columns(
        [c for c in cols.numerical if c not in empty],
        [c for c in cols.categorical if c not in empty],
        cols.prediction,
        cols.prediction_numerical,
    )
    if not measured.inputs:
        raise DataError(f"monitor: every input column is empty in the batch: {', '.join(empty)}")
    try:
        drift = _evidently(current, reference, measured, params)
    except Exception as err:  # Evidently / scipy raise plain ValueError, TypeError, ...
        raise DataError(f"monitor: Evidently could not measure drift: {err}") from err
    for c in empty:
        where = "current batch" if current[c].isna().all() else "reference"
        drift.columns[c] = {
            "method": "empty",
            "score": None,
            "threshold": None,
            "drifted": True,
            "note": f"no value in the {where}",
        }
        log.warning("monitor: column %s has no value in the %s: counted as drifted", c, where)
    drift.drifted = sorted(c for c, v in drift.columns.items() if v["drifted"])
    drift.share = round(len(drift.drifted) / len(drift.columns), 6)
    return drift


def _evidently(
    current: pd.DataFrame, reference: pd.DataFrame, cols: Columns, params: MonitorParams
) -> Drift:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    numerical = cols.numerical + ([cols.prediction] if cols.prediction_numerical else [])
    categorical = cols.categorical + ([] if cols.prediction_numerical else [cols.prediction])
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    pred_method = params.num_method if cols.prediction_numerical else params.cat_method
    report = Report(
        [
            DataDriftPreset(
                columns=cols.inputs,
                drift_share=params.drift_share,
                num_method=params.num_method,
                cat_method=params.cat_method,
                num_threshold=params.column_threshold,
                cat_threshold=params.column_threshold,
            ),
            ValueDrift(
                column=cols.prediction, method=pred_method, threshold=params.column_threshold
            ),
        ]
    )
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    return _parse(json.loads(snapshot.json()), cols, params, snapshot)


def _parse(result: dict[str, Any], cols: Columns, params: MonitorParams, snapshot: Any) -> Drift:
    share, per_column = 0.0, {}
    for m in result["metrics"]:
        kind = m["config"]["type"].rsplit(":", 1)[-1]
        if kind == "DriftedColumnsCount":
            share = float(m["value"]["share"])
        elif kind == "ValueDrift":
            column = m["config"]["column"]
            numeric = column in cols.numerical or (
                column == cols.prediction and cols.prediction_numerical
            )
            method = params.num_method if numeric else params.cat_method
            score = float(m["value"])
            per_column[column] = {
                "method": method,
                "score": round(score, 6),
                "threshold": params.column_threshold,
                "drifted": _drifted(score, method, params.column_threshold),
            }
    prediction = per_column.pop(cols.prediction) | {"column": cols.prediction}
    drifted = sorted(c for c, v in per_column.items() if v["drifted"])
    return Drift(round(share, 6), drifted, per_column, prediction, snapshot)
