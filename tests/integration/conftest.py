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


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the project with a 3000-row, 20-iteration model, packaged into a Bento."""
    root = tmp_path_factory.mktemp("project")
    shutil.copy(ROOT / "bentofile.yaml", root / "bentofile.yaml")
    shutil.copy(DEMO_CONTRACT, root / "contract.yaml")
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
    raw = merge(yaml.safe_load(DEMO_PARAMS.read_text()), small)
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    env = os.environ | {
        "BENTOML_HOME": str(root / "bentoml"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "OMP_NUM_THREADS": "1",
    }
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for stage in ("data", "features", "train", "evaluate", "package"):
        subprocess.run([MLOPS, "stage", stage], cwd=root, env=env, check=True)
    return root, env


def serve(target: str, root: Path, env: dict[str, str]) -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, "bentoml serve exited"
            time.sleep(0.5)
        else:
            raise AssertionError("bentoml serve not ready after 60 s")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def server(project: tuple[Path, dict[str, str]]) -> Iterator[str]:
    root, env = project
    yield from serve("mlops_template.service:MlopsService", root, env)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))
