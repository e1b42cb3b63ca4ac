"""What a client and an operator can rely on, against a real `bentoml serve`: SIGTERM drains
in-flight requests and writes out the request log; /metrics counts what the log lost; /readyz
says how old the model is; a model output that is not a number never reaches a client."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from tests.integration.servers import records, serve, start, wait_for_readyz

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "mlops_template.serving.service:MlopsService"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def row(project: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    test = pd.read_parquet(project[0] / "data/split/test.parquet").drop(columns=["is_fraud"])
    return dict(records(test.head(1))[0])


def _metric(url: str, name: str, **labels: str) -> float:
    """The sum over worker processes of one sample of /metrics (0 when absent)."""
    total = 0.0
    wanted = [f'{k}="{v}"' for k, v in labels.items()]
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith((f"{name} ", f"{name}{{")) and all(w in line for w in wanted):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _log_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


# ------------------------------------------------------------ SIGTERM


def test_sigterm_drains_in_flight_requests_and_writes_out_the_log(
    project: tuple[Path, dict[str, str]], row: dict[str, Any], tmp_path: Path
) -> None:
    """240 clients post at once to 2 workers; SIGTERM arrives after the first 20 answers.
    Every request gets a 200, the server exits 0, and the log holds exactly the rows answered
    (uvicorn alone reset 17 of 400 such requests here: the ones not yet read)."""
    root, env = project
    assert yaml.safe_load((root / "params.yaml").read_text())["serve"]["workers"] == 2
    log_path = tmp_path / "requests.jsonl"
    served = start(SERVICE, root, env | {"MLOPS_REQUEST_LOG": str(log_path)})
    wait_for_readyz(served)
    n, answered, after_sigterm = 240, threading.Semaphore(0), []
    go = threading.Barrier(n)
    sigterm_sent = threading.Event()

    def client(i: int) -> int:
        body = {"records": [row | {"transaction_id": 70_000_000 + i}]}
        go.wait()
        try:
            status = requests.post(f"{served.url}/predict", json=body, timeout=60).status_code
        except requests.RequestException as err:
            return -1 if "reset" in str(err).lower() else -2
        finally:
            answered.release()
        if sigterm_sent.is_set():
            after_sigterm.append(i)
        return status

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(client, i) for i in range(n)]
        for _ in range(20):
            answered.acquire()
        served.proc.send_signal(signal.SIGTERM)
        sigterm_sent.set()
        statuses = [f.result() for f in futures]
    assert served.proc.wait(timeout=60) == 0, served.log()[-3000:]
    assert statuses.count(200) == n, {s: statuses.count(s) for s in set(statuses)}
    assert len(after_sigterm) >= 50, len(after_sigterm)  # they were in flight at SIGTERM
    logged = sorted(r["record"]["transaction_id"] for r in _log_rows(log_path))
    assert logged == [70_000_000 + i for i in range(n)]


def test_readyz_says_draining_while_a_worker_drains(
    project: tuple[Path, dict[str, str]], row: dict[str, Any], tmp_path: Path
) -> None:
    """While requests keep coming after SIGTERM the worker serves them, /readyz answers 503
    (a load balancer takes it out) and responses close their connection."""
    root, env = project
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["serve"]["workers"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    one = env | {"MLOPS_PARAMS": str(tmp_path / "params.yaml")}
    served = start(SERVICE, root, one | {"MLOPS_REQUEST_LOG": str(tmp_path / "log.jsonl")})
    wait_for_readyz(served)
    stop = threading.Event()

    def keep_posting() -> None:
        while not stop.is_set():
            requests.post(f"{served.url}/predict", json={"records": [row]}, timeout=30)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(keep_posting)
        time.sleep(0.5)
        served.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        ready = requests.get(f"{served.url}/readyz", timeout=5)
        resp = requests.post(f"{served.url}/predict", json={"records": [row]}, timeout=30)
        stop.set()
    assert ready.status_code == 503 and ready.json()["status"] == "draining", ready.text
    assert resp.status_code == 200 and resp.headers["connection"] == "close"
    assert served.proc.wait(timeout=60) == 0


# ------------------------------------------------------------ /metrics and /readyz


def test_metrics_export_the_request_logs_dropped_and_error_counters(
    project: tuple[Path, dict[str, str]], server: str, row: dict[str, Any]
) -> None:
    """Both counters are on /metrics from the start (0 here); a log that cannot be written
    (its folder is a file) counts its failed writes while every request still gets a 200."""
    text = requests.get(f"{server}/metrics", timeout=5).text
    assert "mlops_request_log_dropped_total 0.0" in text
    assert "mlops_request_log_errors_total 0.0" in text
    root, env = project
    for url in serve(SERVICE, root, env | {"MLOPS_REQUEST_LOG": "/dev/null/requests.jsonl"}):
        for i in range(3):
            body = {"records": [row | {"transaction_id": 80_000_000 + i}]}
            assert requests.post(f"{url}/predict", json=body, timeout=30).status_code == 200
        for _ in range(40):
            if _metric(url, "mlops_request_log_errors_total") >= 1:
                break
            time.sleep(0.25)
        assert _metric(url, "mlops_request_log_errors_total") >= 1
        assert _metric(url, "mlops_request_log_dropped_total") == 0


def test_readyz_reports_the_models_age(server: str) -> None:
    from datetime import UTC, datetime

    ready = requests.get(f"{server}/readyz", timeout=5).json()
    trained = datetime.fromisoformat(ready["trained_at"])
    assert trained.tzinfo is not None and trained <= datetime.now(UTC)
    assert 0 <= ready["model_age_days"] < 1  # the session's model was trained minutes ago


# ------------------------------------------------------------ outputs that are not numbers


@pytest.fixture
def nan_store(project: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The served model in a store of its own, its model step wrapped so that some rows come
    out NaN (scikit-learn runtime: the ONNX file is dropped from the record). The wrapper is a
    test type: the server trusts it through a startup hook, as a project would list a type of
    its own in estimators.py."""
    import hashlib
    import shutil

    import skops.io as sio
    from sklearn.pipeline import Pipeline

    from mlops_template.model import read_pipeline
    from tests.integration.nan_model import NonFinite

    root, env = project
    tag = json.loads((root / "reports/package.json").read_text())["model_tag"]
    shutil.copytree(Path(env["BENTOML_HOME"]) / "models", tmp_path / "models")
    folder = tmp_path / "models" / tag.replace(":", "/")
    model = read_pipeline(folder / "model.skops")
    wrapped = Pipeline([model.steps[0], ("model", NonFinite(model.steps[-1][1]))])
    sio.dump(wrapped, folder / "model.skops")
    info = yaml.safe_load((folder / "model.yaml").read_text())
    digest = hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest()
    info["metadata"]["model_sha256"] = digest
    info["metadata"].pop("onnx_sha256", None)
    (folder / "model.yaml").write_text(yaml.safe_dump(info))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "from mlops_template import estimators\n"
        "estimators.PIPELINE_TYPES += ('tests.integration.nan_model.NonFinite',)\n"
    )
    yield env | {"BENTOML_HOME": str(tmp_path), "PYTHONPATH": f"{hook}:{ROOT}"}


def test_non_finite_model_output_is_a_500_naming_it_never_a_200(
    project: tuple[Path, dict[str, str]],
    nan_store: dict[str, str],
    row: dict[str, Any],
    tmp_path: Path,
) -> None:
    from tests.integration.nan_model import POISON_AMOUNT

    log_path = tmp_path / "requests.jsonl"
    env = nan_store | {"MLOPS_REQUEST_LOG": str(log_path)}
    for url in serve(SERVICE, project[0], env):
        good = requests.post(f"{url}/predict", json={"records": [row]}, timeout=30)
        assert good.status_code == 200, good.text
        poisoned = [
            row | {"transaction_id": 1},
            row | {"transaction_id": 2, "amount": POISON_AMOUNT},
        ]
        resp = requests.post(f"{url}/predict", json={"records": poisoned}, timeout=30)
        assert resp.status_code == 500, resp.text
        assert resp.json()["detail"][0]["type"] == "non_finite_output"
        assert "NaN or infinity for 1 of 2 rows" in resp.json()["error"], resp.text
        # adaptive batching: BentoML's own 500 body (it hides the text); the server log has it
        resp = requests.post(f"{url}/predict_batched", json={"records": poisoned}, timeout=30)
        assert resp.status_code == 500 and "nan" not in resp.text.lower(), resp.text
        reason = {"reason": "non_finite_output"}
        for _ in range(20):  # two workers: counters are summed on scrape
            if _metric(url, "mlops_failed_predictions_total", **reason) >= 2:
                break
            time.sleep(0.25)
        assert _metric(url, "mlops_failed_predictions_total", **reason) == 2
    logged = [r["record"]["transaction_id"] for r in _log_rows(log_path)]
    assert logged == [row["transaction_id"]]  # the answered row only


# ------------------------------------------------------------ fuzzing beyond the OpenAPI document


@pytest.fixture(scope="module")
def fuzz_server(
    project: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One worker with the refusal throttle opened wide (hundreds of 415s in a row)."""
    root, env = project
    folder = tmp_path_factory.mktemp("fuzz")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["serve"] |= {"workers": 1, "refusals_per_second": 10_000}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    env = env | {"MLOPS_PARAMS": str(folder / "params.yaml")}
    yield from serve(SERVICE, root, env | {"MLOPS_REQUEST_LOG": str(folder / "log.jsonl")})


def _integer_fields(url: str) -> list[str]:
    doc = requests.get(f"{url}/docs.json", timeout=5).json()
    props = doc["components"]["schemas"]["Record"]["properties"]
    return sorted(
        name
        for name, spec in props.items()
        if "integer" in {s.get("type") for s in spec.get("anyOf", [spec])}
    )


def _fuzz(url: str, examples: int, check: Any) -> list[int]:
    """Run ``check(case, data)`` on ``examples`` valid bodies schemathesis generates from the
    service's OpenAPI document (``data``: hypothesis' draw for the mutation)."""
    import schemathesis
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    operation = schemathesis.openapi.from_url(f"{url}/docs.json")["/predict"]["POST"]
    statuses: list[int] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE), data=st.data())
    def fuzz(case: Any, data: Any) -> None:
        assume(isinstance(case.body, dict) and case.body.get("records"))
        statuses.append(check(case, data))

    fuzz()
    return statuses


BIG = (2**63, 2**64, 10**30, 2**512)


def test_schemathesis_big_integers_get_400_naming_the_field(fuzz_server: str) -> None:
    """Any integer field of any record set to an integer at or beyond 2^63, or below -2^63
    (JSON has no limit; the model's columns are int64): a 400 naming it, never a 5xx."""
    from hypothesis import strategies as st

    fields = _integer_fields(fuzz_server)
    assert len(fields) >= 2, fields
    big = st.integers(min_value=2**63, max_value=2**520) | st.sampled_from(BIG)

    def check(case: Any, data: Any) -> int:
        # one generated record (its other fields may be invalid too: at most 11 errors, all
        # listed, so the big integer's is among them)
        record = data.draw(st.sampled_from(case.body["records"]))
        field = data.draw(st.sampled_from(fields))
        value = data.draw(big)
        record[field] = value if data.draw(st.booleans()) else -value - 1
        body = json.dumps({"records": [record]}).encode()
        resp = requests.post(
            f"{fuzz_server}/predict",
            data=body,
            headers={"content-type": "application/json"},
            timeout=30,
        )
        assert resp.status_code == 400, (field, resp.status_code, resp.text[:500])
        assert field in resp.text, resp.text[:500]
        return resp.status_code

    assert len(_fuzz(fuzz_server, 120, check)) >= 100
    assert requests.get(f"{fuzz_server}/readyz", timeout=5).status_code == 200


def test_schemathesis_non_json_content_types_get_415(fuzz_server: str) -> None:
    """Valid bodies sent as anything but JSON (listed types, random type/subtype pairs, with
    parameters) on both predict endpoints: 415, never a 2xx or a 5xx."""
    from hypothesis import strategies as st

    listed = [
        "text/plain",
        "text/csv",
        "application/xml",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "application/x-ndjson",
        "application/jsonl",
        "application/json-patch",
    ]
    random_type = st.from_regex(
        r"[a-z]{1,12}/[a-z0-9.-]{1,20}(; ?charset=[a-z0-9-]{1,10})?", fullmatch=True
    )
    media = (st.sampled_from(listed) | random_type).filter(
        lambda t: t.split(";")[0] != "application/json" and not t.split(";")[0].endswith("+json")
    )

    def check(case: Any, data: Any) -> int:
        endpoint = data.draw(st.sampled_from(["/predict", "/predict_batched"]))
        ctype = data.draw(media)
        resp = requests.post(
            f"{fuzz_server}{endpoint}",
            data=json.dumps(case.body).encode(),
            headers={"content-type": ctype},
            timeout=30,
        )
        assert resp.status_code == 415, (ctype, resp.status_code, resp.text[:500])
        return resp.status_code

    assert len(_fuzz(fuzz_server, 120, check)) >= 100
    assert requests.get(f"{fuzz_server}/readyz", timeout=5).status_code == 200


# ------------------------------------------------------------ the latency gate


def test_latency_gate_measures_the_packaged_model(project: tuple[Path, dict[str, str]]) -> None:
    """`make latency-gate` in a packaged project: the served path timed in process as a ratio
    to the reference workload, written to reports/latency.json (no baseline yet: passes)."""
    import subprocess
    import sys

    root, env = project
    done = subprocess.run(
        [sys.executable, "-m", "mlops_template.serving.latency", "--calls", "100"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "no baseline latency recorded: passes" in done.stdout
    written = json.loads((root / "reports/latency.json").read_text())
    package = json.loads((root / "reports/package.json").read_text())
    assert written["runtime"] == package["runtime"]["runtime"]
    assert written["serve_1row_p50_us"] > 0 and written["reference_p50_us"] > 0
    assert written["serve_1row_ratio"] == pytest.approx(
        written["serve_1row_p50_us"] / written["reference_p50_us"], rel=1e-3
    )


# ------------------------------------------------------------ no pipeline file read with ONNX


def test_onnx_serving_reads_no_pipeline_file(
    project: tuple[Path, dict[str, str]], server: str, row: dict[str, Any], tmp_path: Path
) -> None:
    """With the ONNX graph and the feature recipe in the stored model's metadata, the service
    never reads the pipeline file (skops.io.load, nor joblib.load): a hook that records and
    refuses every such call changes no answer."""
    root, env = project
    hook = tmp_path / "hook"
    hook.mkdir()
    called, loaded = tmp_path / "model-load-called", tmp_path / "hook-loaded"
    (hook / "sitecustomize.py").write_text(
        "import pathlib, joblib, skops.io\n"
        f"pathlib.Path({str(loaded)!r}).touch()\n"
        "def _refuse(*args, **kwargs):\n"
        f"    pathlib.Path({str(called)!r}).touch()\n"
        "    raise RuntimeError('a model file was read')\n"
        "joblib.load = skops.io.load = _refuse\n"
    )
    hooked = env | {"PYTHONPATH": f"{hook}:{env.get('PYTHONPATH', ROOT)}"}
    expected = requests.post(f"{server}/predict", json={"records": [row]}, timeout=10).json()
    bare = requests.post(f"{server}/predict", json=[row], timeout=10)
    assert bare.status_code == 400, bare.text
    served = start(SERVICE, root, hooked)
    try:
        wait_for_readyz(served)
        ready = requests.get(f"{served.url}/readyz", timeout=5).json()
        answer = requests.post(f"{served.url}/predict", json={"records": [row]}, timeout=10)
    finally:
        served.stop()
    assert loaded.exists(), "the hook was not in effect"
    assert not called.exists(), served.log()[-2000:]
    assert ready["runtime"] == "onnx", ready
    assert answer.status_code == 200, answer.text
    assert answer.json() == expected
