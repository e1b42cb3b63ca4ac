"""MLflow tracking: where the store is, and what every run is tagged with.

Default store: ``sqlite:///<repo>/mlflow.db`` (gitignored, never a DVC output).
``MLFLOW_TRACKING_URI`` points it at a shared server instead. A store that cannot be
written fails the stage with :class:`TrackingError`: a run is never dropped silently.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from mlops_template import paths
from mlops_template.errors import TrackingError

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{paths.tracking_root() / 'mlflow.db'}"


def default_artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store go beside its database file (<repo>/mlartifacts by default),
    not into the working directory, which is a temporary copy under `dvc exp run --temp`.
    A tracking server decides itself. (Decided from the URI, not the environment: MLflow 3's
    set_tracking_uri writes MLFLOW_TRACKING_URI into os.environ.)"""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.resolve().parent / "mlartifacts").as_uri()


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def data_hash(lock_path: Path = paths.DVC_LOCK, stage: str = "data") -> str:
    """One hash of the `data` stage's outputs as recorded in dvc.lock ("unknown" before)."""
    try:
        lock = yaml.safe_load(lock_path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "unknown"
    outs = lock.get("stages", {}).get(stage, {}).get("outs", [])
    parts = [f"{o.get('path')}:{o.get('md5')}" for o in outs if o.get("md5")]
    if not parts:
        return "unknown"
    return hashlib.md5("\n".join(sorted(parts)).encode()).hexdigest()


def connect(experiment: str) -> Any:
    """Point MLflow at the store and experiment; fail clearly if it cannot be written."""
    import mlflow

    uri = tracking_uri()
    try:
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment, artifact_location=default_artifact_location(uri))
        mlflow.set_experiment(experiment)
    except Exception as err:
        raise TrackingError(
            f"MLflow store {uri!r} cannot be used ({type(err).__name__}: {err}); "
            "fix the path or server, or set MLFLOW_TRACKING_URI"
        ) from None
    return mlflow


def run_tags() -> dict[str, str]:
    """Lineage, and who runs it: a run left RUNNING by a dead process can be told apart."""
    owner = {"mlops.host": socket.gethostname(), "mlops.pid": str(os.getpid())}
    return {"git_commit": git_commit(), "data_hash": data_hash()} | owner


def start_run(mlflow: Any, tags: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """``mlflow.start_run`` with :func:`run_tags` (and ``tags``) written as the run is created,
    in the same store call: a process killed right after the run opens still leaves a run that
    :func:`reap_orphans` can tell apart (tags set afterwards left such runs RUNNING for ever)."""
    return mlflow.start_run(tags=run_tags() | (tags or {}), **kwargs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def reap_orphans(mlflow: Any, experiment_name: str) -> list[str]:
    """Mark KILLED the runs of the current experiment still RUNNING although the process on
    this host that opened them is gone (kill -9, a lost machine): they never finish."""
    experiment = mlflow.get_experiment_by_name(experiment_name)
    host = socket.gethostname()
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`mlops.host` = '{host}'",
        output_format="list",
    )
    reaped = []
    for run in runs:
        pid = run.data.tags.get("mlops.pid", "")
        if pid.isdigit() and not _alive(int(pid)):
            mlflow.MlflowClient().set_terminated(run.info.run_id, "KILLED")
            reaped.append(run.info.run_id)
    if reaped:
        log.warning("marked %d run(s) of dead processes KILLED: %s", len(reaped), reaped)
    return reaped


def guarded(action: str) -> Any:
    """Context manager turning any MLflow failure into a TrackingError naming ``action``."""
    from contextlib import contextmanager

    @contextmanager
    def _guard() -> Any:
        try:
            yield
        except TrackingError:
            raise
        except Exception as err:
            raise TrackingError(
                f"MLflow could not {action} at {tracking_uri()!r}: {type(err).__name__}: {err}"
            ) from None

    return _guard()
