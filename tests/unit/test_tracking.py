"""Where MLflow artifacts go for each kind of tracking URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_template.tracking import default_artifact_location


def test_sqlite_store_keeps_artifacts_beside_the_database(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    assert default_artifact_location(uri) == (tmp_path / "shared" / "mlartifacts").as_uri()


def test_relative_sqlite_path_resolves_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)
    assert default_artifact_location("sqlite:///mlflow.db") == (tmp_path / "mlartifacts").as_uri()


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "databricks", "postgresql://db/mlflow"])
def test_servers_choose_their_own_artifact_store(uri: str):
    assert default_artifact_location(uri) is None
