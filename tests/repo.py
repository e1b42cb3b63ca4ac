"""A throw-away copy of this repository for integration tests: a real git repo, real DVC.

``make_repo(tmp_path, overrides)`` copies the tracked files (not data, models or the MLflow
store), shrinks params.yaml with ``overrides`` and commits, so `dvc repro` runs for real in
seconds. ``run(...)`` runs a command there with telemetry off and our venv first on PATH.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from mlops_template import paths

ROOT = Path(__file__).resolve().parents[1]
# The built-in demo's params and contract: the tests run on these, never on the project's own
# params.yaml / contract.yaml, which `mlops init` rewrites for the user's data.
DEMO = ROOT / "examples/card-transactions"
DEMO_PARAMS = DEMO / "params.yaml"
DEMO_CONTRACT = DEMO / "contract.yaml"
# telemetry off: the one list, also exported by the Makefile
TELEMETRY = paths.telemetry_defaults(ROOT / paths.TELEMETRY_ENV)

# Small enough for seconds per stage, big enough for a meaningful model.
TINY: dict[str, Any] = {
    "data": {"synthetic": {"n_rows": 2000}},
    # 20 iterations on ~2k rows: early stopping's 10 % hold-out would stop them at noise
    "train": {
        "cv": {"folds": 2},
        "hist_gradient_boosting": {"max_iter": 20, "early_stopping": False},
    },
    "evaluate": {"importance_rows": 300, "importance_repeats": 1},
}
_SKIP_TOP = {".venv", ".tools", ".git", "data", "models", "reports", "mlflow.db", "bench"}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e.update(TELEMETRY)
    e.update(
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
    )
    e.pop("MLFLOW_TRACKING_URI", None)
    e.pop("DVC_ROOT", None)
    return e


def run(
    cwd: Path, *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    # Each temporary repo has its own BentoML store, never the user's ~/bentoml.
    run_env = env() | {"BENTOML_HOME": str(cwd / ".bentoml")}
    proc = subprocess.run(
        list(args), cwd=cwd, env=run_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        command = " ".join(args)
        raise AssertionError(
            f"{command} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


def write_params(repo: Path, overrides: dict[str, Any]) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    (repo / "params.yaml").write_text(yaml.safe_dump(merge(params, overrides), sort_keys=False))


def working_files(root: Path = ROOT) -> list[str]:
    """Tracked and new (not ignored) files of ``root``'s working tree, relative to it."""
    return subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()


def project_files() -> list[Path]:
    """Tracked and new (not ignored) files of the working tree, minus pipeline outputs."""
    return [
        Path(p) for p in working_files() if Path(p).parts[0] not in _SKIP_TOP and p != "dvc.lock"
    ]


def make_repo(dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the project (sources, not outputs) into ``dest``, shrink params, git commit."""
    for rel in project_files():
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    shutil.copy2(DEMO_PARAMS, dest / "params.yaml")
    shutil.copy2(DEMO_CONTRACT, dest / "contract.yaml")
    write_params(dest, merge(TINY, overrides or {}))
    run(dest, "git", "init", "-q", "-b", "main")
    run(dest, "git", "add", "-A")
    run(dest, "git", "commit", "-qm", "template copy")
    return dest
