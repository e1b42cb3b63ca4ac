"""serve.challenger: challenger names the MLflow registry alias; the service serves the stored
BentoML model packaged from the run of the version the alias points at. A real SQLite registry
and a real BentoML store, in a process of their own (BENTOML_HOME is read at import)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import sys

import bentoml
from mlflow import MlflowClient

from mlops_template.errors import MlopsError
from mlops_template.serving.rollout.routing import challenger_tag

uri, artifacts = sys.argv[1:]
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
experiment = client.create_experiment("rollout", artifact_location=artifacts)
client.create_registered_model("m")
for i in range(3):
    run = client.create_run(experiment)
    client.set_terminated(run.info.run_id)
    client.create_model_version("m", f"{run.info.artifact_uri}/model", run.info.run_id)
    if i < 2:  # versions 1 and 2 were packaged, version 3 never was
        with bentoml.models.create(f"proj:v{i + 1}", metadata={"mlflow_run_id": run.info.run_id}):
            pass
for version in ("2", "1", "3"):
    client.set_registered_model_alias("m", "challenger", version)
    try:
        print(challenger_tag("challenger", "m"))
    except MlopsError as err:
        print("error:", err)
"""


def test_the_challenger_alias_resolves_to_the_model_packaged_from_its_run(tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = os.environ | {"BENTOML_HOME": str(tmp_path / "bentoml"), "MLFLOW_TRACKING_URI": uri}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, uri, (tmp_path / "artifacts").as_uri()],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    second, first, unpackaged = proc.stdout.strip().splitlines()
    assert (second, first) == ("proj:v2", "proj:v1")
    assert unpackaged.startswith("error: serve.challenger: 'm' version 3 (challenger) comes from")
    assert "no model in the BentoML store was packaged from it" in unpackaged
