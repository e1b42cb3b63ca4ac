"""The data stage on Dask: a partitioned Parquet dataset validated partition by partition,
split by a seeded hash of the contract's id (or by time), written as partitioned Parquet."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.distributed import read_dataset, replace_path
from mlops_template.errors import ConfigError

log = logging.getLogger(__name__)


def in_test(part: pd.DataFrame, key: list[str], test_size: float, seed: int) -> np.ndarray:
    """Per row: does it belong to the test split? A seeded hash of the ``key`` columns (the
    contract's id, else the whole row) below ``test_size``: the same answer for a row
    wherever it lies and however the data is partitioned."""
    hashed = pd.util.hash_pandas_object(
        part[key], index=False, hash_key=f"mlops{seed:011d}"[-16:]
    ).to_numpy()
    return np.asarray(hashed / float(2**64) < test_size)


def _split_partition(
    part: pd.DataFrame,
    number: int,
    *,
    contract: Any,
    key: list[str],
    cutoff: Any,
    test_size: float,
    seed: int,
    out: tuple[str, str],
) -> dict[str, Any]:
    """Validate one partition and write its rows to ``out`` (train, test folders); or return
    its failure table (nothing written)."""
    from mlops_template.contract import check

    report = check(part.reset_index(drop=True), contract)  # rows: positions in the file
    if not report.ok:
        failures = report.failures.copy()
        failures.insert(0, "partition", number)
        return {"failures": failures}
    valid = report.valid
    valid = valid.loc[valid[contract.target].notna()]
    if cutoff is not None:
        test = np.asarray(valid[contract.timestamp] > cutoff)
    else:
        test = in_test(valid, key, test_size, seed)
    name = f"part-{number:05d}.parquet"
    valid.loc[~test].to_parquet(f"{out[0]}/{name}", index=False)
    valid.loc[test].to_parquet(f"{out[1]}/{name}", index=False)
    return {"train": int((~test).sum()), "test": int(test.sum())}


def describe_partition_failures(failures: pd.DataFrame, files: list[str]) -> str:
    """First line: the first failing partition, its file, column, check and rows; then one
    line per (partition, column, check)."""
    lines = []
    for (number, column, check_name), group in failures.groupby(
        ["partition", "column", "check"], sort=True
    ):
        rows = ", ".join(str(i) for i in group["index"].head(5).tolist())
        examples = ", ".join(map(str, group["failure_case"].drop_duplicates().head(3)))
        lines.append(
            f"partition {number} ({files[int(number)]}): column {column}: check {check_name} "
            f"failed for {len(group)} row(s) (rows {rows}), e.g. {examples}"
        )
    head = f"data.path: {failures['partition'].nunique()} partition(s) break the data contract"
    return f"{head}: {lines[0]}\n" + "\n".join(f"  - {line}" for line in lines)


def prepare_splits(
    location: str,
    contract: Any,
    split: Any,
    targets: tuple[Any, Any],
) -> tuple[int, int]:
    """The data stage on the cluster: read the partitioned dataset, validate every partition
    against the contract, split each row by a seeded hash of the contract's id (or by time),
    write partitioned Parquet splits. On a violation nothing is written and
    ContractViolation names the partition, file, column and rows (exit 3).

    Needs a running client (:func:`connect`); the output folders must be on a filesystem the
    workers share with this process."""
    import shutil
    import tempfile
    from pathlib import Path

    import dask

    from mlops_template.errors import ContractViolation

    frame, files = read_dataset(location)
    cutoff = None
    if split.method == "time":
        if not contract.timestamp:
            raise ConfigError("data.split.method: 'time' needs a contract timestamp column")
        times = dd_to_datetime(frame[contract.timestamp])
        cutoff = times.quantile(1 - split.test_size).compute()
    elif split.method == "stratified":
        log.info("data on Dask: stratified split by a seeded hash (class shares kept on average)")
    key = [contract.id] if contract.id else list(frame.columns)
    for target in targets:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    tmp = [
        Path(tempfile.mkdtemp(prefix=f".{Path(t).name}.", dir=Path(t).parent)).resolve()
        for t in targets
    ]
    try:
        tasks = [
            dask.delayed(_split_partition)(
                part,
                number,
                contract=contract,
                key=key,
                cutoff=cutoff,
                test_size=split.test_size,
                seed=split.seed,
                out=(str(tmp[0]), str(tmp[1])),
            )
            for number, part in enumerate(frame.to_delayed())
        ]
        results = dask.compute(*tasks)
        bad = [r["failures"] for r in results if "failures" in r]
        if bad:
            table = pd.concat(bad, ignore_index=True)
            raise ContractViolation(describe_partition_failures(table, files), table)
        for folder, target in zip(tmp, targets, strict=True):
            replace_path(folder, Path(target))
    finally:
        for folder in tmp:
            shutil.rmtree(folder, ignore_errors=True)
    return sum(r["train"] for r in results), sum(r["test"] for r in results)


def dd_to_datetime(series: Any) -> Any:
    import dask.dataframe as dd

    return dd.to_datetime(series)
