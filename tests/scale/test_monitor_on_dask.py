"""Drift statistics counted on a real LocalCluster over every row of a partitioned batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops_template.config import DaskParams
from mlops_template.contract import load_contract, validate
from mlops_template.distributed_batch import drift_psi, sample_dataset
from mlops_template.synthetic import generate_transactions
from tests.repo import DEMO_CONTRACT


def _write(folder: Path, drift: str) -> Path:
    contract = load_contract(DEMO_CONTRACT)
    folder.mkdir()
    for i in range(3):
        part = validate(generate_transactions(3000, seed=20 + i, drift=drift), contract)
        part.to_parquet(folder / f"batch-{i}.parquet")
    return folder


def test_psi_on_the_cluster_sees_a_shift_and_not_its_absence(cluster: Any, tmp_path: Path) -> None:
    contract = load_contract(DEMO_CONTRACT)
    reference = validate(generate_transactions(6000, seed=1), contract)
    dask = DaskParams(enabled=True, address=cluster.scheduler_address)
    columns = ["amount", "merchant_category", "distance_from_home_km"]
    same = drift_psi(reference, str(_write(tmp_path / "same", "none")), columns, dask)
    shifted = drift_psi(reference, str(_write(tmp_path / "shifted", "shifted")), columns, dask)
    assert same["columns"]["amount"]["rows"] == 9000  # every row counted (missing values not)
    assert max(c["psi"] for c in same["columns"].values()) < 0.05
    assert max(c["psi"] for c in shifted["columns"].values()) > 0.1
    sample, total = sample_dataset(str(tmp_path / "shifted"), 1000, 42, dask)
    assert total == 9000 and 700 < len(sample) < 1300
    again, _ = sample_dataset(str(tmp_path / "shifted"), 1000, 42, dask)
    assert sample.equals(again)  # seeded
