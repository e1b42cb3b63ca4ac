"""Tables larger than any one worker's memory limit train and score on the LocalCluster the
template starts (distributed.local_cluster: no spilling, pause at 90 %) with every worker's
peak resident memory below its limit, no worker paused and none restarted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template import distributed
from mlops_template.config import DaskParams, TrainParams
from mlops_template.distributed_train import fit_lightgbm
from mlops_template.model import Roles, make_pipeline

WORKERS, LIMIT = 6, "1GiB"
# 24 files x 110k rows x 61 float64 columns = 1.29 GB (1.20 GiB) in memory as pandas reads
# it: 1.2x a worker's limit. Besides its share a worker holds ~450 MiB (the libraries,
# LightGBM's bin sample, a partition being read), and lightgbm.dask concatenates its
# partitions (a second copy of its share): peak ~ 450 MiB + 2 x table / workers (measured
# 855 MiB). Below the pause threshold (90 % of 1 GiB) that allows at most ~0.9 GiB on 4
# workers and ~1.4 GiB on 6, so 6 x 1 GiB with 1.2 GiB is the smallest setup that shows a
# table larger than any worker's limit training. 2 GiB on 6 x 1.5 GiB (peaks 1134 MiB) took
# ~3.5 min on the loaded 2-core machine: too long for make test-scale.
FILES, ROWS_PER_FILE, COLUMNS = 24, 110_000, 60
THREADS = 1


def _write_part(folder: str, i: int) -> int:
    """File ``i``: numeric features and a binary target that depends on a few of them;
    returns its size in memory (bytes, as pandas holds it)."""
    rng = np.random.default_rng(i)
    X = rng.normal(size=(ROWS_PER_FILE, COLUMNS))
    logit = X[:, 0] - 0.5 * X[:, 1] + 0.25 * X[:, 2] * X[:, 3]
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(COLUMNS)])
    frame["y"] = (logit + rng.logistic(size=ROWS_PER_FILE) > 0).astype("int64")
    frame.to_parquet(Path(folder) / f"part-{i:03d}.parquet", index=False, compression=None)
    return int(frame.memory_usage(deep=True).sum())


@pytest.fixture(scope="module")
def dask_params() -> DaskParams:
    return DaskParams(
        enabled=True,
        workers=WORKERS,
        threads_per_worker=THREADS,
        memory_limit=LIMIT,
        sample_rows=20_000,
        socket_timeout_minutes=2,
    )


@pytest.fixture(scope="module")
def cluster(dask_params: DaskParams) -> Iterator[Any]:
    """The LocalCluster the template starts (its memory thresholds, no spilling)."""
    with distributed.local_cluster(dask_params) as local:
        yield local


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory, cluster: Any) -> tuple[Path, int]:
    """The table as Parquet files (written by the workers, in parallel) and its size in
    memory; it is never in one process."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("memory") / "table"
    folder.mkdir()
    with Client(cluster) as c:
        sizes = c.gather(c.map(_write_part, [str(folder)] * FILES, range(FILES)))
    return folder, sum(sizes)


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    """A client whose workers' peak memory starts afresh (each test measures its own)."""
    from distributed import Client

    with Client(cluster) as c:
        c.wait_for_workers(WORKERS)
        distributed.reset_worker_peaks(c)
        yield c


def _check_memory(client: Any, before: set[str]) -> list[int]:
    """Every worker's peak RSS below the pause threshold (so below its limit), none paused,
    none restarted; returns the peaks."""
    from dask.utils import parse_bytes

    limit = parse_bytes(LIMIT)
    after = set(client.scheduler_info()["workers"])
    assert after == before, f"a worker was restarted: {sorted(before ^ after)}"
    peaks = distributed.worker_peaks(client)
    assert len(peaks) == WORKERS
    pause = distributed.WORKER_MEMORY["distributed.worker.memory.pause"]
    for worker, peak in peaks.items():
        assert peak < pause * limit, f"{worker}: peak {peak / 2**20:.0f} MiB of {LIMIT}"
    logs = client.get_worker_logs()
    paused = [w for w, lines in logs.items() if any("Pausing worker" in m for _, m in lines)]
    assert not paused, f"paused: {paused}"
    return list(peaks.values())


def _report(what: str, table_bytes: int, peaks: list[int]) -> None:
    print(  # for the record (pytest -s)
        f"{what}: table {table_bytes / 2**30:.2f} GiB on {WORKERS} workers of {LIMIT}; "
        "peak RSS MiB: " + ", ".join(f"{p / 2**20:.0f}" for p in sorted(peaks))
    )


def test_a_table_larger_than_a_worker_trains_within_every_limit(
    table: tuple[Path, int], dask_params: DaskParams, client: Any
) -> None:
    """The table is larger than any worker's limit; every worker's peak stays below the pause
    threshold (90 % of its limit): none paused, none restarted, and the model is a real one."""
    from dask.utils import parse_bytes
    from sklearn.metrics import roc_auc_score

    folder, table_bytes = table
    assert table_bytes > parse_bytes(LIMIT)  # the table would not fit in any one worker
    train = TrainParams(model="lightgbm").with_overrides({"n_estimators": 10, "num_leaves": 15})
    before = set(client.scheduler_info()["workers"])
    frame = distributed.read_parquet(folder, dask_params)
    assert frame.npartitions == FILES
    pipeline = fit_lightgbm(
        frame,
        pipeline=make_pipeline("binary", train, Roles([f"x{j}" for j in range(COLUMNS)], [], [])),
        target="y",
        task="binary",
        train=train,
        dask=dask_params,
        client=client,
    )
    peaks = _check_memory(client, before)
    sample = pd.read_parquet(folder / "part-000.parquet").head(20_000)
    proba = pipeline.predict_proba(sample.drop(columns=["y"]))[:, 1]
    assert roc_auc_score(sample["y"], proba) > 0.7
    _report("train", table_bytes, peaks)


def _wide_project(project: Path, sample: pd.DataFrame) -> None:
    """A project whose contract is the wide table's and whose model (in-process LightGBM on
    a sample) is stored as the train stage stores it."""
    import yaml
    from sklearn.pipeline import Pipeline

    from mlops_template.config import FeaturesParams
    from mlops_template.features import feature_transformer
    from mlops_template.model import ModelMeta, file_sha256, save

    columns: dict[str, Any] = {f"x{j}": {"dtype": "float"} for j in range(COLUMNS)}
    columns["y"] = {"dtype": "category", "categories": [0, 1]}
    contract = {"name": "wide", "version": 1, "target": "y", "columns": columns}
    (project / "contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    train = TrainParams(model="lightgbm").with_overrides({"n_estimators": 10, "num_leaves": 15})
    inputs = [f"x{j}" for j in range(COLUMNS)]
    fitted = make_pipeline("binary", train, Roles(inputs, [], [])).fit(sample[inputs], sample["y"])
    features = feature_transformer(FeaturesParams()).fit(None)  # no derived features
    (project / "models").mkdir()
    save(Pipeline([("features", features), ("model", fitted)]), project / "models" / "model.skops")
    meta = ModelMeta(
        task="binary",
        model="lightgbm",
        target="y",
        input_columns=inputs,
        classes=[0, 1],
        threshold=0.5,
        contract={"name": "wide", "version": 1},
        model_sha256=file_sha256(project / "models" / "model.skops"),
    )
    (project / "models" / "model.json").write_text(json.dumps(meta.model_dump(mode="json")))


def test_scoring_a_table_larger_than_a_worker_stays_within_every_limit(
    table: tuple[Path, int],
    dask_params: DaskParams,
    cluster: Any,
    client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`mlops score` on the cluster (an ONNX session per partition, partitioned Parquet out)
    scores every row of a table larger than any worker's limit, each worker below it."""
    from dask.utils import parse_bytes

    from mlops_template.contract import load_contract
    from mlops_template.distributed_batch import score

    folder, table_bytes = table
    assert table_bytes > parse_bytes(LIMIT)
    _wide_project(tmp_path, pd.read_parquet(folder / "part-000.parquet").head(20_000))
    monkeypatch.chdir(tmp_path)
    before = set(client.scheduler_info()["workers"])
    on_cluster = dask_params.model_copy(update={"address": cluster.scheduler_address})
    caplog.set_level(logging.INFO, logger="mlops_template.distributed_batch")
    scored, rejected = score(
        str(folder), tmp_path / "scored.parquet", load_contract("contract.yaml"), on_cluster
    )
    peaks = _check_memory(client, before)
    assert "score on Dask: onnx runtime" in caplog.text  # an ONNX session per partition
    assert (scored, rejected) == (FILES * ROWS_PER_FILE, 0)
    parts = sorted((tmp_path / "scored.parquet").glob("*.parquet"))
    assert len(parts) == FILES
    last = pd.read_parquet(parts[-1], columns=["prediction", "proba_1"])
    truth = pd.read_parquet(folder / f"part-{FILES - 1:03d}.parquet", columns=["y"])["y"]
    assert len(last) == ROWS_PER_FILE and last["proba_1"].between(0, 1).all()
    assert (last["prediction"].astype(int) == truth).mean() > 0.6  # a real model's output
    _report("score", table_bytes, peaks)
