"""Fixtures shared by the integration tests: a tiny trained and packaged copy of the project,
and a real `bentoml serve` of it on loopback."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from tests.repo import DEMO_CONTRACT, DEMO_PARAMS, ROOT, TINY, merge

MLOPS = str(Path(sys.executable).parent / "mlops")
BENTOML = str(Path(sys.executable).parent / "bentoml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_project(
    root: Path,
    env: dict[str, str],
    overrides: dict[str, Any] | None = None,
    contract: dict[str, Any] | None = None,
) -> Path:
    """A copy of the project in ``root`` (3000 rows, 20 iterations, ``overrides``; the demo's
    contract or ``contract``) trained and packaged with ``env`` (its BENTOML_HOME is the store)."""
    shutil.copy(ROOT / "bentofile.yaml", root / "bentofile.yaml")
    if contract is None:
        shutil.copy(DEMO_CONTRACT, root / "contract.yaml")
    else:
        (root / "contract.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    shutil.copytree(ROOT / "src", root / "src")
    serve = {
        "request_log": "logs/requests.jsonl",  # SQLite: tests/unit/test_request_log.py
        "workers": 2,  # two processes append to the same log
    }
    # a decision threshold other than 0.5: served labels must still equal evaluate's
    evaluate = {"threshold": 0.3}
    small = merge(
        TINY, {"data": {"synthetic": {"n_rows": 3000}}, "serve": serve, "evaluate": evaluate}
    )
    raw = merge(merge(yaml.safe_load(DEMO_PARAMS.read_text()), small), overrides or {})
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for stage in ("data", "features", "train", "evaluate", "package"):
        subprocess.run([MLOPS, "stage", stage], cwd=root, env=env, check=True)
    return root


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the project with a 3000-row, 20-iteration model, packaged into a Bento."""
    root = tmp_path_factory.mktemp("project")
    env = project_env(root)
    return make_project(root, env), env


def project_env(root: Path) -> dict[str, str]:
    """The environment of a project copy: its own BentoML store and MLflow SQLite store."""
    return os.environ | {
        "BENTOML_HOME": str(root / "bentoml"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
    }


@dataclass
class Served:
    """A running (or exited) `bentoml serve`: its process, URL and output file."""

    proc: subprocess.Popen[bytes]
    url: str
    output: Path

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def own_home(env: dict[str, str], root: Path, port: int) -> dict[str, str]:
    """``env`` with a BentoML home of one server's own that shares the store's models and
    Bentos: BentoML empties <home>/prometheus_multiproc_dir whenever a server starts, so
    servers sharing a home (tests of one xdist worker) would reset each other's /metrics."""
    if "BENTOML_HOME" not in env:
        return env
    shared, own = Path(env["BENTOML_HOME"]), root / f"bentoml-serve-{port}"
    own.mkdir()
    for sub in ("models", "bentos"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (own / sub).symlink_to(shared / sub, target_is_directory=True)
    return env | {"BENTOML_HOME": str(own)}


def start(target: str, root: Path, env: dict[str, str], *args: str) -> Served:
    """`bentoml serve target` on a free loopback port, its stdout and stderr to a file (never
    a pipe nobody reads, which would block the server once full), started in ``root`` as a
    shell would (PWD too: a Bento's relative request log goes there)."""
    port = _free_port()
    output = root / f"serve-{port}.log"
    with open(output, "wb") as out:
        proc = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port), *args],
            cwd=root,
            env=own_home(env, root, port) | {"PWD": str(root)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Served(proc, f"http://127.0.0.1:{port}", output)


def wait_for_readyz(served: Served, status: int = 200) -> None:
    for _ in range(240):
        try:
            if requests.get(f"{served.url}/readyz", timeout=1).status_code == status:
                return
        except requests.RequestException:
            pass
        assert served.proc.poll() is None, f"bentoml serve exited: {served.log()[-2000:]}"
        time.sleep(0.25)
    raise AssertionError(f"bentoml serve: /readyz not {status} after 60 s")


def serve(
    target: str, root: Path, env: dict[str, str], *args: str, status: int = 200
) -> Iterator[str]:
    served = start(target, root, env, *args)
    try:
        wait_for_readyz(served, status)
        yield served.url
    finally:
        served.stop()


@pytest.fixture(scope="session")
def server(project: tuple[Path, dict[str, str]]) -> Iterator[str]:
    root, env = project
    yield from serve("mlops_template.serving.service:MlopsService", root, env)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))
