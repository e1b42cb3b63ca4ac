"""Each task type runs end to end (real dvc repro) on a dataset bundled with scikit-learn.

Pointing the template at another dataset is configuration only: a CSV, a contract YAML and a
few params — no Python changes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn import datasets

from tests.repo import make_repo, run

pytestmark = pytest.mark.integration

CASES = {
    "binary": (datasets.load_breast_cancer, "accuracy", 0.85),
    "multiclass": (datasets.load_wine, "accuracy", 0.8),
    "regression": (datasets.load_diabetes, "r2", 0.2),
}


def write_dataset(repo: Path, task: str) -> None:
    loader = CASES[task][0]
    bunch = loader(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: str(c).replace(" ", "_"))
    frame.insert(0, "row_id", range(1, len(frame) + 1))
    frame.to_csv(repo / "dataset.csv", index=False)
    target = "target"
    columns: dict[str, dict] = {"row_id": {"dtype": "int", "unique": True}}
    for name in frame.columns.drop(["row_id", target]):
        columns[name] = {"dtype": "float"}
    if task == "regression":
        columns[target] = {"dtype": "float"}
    else:
        columns[target] = {
            "dtype": "category",
            "categories": sorted(frame[target].unique().tolist()),
        }
    contract = {"name": loader.__name__, "id": "row_id", "target": target, "columns": columns}
    (repo / "dataset_contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))


@pytest.mark.parametrize("task", list(CASES))
def test_task_runs_end_to_end_on_a_bundled_dataset(tmp_path: Path, task: str):
    _, metric, floor = CASES[task]
    overrides = {
        "data": {
            "task": task,
            "source": "csv",
            "path": "dataset.csv",
            "contract": "dataset_contract.yaml",
            "split": {"method": "random" if task == "regression" else "stratified"},
        },
        "features": {"datetime": [], "log": [], "bins": [], "ratios": [], "drop": ["row_id"]},
        "evaluate": {"slice_column": None},
    }
    repo = make_repo(tmp_path / task, overrides)
    write_dataset(repo, task)
    run(repo, "dvc", "repro")
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics[metric] > floor, metrics
    predictions = pd.read_parquet(repo / "data/predictions/test.parquet")
    assert {"row_id", "target", "prediction"} <= set(predictions.columns)
    plots = {p.name for p in (repo / "reports/plots").iterdir()}
    if task == "regression":
        assert set(metrics) == {"rmse", "mae", "r2"}
        assert "predicted_vs_actual.csv" in plots
    else:
        assert "confusion.csv" in plots
        n_classes = predictions["target"].nunique()
        assert len([c for c in predictions.columns if c.startswith("proba_")]) == (
            1 if task == "binary" else n_classes
        )
