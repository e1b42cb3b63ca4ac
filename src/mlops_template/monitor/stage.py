"""`mlops monitor` and the monitor stage of monitoring/dvc.yaml: read the reference and a
sample of the current batch, run the core, write the reports, exit 0, 7 (retrain) or 8
(contract); ``--preflight`` only says whether a run could measure anything here."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_template import paths, sources
from mlops_template.config import Params
from mlops_template.contract import describe_failures, load_contract
from mlops_template.errors import BatchContractViolation, DataError, RetrainNeeded
from mlops_template.monitor.batch import (
    RequestLogWindow,
    Source,
    attach_labels,
    describe,
    read_current,
)
from mlops_template.monitor.core import Outcome, monitor
from mlops_template.monitor.drift import columns_for
from mlops_template.monitor.report import clear_outputs, log_selection, write

log = logging.getLogger(__name__)


def load_reference(n: int, seed: int) -> pd.DataFrame:
    if not paths.REFERENCE.exists():
        raise DataError(f"{paths.REFERENCE}: no reference sample (run `dvc repro evaluate`)")
    reference = pd.read_parquet(paths.REFERENCE)
    if len(reference) > n:
        reference = reference.sample(n=n, random_state=seed).sort_index()
    return reference.reset_index(drop=True)


def run(params: Params, source: Source, labels: str | None = None) -> dict[str, Any]:
    """Entry point of `mlops monitor`: read, check, measure, write, then exit 0, 7 or 8.
    ``labels``: a file of id + target joined to the batch (labels of served traffic)."""
    from mlops_template.model import load

    clear_outputs()
    m = params.monitor
    contract = load_contract(params.data.contract)
    model, model_meta = load()
    meta = model_meta.model_dump()
    baseline = json.loads(paths.METRICS.read_text()) if paths.METRICS.exists() else None
    reference = load_reference(m.sample_rows, m.seed)
    logged = [columns_for(contract, meta).prediction, "model_version"]
    stored = contract.without_pii().columns  # pii columns are never read
    wanted = list(stored) + (logged if isinstance(source, RequestLogWindow) else [])
    on_dask = params.dask.enabled and isinstance(source, sources.Table) and source.fmt != "sql"
    if on_dask:  # the Evidently report on a seeded sample, PSI over every row on the cluster
        from mlops_template import distributed_batch

        current, total = distributed_batch.sample_dataset(
            source.location, m.sample_rows, m.seed, params.dask
        )
    else:
        current, total = read_current(source, wanted, m.sample_rows, m.seed)
    log.info(
        "monitor: %d of %d rows from %s vs %d reference rows",
        len(current),
        total,
        describe(source),
        len(reference),
    )
    unlabelled = None
    if labels:
        current, unlabelled = attach_labels(current, labels, contract)
        current = current.reset_index(drop=True)
    served = current.get(logged[0]) if isinstance(source, RequestLogWindow) else None
    outcome = monitor(
        current[[c for c in current.columns if c in contract.columns]],
        reference,
        model=model,
        meta=meta,
        contract=contract,
        baseline=baseline,
        params=m,
        threshold=model_meta.threshold or 0.5,
        total_rows=total,
        served=served,
    )
    if on_dask:
        shared = [c for c in contract.feature_columns if c in reference and c in current]
        outcome.summary["dask_drift"] = distributed_batch.drift_psi(
            reference, source.location, shared, params.dask
        ) | {"rows": total, "evidently_sample_rows": len(current)}
    if isinstance(source, RequestLogWindow):
        outcome.summary["request_log"] = log_selection(source, current)
    if labels:
        outcome.summary["labels"] = {"file": labels, "rows_without_label": unlabelled}
    write(outcome, describe(source))
    finish(outcome, describe(source))
    return outcome.summary


def preflight(source: Source) -> None:
    """Can a run measure anything here? The deployed model and its reference must be in the
    workspace (pulled from the DVC remote in CI: never retrained for the check) and the
    source must be configured and, if local, exist. Raises DataError naming what is missing,
    so a scheduled workflow can skip with a notice instead of failing every day."""
    missing = [str(p) for p in (paths.MODEL, paths.MODEL_META, paths.REFERENCE) if not p.exists()]
    problems = []
    if missing:
        problems.append(
            f"no deployed model in the workspace ({', '.join(missing)} missing): configure a "
            "DVC remote and `make dvc-pull`, or `make repro`"
        )
    local = isinstance(source, RequestLogWindow) or source.local
    if local and not Path(source.location).exists():
        problems.append(
            f"current data {describe(source)} not found: point monitor.source / monitor.path "
            "(or monitor.sql) at data this machine can reach"
        )
    if problems:
        raise DataError("monitor preflight: " + "; ".join(problems))
    log.info("monitor preflight: model, reference and %s are in place", describe(source))


def finish(outcome: Outcome, source: str) -> None:
    """Log the verdict; raise the documented status (8 contract before 7 retrain)."""
    s = outcome.summary
    if "drift" in s:
        log.info(
            "monitor: drift share %.2f (%d of %d columns), prediction %s %.3f",
            s["drift"]["share"],
            len(s["drift"]["drifted_columns"]),
            len(s["drift"]["columns"]),
            s["prediction_drift"]["method"],
            s["prediction_drift"]["score"],
        )
    retrain = "retrain: " + "; ".join(outcome.reasons) if outcome.reasons else ""
    if not outcome.failures.empty:
        text = describe_failures(outcome.failures, f"monitored batch {source}")
        more = f"\n{retrain}" if retrain else ""
        raise BatchContractViolation(
            f"{text}\nfull failure table: {paths.MONITOR_CONTRACT_FAILURES}{more}",
            outcome.failures,
        )
    if retrain:
        raise RetrainNeeded(retrain)
    log.info("monitor: no drift over the thresholds, no retraining needed")
