"""`mlops init` on data the template has never seen, then `dvc repro evaluate` with zero edits,
in a real temporary git + DVC repository."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sklearn import datasets

from tests.repo import make_repo, run
from tests.tables import LABELS, nasty_table

pytestmark = pytest.mark.integration


def test_iris_from_init_to_evaluate(tmp_path: Path):
    repo = make_repo(tmp_path / "iris")
    datasets.load_iris(as_frame=True).frame.to_csv(repo / "iris.csv", index=False)

    refused = run(repo, "mlops", "init", "iris.csv", "--target", "target", check=False)
    assert refused.returncode == 2, refused.stderr
    assert "re-run with --force" in refused.stderr and "petal width (cm)" in refused.stdout
    assert run(repo, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""

    shown = run(repo, "mlops", "init", "iris.csv", "--target", "target", "--force").stdout
    assert "iris.csv is versioned by DVC" in shown
    assert (repo / "iris.csv.dvc").exists()
    assert run(repo, "git", "check-ignore", "-q", "iris.csv", check=False).returncode == 0

    run(repo, "dvc", "repro", "evaluate")
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["accuracy"] > 0.8, metrics
    predictions = pd.read_parquet(repo / "data/predictions/test.parquet")
    assert {"proba_0", "proba_1", "proba_2"} <= set(predictions.columns)
    assert "up to date" in run(repo, "dvc", "status", "iris.csv.dvc").stdout

    # new rows in the data file: `dvc add` again, and the data stage is out of date
    iris = pd.read_csv(repo / "iris.csv")
    iris.iloc[:120].to_csv(repo / "iris.csv", index=False)
    run(repo, "dvc", "add", "--quiet", "iris.csv")
    assert "modified:           iris.csv" in run(repo, "dvc", "status", "data").stdout


def test_nasty_table_from_outside_the_project_to_evaluate(tmp_path: Path):
    """ISO-string timestamps, a date-only column, missing values, a boolean, an integer id, a
    count, an integer code, a 10,000-value string column and a 3-class string target, in a
    file outside the project (copied to data/raw/ and put under DVC)."""
    repo = make_repo(tmp_path / "repo")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    nasty_table(12_000, iso_strings=True).to_csv(downloads / "nasty.csv", index=False)

    args = ("mlops", "init", str(downloads / "nasty.csv"), "--target", "label", "--force")
    shown = run(repo, *args).stdout
    assert "city         str       no        feature; 10000 distinct values" in shown
    assert (repo / "data/raw/nasty.csv.dvc").exists()
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["path"] == "data/raw/nasty.csv"

    run(repo, "dvc", "repro", "evaluate")
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["accuracy"] > 0.5, metrics  # three classes: chance is about 0.4
    slices = json.loads((repo / "reports/slices.json").read_text())
    assert slices["column"] == "channel"
    predictions = pd.read_parquet(repo / "data/predictions/test.parquet")
    assert {f"proba_{label}" for label in LABELS} <= set(predictions.columns)
    assert set(predictions["prediction"]) <= set(LABELS)
