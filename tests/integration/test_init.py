"""`mlops init` on data the template has never seen, then `dvc repro evaluate` with zero edits,
in a real temporary git + DVC repository."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sklearn import datasets

from tests.repo import make_repo, run
from tests.tables import LABELS, nasty_table

pytestmark = pytest.mark.integration


def _iris(repo: Path, outside: Path) -> Path:
    datasets.load_iris(as_frame=True).frame.to_csv(repo / "iris.csv", index=False)
    return Path("iris.csv")


def _nasty(repo: Path, outside: Path) -> Path:
    """ISO-string timestamps, a date-only column, missing values, a boolean, an integer id, a
    count, an integer code, a 10,000-value string column and a 3-class string target, in a
    file outside the project (copied to data/raw/ and put under DVC)."""
    nasty_table(12_000, iso_strings=True).to_csv(outside / "nasty.csv", index=False)
    return outside / "nasty.csv"


CITY = "city         str       no        feature; 10000 distinct values"
# table writer, target, what init says, data.path it writes, the accuracy to beat (nasty: three
# classes, chance is about 0.4), the classes predicted, the slice column
TABLES: dict[str, tuple[Callable[[Path, Path], Path], str, str, str, float, list[Any], Any]] = {
    "iris, in the project": (_iris, "target", "petal width (cm)", "iris.csv", 0.8, [0, 1, 2], None),
    "a nasty table, outside the project": (
        _nasty,
        "label",
        CITY,
        "data/raw/nasty.csv",
        0.5,
        LABELS,
        "channel",
    ),
}


@pytest.mark.parametrize("case", TABLES)
def test_a_table_from_init_to_evaluate(tmp_path: Path, case: str) -> None:
    """`mlops init --force` then `dvc repro evaluate` with zero edits: the file is put under
    DVC where the params say, the model beats chance, every class is predicted with its
    probability column."""
    write, target, said, data_path, floor, classes, slice_column = TABLES[case]
    repo = make_repo(tmp_path / "repo")
    outside = tmp_path / "downloads"
    outside.mkdir()
    table = write(repo, outside)
    assert said in run(repo, "mlops", "init", str(table), "--target", target, "--force").stdout
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["data"]["path"] == data_path
    assert (repo / f"{data_path}.dvc").exists()
    assert run(repo, "git", "check-ignore", "-q", data_path, check=False).returncode == 0

    run(repo, "dvc", "repro", "evaluate")
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert metrics["accuracy"] > floor, metrics
    slices = json.loads((repo / "reports/slices.json").read_text())
    assert slices.get("column") == slice_column
    predictions = pd.read_parquet(repo / "data/predictions/test.parquet")
    assert {f"proba_{c}" for c in classes} <= set(predictions.columns)
    assert set(predictions["prediction"]) <= set(classes)
    assert "up to date" in run(repo, "dvc", "status", f"{data_path}.dvc").stdout
    # new rows in the data file: `dvc add` again, and the data stage is out of date
    frame = pd.read_csv(repo / data_path)
    frame.iloc[: len(frame) * 4 // 5].to_csv(repo / data_path, index=False)
    run(repo, "dvc", "add", "--quiet", data_path)
    assert f"modified:           {data_path}" in run(repo, "dvc", "status", "data").stdout


def test_init_refuses_to_replace_without_force_and_says_what_it_saw(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "iris")
    _iris(repo, tmp_path)
    refused = run(repo, "mlops", "init", "iris.csv", "--target", "target", check=False)
    assert refused.returncode == 2, refused.stderr
    assert "re-run with --force" in refused.stderr and "petal width (cm)" in refused.stdout
    assert run(repo, "git", "status", "--porcelain", "--untracked-files=no").stdout == ""
    shown = run(repo, "mlops", "init", "iris.csv", "--target", "target", "--force").stdout
    assert "iris.csv is versioned by DVC" in shown
