"""Promotion and rollback of the `champion` alias against a real MLflow SQLite registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_template.cli import main
from mlops_template.registry import CHAMPION, HISTORY_TAG, RegistryError, promote, rollback
from tests.repo import DEMO_PARAMS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
NAME = "mlops-template-model"  # tracking.registered_model in params.yaml


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """Three registered versions, each from its own run tagged with a git commit."""
    from mlflow import MlflowClient

    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("gate", artifact_location=(tmp / "a").as_uri())
    client.create_registered_model(NAME)
    for i in (1, 2, 3):
        run = client.create_run(experiment, tags={"git_commit": f"{i}" * 40})
        client.set_terminated(run.info.run_id)
        client.create_model_version(NAME, f"{run.info.artifact_uri}/model", run.info.run_id)
    return uri, client


@pytest.fixture
def registry(store, monkeypatch: pytest.MonkeyPatch):
    """The shared store with no champion, no history and no promotion tags."""
    uri, client = store
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    if CHAMPION in (client.get_registered_model(NAME).aliases or {}):
        client.delete_registered_model_alias(NAME, CHAMPION)
    client.set_registered_model_tag(NAME, HISTORY_TAG, "")
    for version in ("1", "2", "3"):
        for tag in ("image", "rolled_back"):
            client.delete_model_version_tag(NAME, version, tag)
    return client


def champion(client) -> int:
    return int(client.get_model_version_by_alias(NAME, CHAMPION).version)


def test_promote_then_roll_back_to_the_previous_champion(registry):
    first = promote(NAME, 1, image="ghcr.io/acme/model:" + "1" * 40)
    assert (first.version, first.previous) == (1, None)
    third = promote(NAME, 3, image="ghcr.io/acme/model:" + "3" * 40)
    assert (third.version, third.previous, champion(registry)) == (3, 1, 3)
    assert third.git_commit == "3" * 40  # copied from the run that trained it

    back = rollback(NAME)
    # version 2 was never champion: the rollback goes to the previous champion, version 1
    assert (back.version, back.previous, champion(registry)) == (1, 3, 1)
    assert back.image == "ghcr.io/acme/model:" + "1" * 40 and back.git_commit == "1" * 40
    versions = registry.search_model_versions(f"name = '{NAME}'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]  # nothing deleted
    assert registry.get_model_version(NAME, "3").tags["rolled_back"] == "true"

    with pytest.raises(RegistryError, match="no earlier version to roll back to"):
        rollback(NAME)
    assert champion(registry) == 1


def test_rollback_without_history_goes_to_the_highest_earlier_version(registry):
    registry.set_registered_model_alias(NAME, CHAMPION, "3")  # set by hand, no history
    assert rollback(NAME).version == 2 and champion(registry) == 2


def test_errors_name_the_version_and_model(registry):
    with pytest.raises(RegistryError, match=r"has no version 9 \(registered: 1, 2, 3\)"):
        promote(NAME, 9)
    with pytest.raises(RegistryError, match="has no 'champion' alias yet"):
        rollback(NAME)
    with pytest.raises(RegistryError, match="'other' not found"):
        promote("other", 1)


def test_cli_promote_and_rollback(registry, capsys):
    params = str(DEMO_PARAMS)
    assert main(["--params", params, "promote", "--version", "2", "--image", "img:2"]) == 0
    assert main(["--params", params, "promote", "--version", "3"]) == 0
    assert champion(registry) == 3
    assert main(["--params", params, "rollback"]) == 0
    out = capsys.readouterr().out
    assert "champion -> version 2 (was 3); redeploy image img:2" in out
    assert main(["--params", params, "promote", "--version", "7"]) == 9


def test_promote_refuses_a_version_from_another_run(registry):
    """models/model.json's version number may belong to another store (a developer's SQLite
    file): the version must come from the run that trained the shipped model."""
    run_of_3 = registry.get_model_version(NAME, "3").run_id
    with pytest.raises(RegistryError, match="version 3 was registered from that run"):
        promote(NAME, 2, run_id=run_of_3)
    with pytest.raises(RegistryError, match="no version of 'mlops-template-model' in"):
        promote(NAME, 2, run_id="f" * 32)
    assert CHAMPION not in (registry.get_registered_model(NAME).aliases or {})
    assert promote(NAME, 3, run_id=run_of_3).version == 3


def _trained(path: Path, mlflow: dict[str, str]) -> None:
    """models/model.json as train writes it (a ModelMeta), registered as ``mlflow`` says."""
    from mlops_template.model import ModelMeta

    base = {"task": "binary", "model": "linear", "target": "y", "input_columns": ["a"]}
    ModelMeta.model_validate(base | {"contract": {"name": "c"}, "mlflow": mlflow}).write(path)


def test_cli_promote_checks_the_trained_models_run(registry, tmp_path, monkeypatch, capsys):
    run_of_1 = registry.get_model_version(NAME, "1").run_id
    (tmp_path / "models").mkdir()
    meta = tmp_path / "models/model.json"
    _trained(meta, {"version": "2", "run_id": run_of_1})
    monkeypatch.chdir(tmp_path)
    params = str(DEMO_PARAMS)
    assert main(["--params", params, "promote"]) == 9
    assert "version 1 was registered from that run" in capsys.readouterr().err
    _trained(meta, {"version": "1", "run_id": run_of_1})
    assert main(["--params", params, "promote", "--image", "img:1"]) == 0
    assert champion(registry) == 1
