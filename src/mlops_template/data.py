"""The `data` stage: ingest from the configured source, validate against the contract, split.

On a contract violation nothing is written under data/: the full failure table goes to
reports/data_validation/ and the stage exits non-zero, so no later stage runs.
"""

from __future__ import annotations

import logging

import pandas as pd

from mlops_template import io, paths, sources
from mlops_template.config import DataParams, Params, SplitParams, Task
from mlops_template.contract import (
    Contract,
    ContractViolation,
    check,
    describe_failures,
    load_contract,
)
from mlops_template.errors import ConfigError, DataError
from mlops_template.synthetic import generate_transactions

log = logging.getLogger(__name__)


def ingest(params: DataParams) -> pd.DataFrame:
    """Load raw data from ``params.source`` (synthetic, csv, parquet or sql)."""
    if params.source == "synthetic":
        s = params.synthetic
        return generate_transactions(s.n_rows, s.fraud_rate, s.seed, drift=s.drift)
    if params.source == "sql":
        return sources.read(
            sources.table(params.sql.url, sql_query=params.sql.query, name="data.sql")
        )
    return sources.read(sources.table(params.path, fmt=params.source, name="data.path"))


def split(
    df: pd.DataFrame, contract: Contract, task: Task, params: SplitParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deterministic train/test split: stratified, random or by time (latest rows are test)."""
    from sklearn.model_selection import train_test_split

    if params.method == "time":
        if not contract.timestamp:
            raise ConfigError(
                "data.split.method: 'time' needs a 'timestamp' column in the contract"
            )
        ordered = df.sort_values(contract.timestamp, kind="stable", ignore_index=True)
        n_test = max(1, round(len(ordered) * params.test_size))
        return ordered.iloc[:-n_test].reset_index(drop=True), ordered.iloc[-n_test:].reset_index(
            drop=True
        )
    stratify = None
    if params.method == "stratified":
        if task == "regression":
            raise ConfigError(
                "data.split.method: 'stratified' needs a classification task; "
                "use 'random' or 'time' for regression"
            )
        stratify = df[contract.target]
    try:
        train, test = train_test_split(
            df, test_size=params.test_size, random_state=params.seed, stratify=stratify
        )
    except ValueError as err:
        raise DataError(f"data.split: cannot split {len(df)} rows: {err}") from None
    return train.reset_index(drop=True), test.reset_index(drop=True)


def write_validation_report(failures: pd.DataFrame, summary: str) -> None:
    io.write_csv(failures, paths.VALIDATION_FAILURES)
    io.write_text(summary + "\n", paths.VALIDATION_SUMMARY)


def prepare(params: DataParams, contract: Contract) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Ingest, validate and split; raise ContractViolation (with the failure table) on bad data."""
    raw = ingest(params)
    log.info("ingested %d rows x %d columns from %s", len(raw), raw.shape[1], params.source)
    report = check(raw, contract)
    if not report.ok:
        source = params.path or params.source
        raise ContractViolation(describe_failures(report.failures, source), report.failures)
    return split(labelled(report.valid, contract.target), contract, params.task, params.split)


def labelled(df: pd.DataFrame, target: str) -> pd.DataFrame:
    """The rows with a label: a row without one can be neither trained nor scored against."""
    missing = df[target].isna()
    if missing.all():
        raise DataError(f"{target}: the target is missing in every row; nothing to learn from")
    if missing.any():
        log.warning(
            "data: %d of %d rows have no %s (not labelled yet): left out of both splits",
            int(missing.sum()),
            len(df),
            target,
        )
        return df.loc[~missing].reset_index(drop=True)
    return df


def run(params: Params) -> None:
    """Entry point of the `data` stage (``mlops stage data``)."""
    contract = load_contract(params.data.contract)
    for stale in (paths.VALIDATION_FAILURES, paths.VALIDATION_SUMMARY):
        stale.unlink(missing_ok=True)
    try:
        train, test = prepare(params.data, contract)
    except ContractViolation as err:
        failures = err.failures if isinstance(err.failures, pd.DataFrame) else pd.DataFrame()
        write_validation_report(failures, str(err))
        raise ContractViolation(
            f"{err}\nfull failure table: {paths.VALIDATION_FAILURES}", failures
        ) from None
    io.write_parquet(train, paths.TRAIN_SPLIT)
    io.write_parquet(test, paths.TEST_SPLIT)
    io.write_text(
        f"OK: {len(train) + len(test)} rows satisfy {contract.name}\n", paths.VALIDATION_SUMMARY
    )
    log.info(
        "data: %d train rows, %d test rows (%s split)",
        len(train),
        len(test),
        params.data.split.method,
    )
