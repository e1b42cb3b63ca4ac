"""The data, features and train stages with ``dask.enabled`` on a partitioned Parquet dataset,
through the real CLI on a real LocalCluster: a bad partition stops the data stage naming it;
a good dataset gives partitioned splits (a row's split does not depend on the partitioning),
partitioned features and the same kind of model.skops as in process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from mlops_template import cli
from mlops_template.contract import load_contract, validate
from mlops_template.synthetic import generate_transactions
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS


def _dataset(folder: Path, frame: pd.DataFrame, parts: int) -> Path:
    folder.mkdir(parents=True)
    size = -(-len(frame) // parts)
    for i in range(parts):
        frame.iloc[i * size : (i + 1) * size].to_parquet(folder / f"events-{i}.parquet")
    return folder


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: Any) -> Path:
    raw = yaml.safe_load(DEMO_PARAMS.read_text())
    raw["data"].update(source="parquet", path=str(tmp_path / "raw"))
    raw["train"]["model"] = "lightgbm"
    raw["train"]["cv"]["folds"] = 2
    raw["train"]["lightgbm"]["n_estimators"] = 30
    raw["dask"].update(enabled=True, address=cluster.scheduler_address, sample_rows=2000)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    shutil.copy(DEMO_CONTRACT, tmp_path / "contract.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return validate(generate_transactions(8000, seed=11), load_contract(DEMO_CONTRACT))


def test_a_bad_partition_fails_the_data_stage_naming_it(
    project: Path, events: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = events.copy()
    bad.loc[[6005, 6010], "amount"] = -5.0  # both in the fourth file (events-3.parquet)
    _dataset(project / "raw", bad, parts=4)
    assert cli.main(["stage", "data"]) == 3
    err = capsys.readouterr().err
    first = next(line for line in err.splitlines() if "break the data contract" in line)
    assert "partition 3" in first and "events-3.parquet" in first and "amount" in first
    assert "rows 5, 10" in first  # row numbers within that file
    assert not Path("data/split/train.parquet").exists()  # nothing half-written


def test_stages_on_dask_write_partitioned_splits_features_and_a_model(
    project: Path, events: pd.DataFrame
) -> None:
    _dataset(project / "raw", events, parts=4)
    assert cli.main(["stage", "data"]) == 0
    train_dir, test_dir = Path("data/split/train.parquet"), Path("data/split/test.parquet")
    assert train_dir.is_dir() and len(list(train_dir.glob("*.parquet"))) == 4
    train, test = pd.read_parquet(train_dir), pd.read_parquet(test_dir)
    assert len(train) + len(test) == len(events)
    assert 0.15 < len(test) / len(events) < 0.25  # data.split.test_size 0.2, by hash
    assert not set(train["transaction_id"]) & set(test["transaction_id"])

    # the same rows cut into 3 files: every row lands in the same split
    shutil.rmtree(project / "raw")
    _dataset(project / "raw", events, parts=3)
    assert cli.main(["stage", "data"]) == 0
    again = pd.read_parquet(test_dir)
    assert set(again["transaction_id"]) == set(test["transaction_id"])

    assert cli.main(["stage", "features"]) == 0
    features = Path("data/features/train.parquet")
    assert features.is_dir() and len(list(features.glob("*.parquet"))) == 3
    assert "log_amount" in pd.read_parquet(features).columns

    assert cli.main(["stage", "tune"]) == 0
    assert cli.main(["stage", "train"]) == 0
    meta = json.loads(Path("models/model.json").read_text())
    assert meta["model"] == "lightgbm" and meta["classes"] == [0, 1]
    assert Path("models/model.skops").stat().st_size > 0

    # mlops score on the cluster: one ONNX session per partition, partitioned output
    bad = events.copy()
    bad.loc[[3], "amount"] = -1.0
    shutil.rmtree(project / "raw")
    _dataset(project / "raw", bad.drop(columns=["is_fraud"]), parts=3)
    assert cli.main(["score", str(project / "raw"), "--output", "scored.parquet"]) == 0
    scored = pd.read_parquet("scored.parquet")
    assert Path("scored.parquet").is_dir() and len(list(Path("scored.parquet").iterdir())) == 3
    assert len(scored) == len(events) - 1 and {"prediction", "proba_1"} <= set(scored.columns)
    rejected = pd.read_csv(next(Path("scored.rejected").glob("*.csv")))
    assert len(rejected) == 1 and "amount" in rejected["reason"].iloc[0]
