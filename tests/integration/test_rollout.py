"""Safe rollout with real models behind a real `bentoml serve` on loopback: shadow, canary and
A/B routing, a failing shadow model, a refused challenger, and `mlops compare` / `mlops promote
--challenger` deciding on a labelled request log written by the server."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from mlops_template.request_log import read_request_log
from mlops_template.serving.rollout.routing import bucket
from tests.integration.servers import MLOPS, records, serve, start

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
SERVICE = "mlops_template.serving.service:MlopsService"


@pytest.fixture(scope="module")
def models(
    project: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Tags of the packaged champion and of challengers stored beside it (challengers.py)."""
    root, env = project
    tags = {"champion": json.loads((root / "reports/package.json").read_text())["model_tag"]}
    for kind in ("forest", "strong", "weak", "broken", "narrow"):
        out = tmp_path_factory.mktemp(kind)
        done = subprocess.run(
            [sys.executable, str(HERE / "challengers.py"), str(root), kind, str(out)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        stored = json.loads(done.stdout.strip().splitlines()[-1])
        tags[kind] = stored["tag"]
        if stored["version"]:
            tags[f"{kind}-registry-version"] = str(stored["version"])
    return tags


def _params(root: Path, name: str, **serve: Any) -> tuple[Path, Path]:
    """A params file for one server: the project's, with ``serve`` overrides and its own log."""
    raw = yaml.safe_load((root / "params.yaml").read_text())
    log = root / f"logs/{name}.jsonl"
    raw["serve"] |= {"request_log": str(log)} | serve
    path = root / f"params-{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, log


def _serving(project: tuple[Path, dict[str, str]], params: Path, champion: str) -> Any:
    root, env = project
    env = env | {"MLOPS_PARAMS": str(params)}
    return serve(SERVICE, root, env, "--arg", f"model_tag={champion}")


def _logged(log: Path, rows: int) -> pd.DataFrame:
    """The request log once it holds ``rows`` rows (it is written on background threads)."""
    for _ in range(240):
        if log.exists():
            frame = read_request_log(log, roles=None)
            if len(frame) >= rows:
                return frame
        time.sleep(0.25)
    raise AssertionError(f"{log}: fewer than {rows} rows after 60 s")


def _batch(n: int, seed: int, first_id: int = 1) -> pd.DataFrame:
    """A labelled batch rich in fraud (so quality differences show), ids from ``first_id``."""
    from mlops_template.synthetic import generate_transactions

    frame = generate_transactions(n, fraud_rate=0.3, seed=seed)
    return frame.assign(transaction_id=range(first_id, first_id + n))


def _post(url: str, frame: pd.DataFrame, **headers: str) -> list[dict[str, Any]]:
    body = {"records": records(frame.drop(columns=["is_fraud"]))}
    resp = requests.post(f"{url}/predict", json=body, headers=headers, timeout=60)
    assert resp.status_code == 200, resp.text
    return list(resp.json())


def _answers(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["prediction"], r["probabilities"], r["model_version"]) for r in rows]


# --------------------------------------------------------------------------- shadow


@pytest.fixture(scope="module")
def shadow_run(
    project: tuple[Path, dict[str, str]], models: dict[str, str], server: str
) -> dict[str, Any]:
    """Champion = the trained model, shadow = one trained on shuffled labels; 4 requests."""
    root = project[0]
    params, log = _params(root, "shadow", strategy="shadow", challenger=models["weak"], workers=1)
    batch = _batch(2000, seed=11)
    parts = [batch.iloc[i : i + 500] for i in range(0, 2000, 500)]
    with_shadow, logged = [], pd.DataFrame()
    for url in _serving(project, params, models["champion"]):
        with_shadow = [row for part in parts for row in _post(url, part)]
        logged = _logged(log, 4000)  # before the server stops: the shadow runs after answering
    alone = [row for part in parts for row in _post(server, part)]
    labels = root / "labels-shadow.csv"
    batch[["transaction_id", "is_fraud"]].to_csv(labels, index=False)
    return {
        "params": params,
        "log": logged,
        "path": log,
        "labels": labels,
        "with_shadow": with_shadow,
        "alone": alone,
    }


def test_shadow_answers_exactly_as_the_champion_alone_and_logs_both(
    shadow_run: dict[str, Any], models: dict[str, str]
) -> None:
    assert _answers(shadow_run["with_shadow"]) == _answers(shadow_run["alone"])
    assert {r["role"] for r in shadow_run["with_shadow"]} == {"champion"}
    log = shadow_run["log"]
    by_role = log.groupby("role")["model_version"].agg(["size", "unique"])
    assert by_role.loc["champion", "size"] == by_role.loc["shadow", "size"] == 2000
    assert list(by_role.loc["shadow", "unique"]) == [models["weak"]]
    assert list(by_role.loc["champion", "unique"]) == [models["champion"]]
    assert log["latency_ms"].notna().all() and (log["latency_ms"] > 0).all()
    # the shadow rows are the same records, and the readers monitoring uses skip them
    champ, shadow = (
        log[log.role == r].sort_values("transaction_id") for r in ("champion", "shadow")
    )
    assert champ["transaction_id"].tolist() == shadow["transaction_id"].tolist()
    assert set(read_request_log(shadow_run["path"])["role"]) == {"champion"}


def _mlops(
    root: Path, params: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MLOPS, "--params", str(params), *args], cwd=root, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def promote_run(project: tuple[Path, dict[str, str]], models: dict[str, str]) -> dict[str, Any]:
    """A model trained on fraud-rich data shadows the shuffled-labels one, which serves."""
    root = project[0]
    params, log = _params(
        root, "promote", strategy="shadow", challenger=models["strong"], workers=1
    )
    batch = _batch(2000, seed=12)
    for url in _serving(project, params, models["weak"]):
        for i in range(0, 2000, 1000):
            _post(url, batch.iloc[i : i + 1000])
        _logged(log, 4000)
    labels = root / "labels-promote.parquet"
    batch[["transaction_id", "is_fraud"]].to_parquet(labels)
    return {"params": params, "labels": labels}


# the served run, `mlops compare`'s decision and exit status, the challenger's model, what
# `mlops promote --challenger` says (it follows the decision: same exit status)
DECISIONS = {
    "keeps the champion against a worse shadow": ("shadow_run", "keep", 5, "weak", "said keep"),
    "promotes a better challenger and moves the alias": (
        "promote_run",
        "promote",
        0,
        "strong",
        "champion -> version {strong-registry-version}",
    ),
}


@pytest.mark.parametrize("case", DECISIONS)
def test_compare_decides_and_promote_follows(
    case: str,
    project: tuple[Path, dict[str, str]],
    models: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    fixture, decision, code, challenger, said = DECISIONS[case]
    served = request.getfixturevalue(fixture)
    root, env = project
    done = _mlops(root, served["params"], env, "compare", "--labels", str(served["labels"]))
    assert done.returncode == code, done.stderr + done.stdout
    report = json.loads((root / "reports/rollout/compare.json").read_text())
    assert report["decision"] == decision
    assert report["challenger"]["version"] == models[challenger]
    assert report["between"]["paired_rows"] == 2000 and report["between"]["shadow_coverage"] == 1
    assert 0 <= report["between"]["agreement_rate"] <= 1
    roc = next(q for q in report["quality"] if q["metric"] == "roc_auc")
    worse = roc["challenger"] < roc["champion"] and roc["interval"][1] < 0
    assert worse == (decision == "keep"), roc
    shown = (root / "reports/rollout/compare.md").read_text()
    assert ("keep the champion" in shown) == (decision == "keep")
    promoted = _mlops(root, served["params"], env, "promote", "--challenger")
    assert promoted.returncode == code
    assert said.format_map(models) in promoted.stdout + promoted.stderr
    report = json.loads((root / "reports/rollout/compare.json").read_text())
    if decision == "promote":
        version = int(models["strong-registry-version"])
        assert report["promoted"]["registry_version"] == version
        assert not report["promoted"]["override"]
    else:
        assert "promoted" not in report


def test_a_challenger_that_raises_never_fails_a_shadowed_request(
    project: tuple[Path, dict[str, str]], models: dict[str, str]
) -> None:
    root = project[0]
    params, log = _params(root, "broken", strategy="shadow", challenger=models["broken"], workers=1)
    batch = _batch(50, seed=13)
    for url in _serving(project, params, models["champion"]):
        for i in range(50):
            rows = _post(url, batch.iloc[i : i + 1])
            assert rows[0]["model_version"] == models["champion"]
        failures = 0.0
        for _ in range(40):  # the shadow thread runs after the responses
            text = requests.get(f"{url}/metrics", timeout=5).text
            failures = sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("mlops_shadow_failures_total{") and 'reason="error"' in line
            )
            if failures >= 50:
                break
            time.sleep(0.25)
        assert failures == 50
        logged = _logged(log, 50)
    assert set(logged["role"]) == {"champion"} and len(logged) == 50


# --------------------------------------------------------------------------- canary / ab


def _binomial_interval(n: int, p: float, z: float = 3.29) -> tuple[float, float]:
    """99.9 % (two-sided) normal interval of a binomial count."""
    sd = math.sqrt(n * p * (1 - p))
    return n * p - z * sd, n * p + z * sd


def test_canary_routes_a_binomial_share_of_keys_and_each_key_always_the_same_way(
    project: tuple[Path, dict[str, str]], models: dict[str, str]
) -> None:
    root = project[0]
    params, log = _params(
        root,
        "canary",
        strategy="canary",
        challenger=models["forest"],
        challenger_share=0.2,
        workers=2,
    )
    batch = _batch(1000, seed=14)
    for url in _serving(project, params, models["champion"]):
        first = _post(url, batch)
        again = [row for i in range(0, 1000, 100) for row in _post(url, batch.iloc[i : i + 100])]
        logged = _logged(log, 2000)
    roles = [r["role"] for r in first]
    low, high = _binomial_interval(1000, 0.2)
    assert low <= roles.count("challenger") <= high, roles.count("challenger")
    assert [r["role"] for r in again] == roles  # sticky across requests and both workers
    expected = [bucket(i, models["forest"]) < 0.2 for i in batch["transaction_id"]]
    assert [role == "challenger" for role in roles] == expected
    version = {"champion": models["champion"], "challenger": models["forest"]}
    assert all(r["model_version"] == version[r["role"]] for r in first)
    assert set(logged["role"]) == {"champion", "challenger"}
    per_role = logged.groupby("role")["model_version"].unique()
    assert list(per_role["challenger"]) == [models["forest"]]


def test_ab_routes_by_a_header(
    project: tuple[Path, dict[str, str]], models: dict[str, str]
) -> None:
    root = project[0]
    params, _ = _params(
        root,
        "ab",
        strategy="ab",
        challenger=models["forest"],
        challenger_share=0.5,
        route_key="header:X-User-Id",
        workers=1,
    )
    row = _batch(1, seed=15)
    users = [f"user-{i}" for i in range(40)]
    for url in _serving(project, params, models["champion"]):
        seen = {
            u: {_post(url, row, **{"x-user-id": u})[0]["role"] for _ in range(2)} for u in users
        }
        anonymous = _post(url, row)[0]["role"]
    assert all(len(roles) == 1 for roles in seen.values())
    routed = {u: roles.pop() for u, roles in seen.items()}
    assert routed == {
        u: "challenger" if bucket(u, models["forest"]) < 0.5 else "champion" for u in users
    }
    assert set(routed.values()) == {"champion", "challenger"}
    assert anonymous == "champion"


def test_an_incompatible_challenger_is_refused_at_start(
    project: tuple[Path, dict[str, str]], models: dict[str, str]
) -> None:
    root, env = project
    params, _ = _params(root, "narrow", strategy="shadow", challenger=models["narrow"])
    served = start(
        SERVICE,
        root,
        env | {"MLOPS_PARAMS": str(params)},
        "--arg",
        f"model_tag={models['champion']}",
    )
    try:
        served.proc.wait(timeout=120)
    finally:
        if served.proc.poll() is None:
            served.stop()
    assert served.proc.returncode != 0
    out = served.log()
    assert f"serve.challenger {models['narrow']}: refused, input columns differ" in out, out[-2000:]
