"""Interrupted and killed runs in a real SQLite MLflow store: none stays RUNNING for ever."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo import env

pytestmark = pytest.mark.integration

# A process that opens a run the way train does (tags from run_tags, SIGTERM handled by the
# CLI's handler), prints its id, and waits to be stopped.
OPEN_RUN = """
import signal, sys, time
from mlops_template import cli, tracking
signal.signal(signal.SIGTERM, cli._terminate)
mlflow = tracking.connect("faults")
with mlflow.start_run() as run:
    mlflow.set_tags(tracking.run_tags())
    print(run.info.run_id, flush=True)
    time.sleep(120)
"""


def _open_run(tmp_path: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OPEN_RUN],
        cwd=tmp_path,
        env=env() | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _status(tmp_path: Path, run_id: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return str(mlflow.get_run(run_id).info.status)


def test_sigterm_ends_the_open_run_as_failed(tmp_path: Path) -> None:
    proc, run_id = _open_run(tmp_path)
    assert _status(tmp_path, run_id) == "RUNNING"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert _status(tmp_path, run_id) == "FAILED"


def test_runs_of_killed_processes_are_marked_killed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_template import tracking

    proc, dead = _open_run(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    alive, running = _open_run(tmp_path)  # a live process's run is left alone
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        mlflow = tracking.connect("faults")
        assert _status(tmp_path, dead) == "RUNNING"
        assert tracking.reap_orphans(mlflow, "faults") == [dead]
        assert _status(tmp_path, dead) == "KILLED"
        assert _status(tmp_path, running) == "RUNNING"
    finally:
        alive.kill()
        alive.wait(timeout=30)


# `mlops stage train`, killed at the earliest moment its run exists in the store: right after
# MLflow's create_run returns (what a kill -9 between opening the run and tagging it did).
KILLED_TRAIN = """
import os, sys
from mlflow.tracking.client import MlflowClient
create = MlflowClient.create_run
def create_then_die(self, *args, **kwargs):
    run = create(self, *args, **kwargs)
    os._exit(137)
MlflowClient.create_run = create_then_die
from mlops_template.cli import main
sys.exit(main(["stage", "train"]))
"""


def test_a_train_killed_as_its_run_opens_leaves_a_run_the_next_train_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import yaml

    from mlops_template import tracking
    from tests.integration.servers import MLOPS
    from tests.repo import DEMO_CONTRACT, DEMO_PARAMS, TINY, merge

    shutil.copy(DEMO_CONTRACT, tmp_path / "contract.yaml")
    raw = merge(yaml.safe_load(DEMO_PARAMS.read_text()), TINY)
    raw["tracking"]["experiment"] = "faults"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    run_env = env() | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    for stage in ("data", "features"):
        subprocess.run([MLOPS, "stage", stage], cwd=tmp_path, env=run_env, check=True)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_TRAIN], cwd=tmp_path, env=run_env, capture_output=True
    )
    assert killed.returncode == 137, killed.stderr

    monkeypatch.setenv("MLFLOW_TRACKING_URI", run_env["MLFLOW_TRACKING_URI"])
    mlflow = tracking.connect("faults")
    (run,) = mlflow.search_runs(output_format="list")
    assert run.info.status == "RUNNING"
    assert run.data.tags["mlops.host"] and run.data.tags["stage"] == "train"
    assert tracking.reap_orphans(mlflow, "faults") == [run.info.run_id]
    assert _status(tmp_path, run.info.run_id) == "KILLED"
