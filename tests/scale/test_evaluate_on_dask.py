"""The evaluate stage with ``dask.enabled`` on a real LocalCluster and real partitioned Parquet:
the held-out metrics equal the in-process ones for the same model, and this process never
reads the test split's table (only the target, the model's output, the slice column and a
seeded sample come home)."""

from __future__ import annotations

import functools
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_template import cli, distributed, paths
from mlops_template.config import Params, parse_params
from mlops_template.contract import load_contract, validate
from mlops_template.features import build_features
from mlops_template.model import ModelMeta, file_sha256, save
from mlops_template.stages import evaluate as stage
from mlops_template.stages.train import train
from mlops_template.synthetic import generate_transactions
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS

TEST_ROWS = 12_000
SAMPLE_ROWS = 1_500


def _parts(folder: Path, frame: pd.DataFrame, parts: int) -> None:
    folder.mkdir(parents=True)
    size = -(-len(frame) // parts)
    for i in range(parts):
        frame.iloc[i * size : (i + 1) * size].to_parquet(folder / f"part-{i:05d}.parquet")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, cluster: Any) -> tuple[Path, pd.DataFrame]:
    """A project folder with partitioned splits and features (as the data and features stages
    write them on Dask) and an in-process LightGBM model."""
    root = tmp_path_factory.mktemp("evaluate-on-dask")
    raw = yaml.safe_load(DEMO_PARAMS.read_text())
    raw["train"]["model"] = "lightgbm"
    raw["train"]["cv"]["folds"] = 2
    raw["train"]["lightgbm"]["n_estimators"] = 30
    raw["evaluate"]["slice_checks"] = {}  # judged elsewhere; 12k rows have few frauds a slice
    raw["evaluate"]["reference"]["max_rows"] = 2_000  # the sample path of the simpler models
    raw["dask"].update(enabled=True, address=cluster.scheduler_address, sample_rows=SAMPLE_ROWS)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(DEMO_CONTRACT, root / "contract.yaml")
    params = parse_params(raw)
    contract = load_contract(DEMO_CONTRACT)
    frame = validate(generate_transactions(8_000 + TEST_ROWS, fraud_rate=0.1, seed=3), contract)
    train_raw, test_raw = frame.iloc[:8_000], frame.iloc[8_000:].reset_index(drop=True)
    for split, rows in (("train", train_raw), ("test", test_raw)):
        _parts(root / "data/split" / f"{split}.parquet", rows, 3)
        _parts(
            root / "data/features" / f"{split}.parquet", build_features(rows, params.features), 3
        )
    result = train(
        build_features(train_raw, params.features),
        raw_columns=contract.feature_columns,
        target=contract.target,
        task="binary",
        params=params.train,
        feature_spec=params.features,
    )
    save(result.model, root / paths.MODEL)
    ModelMeta(
        task="binary",
        model="lightgbm",
        target=contract.target,
        id_column=contract.id,
        input_columns=result.input_columns,
        classes=result.classes,
        threshold=result.threshold,
        threshold_source=result.threshold_source,
        contract={"name": contract.name, "version": contract.version},
        model_sha256=file_sha256(root / paths.MODEL),
    ).write(root / paths.MODEL_META)
    return root, test_raw


@pytest.fixture
def params(project: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch) -> Params:
    monkeypatch.chdir(project[0])
    return parse_params(yaml.safe_load(Path("params.yaml").read_text()))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Parquet file or folder pandas reads in this process (the workers are other
    processes: what they read is not recorded)."""
    seen: list[str] = []
    real = pd.read_parquet

    def spy(path: Any, *args: Any, **kwargs: Any) -> pd.DataFrame:
        seen.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", spy)
    # read_dataset's partitions: read by the workers, never here
    monkeypatch.setattr(distributed, "_read_file", functools.partial(_not_here, here=os.getpid()))
    return seen


def _not_here(path: str, here: int) -> pd.DataFrame:
    if os.getpid() == here:
        raise AssertionError(f"{path}: a partition was read in the test process")
    return pd.read_parquet(path)


def test_held_out_metrics_on_the_cluster_equal_in_process_and_the_table_stays_there(
    project: tuple[Path, pd.DataFrame],
    params: Params,
    reads: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mlops_template.model import load

    model, meta = load()
    came_home: list[int] = []
    real_sample = distributed.sample

    def counted(frame: Any, rows: int, seed: int, total: int | None = None) -> pd.DataFrame:
        out = real_sample(frame, rows, seed, total)
        came_home.append(len(out))
        return out

    monkeypatch.setattr(distributed, "sample", counted)
    on_dask = stage.evaluate_on_dask(model, meta, params)
    assert not [p for p in reads if "test.parquet" in p]  # neither the split nor its features
    # what came home of the test split: the seeded samples, never the whole split
    assert came_home and max(came_home) < TEST_ROWS / 4
    assert len(on_dask.sample) < TEST_ROWS / 4

    local = stage.evaluate(model, project[1], meta=meta, params=params.evaluate, seed=42)
    remote = on_dask.result
    assert remote.metrics.keys() == local.metrics.keys()
    for key, value in local.metrics.items():
        assert remote.metrics[key] == pytest.approx(value, abs=1e-9), key
    assert remote.slices == local.slices  # every slice's metrics and row count
    assert remote.extra["confusion_matrix"] == local.extra["confusion_matrix"]
    assert sum(map(sum, remote.extra["confusion_matrix"]["matrix"])) == TEST_ROWS
    for plot in ("roc", "precision_recall", "confusion"):
        pd.testing.assert_frame_equal(remote.plots[plot], local.plots[plot])
    note = remote.extra["evaluated_on"]
    assert note["held_out_rows"] == TEST_ROWS and note["sample"]["rows"] == len(on_dask.sample)
    assert len(remote.predictions) == len(on_dask.sample)
    assert on_dask.simpler["sample"]["test"]["of"] == TEST_ROWS
    assert on_dask.simpler["reference"]["skipped"].startswith("8,000 training rows")


def test_the_evaluate_stage_on_dask_writes_its_reports_with_the_sample_declared(
    project: tuple[Path, pd.DataFrame], params: Params, reads: list[str]
) -> None:
    assert cli.main(["stage", "evaluate"]) == 0
    assert not [p for p in reads if "test.parquet" in p]
    metrics = json.loads(paths.METRICS.read_text())
    assert 0.5 < metrics["roc_auc"] <= 1.0
    slices = json.loads(paths.SLICES.read_text())
    assert slices["evaluated_on"]["held_out_rows"] == TEST_ROWS
    sample_rows = slices["evaluated_on"]["sample"]["rows"]
    assert 0 < sample_rows < TEST_ROWS / 4
    checks = json.loads(paths.CHECKS.read_text())
    assert checks["features"]["sample"]["rows"] == sample_rows
    predictions = pq_rows(paths.PREDICTIONS)
    reference = pq_rows(paths.REFERENCE)
    assert predictions == reference == sample_rows
    baselines = json.loads(paths.BASELINES.read_text())
    assert baselines["rows"]["test"] == baselines["sample"]["test"]["rows"] < TEST_ROWS / 4
    assert np.isfinite(baselines["prior"]["metrics"]["log_loss"])


def pq_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)
