"""Helpers of the integration tests: a tiny trained and packaged copy of the project, a real
`bentoml serve` of it on loopback (started and awaited by bench/live.py, which the benchmarks
share), and request bodies. The fixtures built on them are in conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from bench import live

from tests.repo import DEMO_CONTRACT, DEMO_PARAMS, ROOT, TINY, merge

MLOPS = str(Path(sys.executable).parent / "mlops")
BENTOML = str(Path(sys.executable).parent / "bentoml")


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
    evaluate = {"threshold": 0.15}
    small = merge(
        TINY, {"data": {"synthetic": {"n_rows": 3000}}, "serve": serve, "evaluate": evaluate}
    )
    raw = merge(merge(yaml.safe_load(DEMO_PARAMS.read_text()), small), overrides or {})
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    for stage in ("data", "features", "train", "evaluate", "package"):
        subprocess.run([MLOPS, "stage", stage], cwd=root, env=env, check=True)
    return root


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
        live.stop(self.proc, group=False)  # the server's own shutdown stops its workers


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
    """`bentoml serve target` on a free loopback port, its stdout and stderr to a file, started
    in ``root`` as a shell would (PWD too: a Bento's relative request log goes there)."""
    port = live.free_port()
    output = root / f"serve-{port}.log"
    cmd = [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port), *args]
    env = own_home(env, root, port) | {"PWD": str(root)}
    proc = live.launch(cmd, env=env, cwd=root, output=output)
    return Served(proc, f"http://127.0.0.1:{port}", output)


def wait_for_readyz(served: Served, status: int = 200) -> None:
    live.wait_until_ready(served.url, served.proc, status=status, log=served.log)


def serve(
    target: str, root: Path, env: dict[str, str], *args: str, status: int = 200
) -> Iterator[str]:
    served = start(target, root, env, *args)
    try:
        wait_for_readyz(served, status)
        yield served.url
    finally:
        served.stop()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", date_format="iso"))
