"""The `data` stage: ingest from the configured source, validate against the contract, split.

On a contract violation nothing is written under data/: the full failure table goes to
reports/data_validation/ and the stage exits non-zero, so no later stage runs.
"""

from __future__ import annotations

import logging
import math

import numpy as np
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
    labels = None
    if params.method == "stratified":
        if task == "regression":
            raise ConfigError(
                "data.split.method: 'stratified' needs a classification task; "
                "use 'random' or 'time' for regression"
            )
        labels = df[contract.target].to_numpy()
    try:
        train, test = split_positions(len(df), params.test_size, params.seed, labels)
    except ValueError as err:
        raise DataError(f"data.split: cannot split {len(df)} rows: {err}") from None
    return df.take(train).reset_index(drop=True), df.take(test).reset_index(drop=True)


def split_positions(
    n: int, test_size: float, seed: int, labels: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test row positions, the very ones scikit-learn's ``train_test_split(...,
    test_size, random_state=seed, stratify=labels)`` picks (tests/unit/test_split.py compares),
    drawn as index permutations in numpy: the data stage never imports scikit-learn (about 1 s)
    and never builds a list of n Python ints (1.2 s at 10M rows)."""
    n_test = math.ceil(test_size * n)
    n_train = n - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"test_size {test_size} leaves an empty train or test split")
    rng = np.random.RandomState(seed)
    if labels is None:
        permutation = rng.permutation(n)
        return permutation[n_test:], permutation[:n_test]
    codes, classes = pd.factorize(labels, sort=True)
    counts = np.bincount(codes, minlength=len(classes))
    if counts.min() < 2:
        rare = classes[counts < 2].tolist()
        raise ValueError(f"classes with fewer than 2 rows cannot be stratified: {rare}")
    if min(n_train, n_test) < len(classes):
        raise ValueError(f"each split needs at least one row of each of {len(classes)} classes")
    # rows of each class in ascending order (a stable sort; radix for small integer codes)
    by_class = np.split(
        np.argsort(codes.astype(np.int16 if len(classes) < 2**15 else np.int64), kind="stable"),
        np.cumsum(counts)[:-1],
    )
    n_i = _approximate_mode(counts, n_train, rng)
    t_i = _approximate_mode(counts - n_i, n_test, rng)
    train, test = [], []
    for i, rows in enumerate(by_class):
        shuffled = rows.take(rng.permutation(counts[i]), mode="clip")
        train.append(shuffled[: n_i[i]])
        test.append(shuffled[n_i[i] : n_i[i] + t_i[i]])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def _approximate_mode(counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """Rows to draw per class: scikit-learn's ``utils.extmath._approximate_mode`` (floored
    shares, the rest by largest remainder, ties broken by ``rng``)."""
    continuous = counts / counts.sum() * n_draws
    floored = np.floor(continuous)
    need = int(n_draws - floored.sum())
    remainder = continuous - floored
    for value in np.sort(np.unique(remainder))[::-1]:
        if need <= 0:
            break
        (tied,) = np.where(remainder == value)
        add = min(len(tied), need)
        floored[rng.choice(tied, size=add, replace=False)] += 1
        need -= add
    return floored.astype(int)


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


def run_on_dask(params: Params, contract: Contract) -> None:
    """`data` with ``dask.enabled`` and a Parquet source: the dataset never sits in this
    process; the splits are partitioned Parquet folders at the same paths."""
    from mlops_template.distributed import connect
    from mlops_template.distributed_data import prepare_splits

    with connect(params.dask):
        try:
            n_train, n_test = prepare_splits(
                params.data.path,
                contract,
                params.data.split,
                (paths.TRAIN_SPLIT, paths.TEST_SPLIT),
            )
        except ContractViolation as err:
            raise _reported(err) from None
    io.write_text(
        f"OK: {n_train + n_test} rows satisfy {contract.name}\n", paths.VALIDATION_SUMMARY
    )
    log.info("data on Dask: %d train rows, %d test rows (partitioned)", n_train, n_test)


def _reported(err: ContractViolation) -> ContractViolation:
    """The violation with its failure table written to the validation report (named in the
    message, so the one-line error says where to look)."""
    failures = err.failures if isinstance(err.failures, pd.DataFrame) else pd.DataFrame()
    write_validation_report(failures, str(err))
    return ContractViolation(f"{err}\nfull failure table: {paths.VALIDATION_FAILURES}", failures)


def run(params: Params) -> None:
    """Entry point of the `data` stage (``mlops stage data``)."""
    contract = load_contract(params.data.contract)
    for stale in (paths.VALIDATION_FAILURES, paths.VALIDATION_SUMMARY):
        stale.unlink(missing_ok=True)
    if params.dask.enabled and params.data.source == "parquet":
        run_on_dask(params, contract)
        return
    try:
        train, test = prepare(params.data, contract)
    except ContractViolation as err:
        raise _reported(err) from None
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
