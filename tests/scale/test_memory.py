"""A training table larger than any one worker's memory limit trains on a LocalCluster with
every worker's peak memory below its pause threshold and no worker restarted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_template import distributed
from mlops_template.config import DaskParams, TrainParams
from mlops_template.distributed_train import fit_lightgbm
from mlops_template.model import Roles, make_pipeline

WORKERS, LIMIT = 4, "1.5GiB"
# 16 x 210k rows x 61 float64 = 1.64 GB in memory (1.5 GiB = 1.61 GB): more than any worker
# may hold. lightgbm.dask concatenates each worker's parts (a second copy of its quarter) and a
# worker with the libraries loaded takes ~400 MiB: 4 workers is the fewest that can hold it.
FILES, ROWS_PER_FILE, COLUMNS = 16, 210_000, 60
PAUSE = 0.8  # distributed.worker.memory.pause


def _write_table(folder: Path) -> int:
    """Numeric features and a binary target that depends on a few of them; returns the
    table's size in memory (bytes, as pandas holds it)."""
    folder.mkdir()
    total = 0
    for i in range(FILES):
        rng = np.random.default_rng(i)
        X = rng.normal(size=(ROWS_PER_FILE, COLUMNS))
        logit = X[:, 0] - 0.5 * X[:, 1] + 0.25 * X[:, 2] * X[:, 3]
        frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(COLUMNS)])
        frame["y"] = (logit + rng.logistic(size=ROWS_PER_FILE) > 0).astype("int64")
        total += int(frame.memory_usage(deep=True).sum())
        frame.to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return total


@pytest.mark.skip(
    reason="not green yet (issue 24): on the shared 2-core machine a worker of the 4 crossed "
    "memory.target and Dask tried to spill lightgbm.dask's socket futures (PickleError); with "
    "spilling off one worker did not start its part (paused) and the others waited for it in "
    "LightGBM's rendezvous (time_out 120 min). A 1.6M-row x 21 table on 4 x 1 GiB trained in "
    "185 s with peaks 512-651 MiB, but that table fits one worker."
)
def test_a_table_larger_than_a_worker_trains_within_every_limit(tmp_path: Path) -> None:
    """Every worker's peak stays below the pause threshold (80 % of its limit): none paused,
    none restarted, and the model is a real one."""
    from dask import config as dask_config
    from dask.utils import parse_bytes
    from distributed import Client, LocalCluster

    table_bytes = _write_table(tmp_path / "table")
    limit = parse_bytes(LIMIT)
    assert table_bytes > limit  # the table would not fit in any one worker
    dask = DaskParams(enabled=True, workers=WORKERS, memory_limit=LIMIT, sample_rows=20_000)
    train = TrainParams(model="lightgbm").with_overrides({"n_estimators": 10, "num_leaves": 15})
    # lightgbm.dask's futures hold sockets: a worker above distributed.worker.memory.target
    # tries to spill them and fails (PickleError, seen here with spilling on); spilling cannot
    # help a fit that needs its share in memory anyway
    spill_off = {
        "distributed.worker.memory.target": False,
        "distributed.worker.memory.spill": False,
    }
    with (
        dask_config.set(spill_off),
        LocalCluster(
            n_workers=WORKERS,
            threads_per_worker=1,
            memory_limit=LIMIT,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        before = set(client.scheduler_info()["workers"])
        frame = distributed.read_parquet(tmp_path / "table", dask)
        assert frame.npartitions == FILES
        roles = Roles([f"x{j}" for j in range(COLUMNS)], [], [])
        pipeline = fit_lightgbm(
            frame,
            pipeline=make_pipeline("binary", train, roles),
            target="y",
            task="binary",
            train=train,
            dask=dask,
            client=client,
        )
        peaks = client.run(lambda dask_worker: max(dask_worker.monitor.quantities["memory"]))
        after = set(client.scheduler_info()["workers"])
    assert after == before, "a worker was restarted"
    assert len(peaks) == WORKERS
    for worker, peak in peaks.items():
        assert peak < PAUSE * limit, f"{worker}: peak {peak / 2**20:.0f} MiB"
    sample = pd.read_parquet(tmp_path / "table" / "part-000.parquet").head(20_000)
    proba = pipeline.predict_proba(sample.drop(columns=["y"]))[:, 1]
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(sample["y"], proba) > 0.7
    print(  # for the record (pytest -s)
        f"table {table_bytes / 2**30:.2f} GiB; limit {LIMIT}; peaks MiB: "
        + ", ".join(f"{p / 2**20:.0f}" for p in peaks.values())
    )
