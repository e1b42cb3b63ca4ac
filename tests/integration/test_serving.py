"""Real `bentoml serve` on loopback against a tiny model trained by the real stages."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
import yaml

from tests.integration.conftest import MLOPS, records, serve

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def test_split(project: tuple[Path, dict[str, str]]) -> pd.DataFrame:
    return pd.read_parquet(project[0] / "data/split/test.parquet").drop(columns=["is_fraud"])


def test_served_labels_follow_the_models_threshold_as_evaluate_does(
    project: tuple[Path, dict[str, str]], server: str, test_split: pd.DataFrame
) -> None:
    """evaluate.threshold 0.3 is stored with the model: the service labels with it, exactly as
    the evaluate stage did, also on rows whose P(fraud) lies between 0.3 and 0.5."""
    from mlops_template.synthetic import generate_transactions

    meta = json.loads((project[0] / "models/model.json").read_text())
    assert meta["threshold"] == 0.3
    offline = pd.read_parquet(project[0] / "data/predictions/test.parquet")
    resp = requests.post(f"{server}/predict", json={"records": records(test_split)}, timeout=60)
    assert [r["prediction"] for r in resp.json()] == offline["prediction"].tolist()

    risky = generate_transactions(1000, fraud_rate=0.3, seed=5).drop(columns=["is_fraud"])
    rows = requests.post(f"{server}/predict", json={"records": records(risky)}, timeout=60).json()
    p = np.array([r["probabilities"]["1"] for r in rows])
    labels = np.array([r["prediction"] for r in rows])
    between = (p >= 0.3) & (p < 0.5)
    assert between.sum() >= 5, "no row tells a 0.3 threshold from argmax"
    assert (labels[between] == 1).all() and (labels[p < 0.3] == 0).all()


@pytest.mark.parametrize("endpoint", ["/predict", "/predict_batched"])
def test_served_predictions_equal_offline_on_whole_test_split(
    project: tuple[Path, dict[str, str]], server: str, test_split: pd.DataFrame, endpoint: str
) -> None:
    """Exact for scikit-learn; within 1e-6 when `package` chose onnxruntime (its gate)."""
    import joblib

    model = joblib.load(project[0] / "models/model.joblib")
    offline = model.predict_proba(test_split)[:, 1]
    resp = requests.post(f"{server}{endpoint}", json={"records": records(test_split)}, timeout=60)
    assert resp.status_code == 200, resp.text
    served = np.array([r["probabilities"]["1"] for r in resp.json()])
    package = json.loads((project[0] / "reports/package.json").read_text())
    atol = 1e-6 if package["runtime"]["runtime"] == "onnx" else 1e-12
    np.testing.assert_allclose(served, offline, rtol=0, atol=atol)
    assert {r["model_version"] for r in resp.json()} == {package["model_tag"]}


def test_bentoml_client(server: str, test_split: pd.DataFrame) -> None:
    import bentoml

    with bentoml.SyncHTTPClient(server) as client:
        out = client.predict(records=records(test_split.head(3)))
    assert len(out) == 3 and {"prediction", "probabilities", "model_version"} <= set(out[0])


def _good(test_split: pd.DataFrame) -> dict[str, Any]:
    return dict(records(test_split.head(1))[0])


BAD = [
    ("missing", lambda r: r.pop("amount") and [r], "amount"),
    ("extra", lambda r: [r | {"colour": "red"}], "colour"),
    ("wrong type", lambda r: [r | {"txn_count_24h": "many"}], "txn_count_24h"),
    ("out of range", lambda r: [r | {"amount": -5.0}], "amount"),
    ("unknown category", lambda r: [r | {"channel": "carrier_pigeon"}], "channel"),
    ("empty list", lambda r: [], "records"),
    ("too many rows", lambda r: [r] * 1001, "records"),
]


@pytest.mark.parametrize("endpoint", ["/predict", "/predict_batched"])
@pytest.mark.parametrize(("case", "make", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_request_names_field(
    server: str, test_split: pd.DataFrame, case: str, make: Any, field: str, endpoint: str
) -> None:
    body = {"records": make(_good(test_split))}
    resp = requests.post(f"{server}{endpoint}", json=body, timeout=30)
    assert resp.status_code == 400, (case, resp.status_code, resp.text)
    assert field in resp.text
    detail = resp.json()["detail"][0]
    assert field in [str(x) for x in detail["loc"]] and detail["msg"], detail
    assert requests.get(f"{server}/readyz", timeout=5).status_code == 200


def _rejected(server: str) -> dict[str, float]:
    text = requests.get(f"{server}/metrics", timeout=5).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("mlops_rejected_requests_total{"):
            reason = line.split('reason="', 1)[1].split('"', 1)[0]
            out[reason] = out.get(reason, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda r: [r | {"txn_count_24h": "many"}], "int_parsing"),
        (lambda r: [r | {"colour": "red"}], "extra_forbidden"),
        (lambda r: [], "empty"),
    ],
    ids=["wrong type", "extra field", "empty list"],
)
def test_rejections_counted_by_reason(
    server: str, test_split: pd.DataFrame, make: Any, reason: str
) -> None:
    """Parse-level 400s (raised by BentoML/pydantic before our code runs) are counted too."""
    before = _rejected(server).get(reason, 0.0)
    resp = requests.post(f"{server}/predict", json={"records": make(_good(test_split))}, timeout=30)
    assert resp.status_code == 400
    for _ in range(20):  # two worker processes: the counter is aggregated on scrape
        if _rejected(server).get(reason, 0.0) >= before + 1:
            break
        time.sleep(0.25)
    assert _rejected(server).get(reason, 0.0) >= before + 1, _rejected(server)


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_non_finite_rejected(server: str, test_split: pd.DataFrame, value: str) -> None:
    body = json.dumps({"records": [_good(test_split) | {"amount": math.nan}]}).replace("NaN", value)
    resp = requests.post(
        f"{server}/predict", data=body, headers={"content-type": "application/json"}, timeout=30
    )
    assert resp.status_code == 400, resp.text
    assert "amount" in resp.text


@pytest.mark.parametrize(
    ("body", "ctype"), [('{"records": [', "application/json"), ("hello", "text/plain")]
)
def test_malformed_or_wrong_content_type(server: str, body: str, ctype: str) -> None:
    resp = requests.post(
        f"{server}/predict", data=body, headers={"content-type": ctype}, timeout=30
    )
    assert 400 <= resp.status_code < 500, resp.text
    assert requests.get(f"{server}/readyz", timeout=5).status_code == 200


def test_request_log_and_metrics(
    project: tuple[Path, dict[str, str]], server: str, test_split: pd.DataFrame
) -> None:
    from mlops_template.request_log import read_request_log

    requests.post(f"{server}/predict", json={"records": records(test_split.head(4))}, timeout=30)
    time.sleep(1.0)
    log = read_request_log(project[0] / "logs/requests.jsonl")
    assert len(log) >= 4
    assert {"amount", "prediction", "proba_1", "model_version", "request_id", "logged_at"} <= set(
        log.columns
    )
    assert str(log["logged_at"].dt.tz) == "UTC"
    metrics = requests.get(f"{server}/metrics", timeout=5)
    assert metrics.status_code == 200 and "bentoml" in metrics.text
    assert "mlops_predictions" in metrics.text
    assert requests.get(f"{server}/livez", timeout=5).status_code == 200


def test_built_bento_contents_and_serves(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    tag = json.loads((root / "reports/package.json").read_text())["bento_tag"]
    name, version = tag.split(":")
    bento = root / "bentoml" / "bentos" / name / version
    assert (bento / "env/docker/Dockerfile").is_file()
    assert (bento / "src/contract.yaml").is_file()
    bento_yaml = yaml.safe_load((bento / "bento.yaml").read_text())
    model_tag = json.loads((root / "reports/package.json").read_text())["model_tag"]
    assert model_tag in [m["tag"] for s in bento_yaml["services"] for m in s["models"]]
    dockerfile = (bento / "env/docker/Dockerfile").read_text()
    assert "bentoml" in dockerfile.lower()
    reqs = (bento / "env/python/requirements.txt").read_text().lower()
    assert "dvc" not in reqs and "mlflow" not in reqs
    for url in serve(tag, root, env):
        assert requests.get(f"{url}/readyz", timeout=5).status_code == 200


def test_schemathesis_fuzz_no_5xx(server: str) -> None:
    """>= 300 requests generated from the service's own OpenAPI document: never a 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{server}/docs.json")
    operation = schema["/predict"]["POST"]
    statuses: list[int] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=160,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case: Any) -> None:
            response = case.call(base_url=server, timeout=30)
            statuses.append(response.status_code)
            assert response.status_code < 500, (case.body, response.text)

        fuzz()
    assert len(statuses) >= 300, len(statuses)
    assert requests.get(f"{server}/readyz", timeout=5).status_code == 200


def test_batch_score_chunks_and_rejects(project: tuple[Path, dict[str, str]]) -> None:
    root, env = project
    frame = pd.read_parquet(root / "data/split/test.parquet").drop(columns=["is_fraud"])
    frame.loc[frame.index[3], "amount"] = -1.0
    frame.loc[frame.index[10], "channel"] = "carrier_pigeon"
    frame.to_csv(root / "batch.csv", index=False)
    subprocess.run(
        [MLOPS, "score", "batch.csv", "--output", "out.parquet", "--chunk-size", "128"],
        cwd=root,
        env=env,
        check=True,
    )
    out = pd.read_parquet(root / "out.parquet")
    rejected = pd.read_csv(root / "out.rejected.csv")
    assert len(out) + len(rejected) == len(frame)
    assert len(rejected) == 2
    assert rejected["reason"].str.contains("amount").any()
    assert rejected["reason"].str.contains("channel").any()
    assert {"prediction", "proba_1"} <= set(out.columns)


def test_concurrent_requests_never_corrupt_the_log(
    project: tuple[Path, dict[str, str]], server: str, test_split: pd.DataFrame
) -> None:
    """8 threads x 20 requests (both endpoints, two worker processes): every row is logged
    exactly once and every line parses."""
    from concurrent.futures import ThreadPoolExecutor

    from mlops_template.request_log import read_request_log

    base = records(test_split.head(3))
    path = project[0] / "logs/requests.jsonl"

    def client(thread: int) -> list[int]:
        sent = []
        with requests.Session() as session:
            for i in range(20):
                rows = [
                    r | {"transaction_id": 10_000_000 + thread * 1000 + i * 10 + k}
                    for k, r in enumerate(base[: 1 + i % 3])
                ]
                endpoint = "/predict" if i % 2 else "/predict_batched"
                resp = session.post(f"{server}{endpoint}", json={"records": rows}, timeout=60)
                assert resp.status_code == 200, resp.text
                sent += [r["transaction_id"] for r in rows]
        return sent

    with ThreadPoolExecutor(8) as pool:
        sent = [i for ids in pool.map(client, range(8)) for i in ids]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        log = read_request_log(path)  # raises if a line is torn (orjson parses every line)
        if set(sent) <= set(log["transaction_id"]):
            break
        time.sleep(0.5)
    logged = log[log["transaction_id"].isin(sent)]
    assert sorted(logged["transaction_id"]) == sorted(sent)
    assert logged["proba_1"].between(0, 1).all()
    lines = path.read_bytes().splitlines()
    assert all(json.loads(line)["record"] for line in lines)


def test_release_smoke_test_script_against_bentomlserve(server: str) -> None:
    """.ci/smoke-test.sh (main.yml's `make smoke-test`; there against the container) with
    SMOKE_URL: /readyz, .ci/predict-example.json answered, a bad record refused with 400."""
    done = subprocess.run(
        [str(ROOT / ".ci/smoke-test.sh")],
        env=os.environ | {"SMOKE_URL": server},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"smoke-test: {server} is ready, /predict answered, a bad request got 400" in done.stdout
