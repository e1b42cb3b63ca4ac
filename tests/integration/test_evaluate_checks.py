"""The evaluate stage's declared checks and `mlops explain`, run as commands on a copy of a
trained project."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from tests.integration.servers import MLOPS

pytestmark = pytest.mark.integration


@pytest.fixture
def copy(project: tuple[Path, dict[str, str]], tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The trained model, its test split, reference, contract and params (own MLflow store)."""
    root, env = project
    for name in ("models", "data/split", "data/features", "data/reference"):
        shutil.copytree(root / name, tmp_path / name)
    for name in ("contract.yaml", "params.yaml"):
        shutil.copy(root / name, tmp_path / name)
    return tmp_path, env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}


def _evaluate(root: Path, env: dict[str, str], **evaluate: Any) -> subprocess.CompletedProcess:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["evaluate"] |= evaluate
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run(
        [MLOPS, "stage", "evaluate"], cwd=root, env=env, capture_output=True, text=True
    )


def test_a_feature_below_the_floor_stops_the_stage_after_its_reports(copy) -> None:
    root, env = copy
    proc = _evaluate(root, env, min_feature_importance=0.5, feature_importance_action="fail")
    assert proc.returncode == 5, proc.stderr
    assert "input columns below evaluate.min_feature_importance 0.5: amount" in proc.stderr
    checks = json.loads((root / "reports/checks.json").read_text())
    importance = pd.read_csv(root / "reports/plots/importance.csv")
    assert set(checks["features"]["below"]) == set(importance["feature"])  # all below 0.5
    assert (root / "reports/metrics.json").exists()  # every report is written first

    proc = _evaluate(root, env, feature_importance_action="report")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING evaluate: input columns below" in proc.stderr


def test_a_slice_below_its_floor_stops_the_stage(copy) -> None:
    root, env = copy
    proc = _evaluate(
        root,
        env,
        slice_column="channel",
        slice_checks={"channel": {"min": {"accuracy": 0.999}}},
        slice_min_rows=50,
    )
    assert proc.returncode == 5, proc.stderr
    checks = json.loads((root / "reports/checks.json").read_text())["slices"]
    assert checks["column"] == "channel" and checks["failed"]
    assert any(p.startswith("slice ") and "accuracy" in p for p in checks["problems"])
    assert "evaluate checks failed: slice " in proc.stderr

    loose = {"channel": {"min": {"accuracy": 0.5}, "max_gap": {"accuracy": 0.5}}}
    assert _evaluate(root, env, slice_checks=loose).returncode == 0
    # checks declared for another column (the demo's) do not apply to this slice column
    other = {"merchant_category": {"min": {"accuracy": 0.999}}}
    proc = _evaluate(root, env, slice_checks=other)
    assert proc.returncode == 0, proc.stderr
    note = json.loads((root / "reports/checks.json").read_text())["slices"]["note"]
    assert note == "no evaluate.slice_checks for slice column channel (declared: merchant_category)"


def test_explain_one_row_by_position_and_by_id(copy) -> None:
    root, env = copy
    test = pd.read_parquet(root / "data/split/test.parquet")
    wanted = str(test["transaction_id"].iloc[5])
    by_id = subprocess.run(
        [MLOPS, "explain", "data/split/test.parquet", "--id", wanted, "--json"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert by_id.returncode == 0, by_id.stderr
    result = json.loads(by_id.stdout)
    columns = {c["column"]: c for c in result["contributions"]}
    assert set(columns) == set(test.columns) - {"is_fraud"}
    assert columns["transaction_id"]["contribution"] == 0.0
    total = sum(c["contribution"] for c in result["contributions"])
    assert total == pytest.approx(result["output"] - result["baseline"], abs=1e-9)

    table = subprocess.run(
        [MLOPS, "explain", "data/split/test.parquet", "--row", "5"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert table.returncode == 0, table.stderr
    assert table.stdout.startswith(f"P(1) = {result['output']:.4f}")
    missing = subprocess.run(
        [MLOPS, "explain", "data/split/test.parquet", "--id", "-1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 3 and "no row with transaction_id = -1" in missing.stderr
