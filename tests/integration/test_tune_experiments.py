"""`dvc exp run --queue` with -S overrides, `dvc queue start`, then `dvc exp show --json`.

Runs the real pipeline (tiny params) in a git copy of the repository; checks that both
experiments are listed and that their MLflow runs (made in DVC's temporary experiment folders)
landed in the copied repository's own mlflow.db.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.repo import make_repo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
# queued experiments (up to `evaluate`: gate and package add nothing to what this test checks)
EXPERIMENTS = {
    "exp-lr": ["tune.enabled=true", "tune.n_trials=2"],
    "exp-iter": ["train.hist_gradient_boosting.max_iter=10"],
}


def _sh(*cmd: str, cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed template copy (no outputs, so no metric baseline) with a 2-trial search."""
    return make_repo(tmp_path / "repo", {"tune": {"folds": 2, "n_trials": 2, "method": "random"}})


def test_queued_experiments_run_and_show(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, overrides in EXPERIMENTS.items():
        settings = [arg for key in overrides for arg in ("-S", key)]
        _sh("dvc", "exp", "run", "--queue", "-n", name, *settings, "evaluate", cwd=repo)
    _sh("dvc", "queue", "start", "-j", "1", cwd=repo)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        status = _sh("dvc", "queue", "status", cwd=repo)
        if "Queued" not in status and "Running" not in status:
            break
        time.sleep(3)
    assert "Failed" not in status, status + _sh("dvc", "queue", "logs", "exp-lr", cwd=repo)
    shown = json.loads(_sh("dvc", "exp", "show", "--json", cwd=repo))
    names = {exp.get("name") for rev in shown for exp in (rev.get("experiments") or [])}
    assert set(EXPERIMENTS) <= names, names
    with sqlite3.connect(repo / "mlflow.db") as db:
        stages = [r[0] for r in db.execute("select value from tags where key='stage'")]
    assert stages.count("train") == 2 and stages.count("tune") == 1, stages
