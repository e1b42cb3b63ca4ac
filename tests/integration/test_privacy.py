"""Personal data end to end: a contract with `pii: true` columns, a real `bentoml serve`, its
request log, the monitoring reference and a monitoring run; none holds the raw values."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import yaml

from mlops_template import cli
from mlops_template.request_log import read_request_log
from tests.integration.servers import MLOPS, make_project, project_env, records, serve
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS

pytestmark = pytest.mark.integration
PII = ["transaction_id", "country"]  # the id (a customer's account, say) and a country
FIRST_ID = 987_654_321  # ids no other number in the files can be mistaken for


def _contract() -> dict[str, Any]:
    raw = yaml.safe_load(DEMO_CONTRACT.read_text())
    for column in PII:
        raw["columns"][column]["pii"] = True
    return raw


@pytest.fixture(scope="module")
def private(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("private")
    env = project_env(root)
    drop = yaml.safe_load(DEMO_PARAMS.read_text())["features"]["drop"] + ["country"]
    overrides = {"features": {"drop": drop}, "serve": {"request_log": "logs/requests.db"}}
    return make_project(root, env, overrides, contract=_contract()), env


@pytest.fixture(scope="module")
def server(private: tuple[Path, dict[str, str]]) -> Iterator[str]:
    root, env = private
    yield from serve("mlops_template.serving.service:MlopsService", root, env)


def test_training_refuses_a_pii_column_as_a_feature(
    private: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, env = private
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["features"]["drop"].remove("country")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [MLOPS, "--params", str(tmp_path / "params.yaml"), "stage", "train"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert "pii columns cannot be features (country: not listed in features.drop)" in proc.stderr


def test_the_reference_holds_no_pii(private: tuple[Path, dict[str, str]]) -> None:
    root, _ = private
    reference = pd.read_parquet(root / "data/reference/reference.parquet")
    assert not set(PII) & set(reference.columns)
    assert {"amount", "is_fraud", "proba_1"} <= set(reference.columns)


def test_served_rows_are_logged_and_monitored_without_pii(
    private: tuple[Path, dict[str, str]],
    server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, _ = private
    batch = pd.read_parquet(root / "data/split/test.parquet").drop(columns=["is_fraud"])
    batch = batch.assign(transaction_id=range(FIRST_ID, FIRST_ID + len(batch)))
    resp = requests.post(f"{server}/predict", json={"records": records(batch)}, timeout=60)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()) == len(batch)

    log = root / "logs/requests.db"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # written on a background thread
        try:
            if len(read_request_log(log)) == len(batch):
                break
        except (FileNotFoundError, sqlite3.OperationalError):  # not created yet
            pass
        time.sleep(0.25)
    logged = read_request_log(log)
    assert len(logged) == len(batch)
    assert not set(PII) & set(logged.columns)
    assert logged["amount"].tolist() == pytest.approx(batch["amount"].tolist())
    raw = b"".join(p.read_bytes() for p in log.parent.iterdir())  # the WAL file too
    assert str(FIRST_ID).encode() not in raw and b"country" not in raw

    monkeypatch.chdir(root)
    assert cli.main(["monitor", "--request-log", str(log)]) == 0
    out = root / "reports/monitoring"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["contract"]["ok"] and summary["rows_total"] == len(batch)
    assert not set(PII) & set(summary["drift"]["columns"])
    for name in ("summary.json", "summary.md", "report.html"):
        text = (out / name).read_text()
        assert "country" not in text and str(FIRST_ID) not in text, name


def test_the_model_card_names_pii_columns_and_shows_none_of_their_values(
    private: tuple[Path, dict[str, str]],
) -> None:
    root, _ = private
    text = (root / "reports/model_card.md").read_text()
    card = json.loads((root / "reports/model_card.json").read_text())
    text += json.dumps(card)
    assert card["data"]["pii_columns"] == PII
    for column in card["data"]["columns"]:
        if column["name"] in PII:
            assert "pii" in column["roles"] and column["values"] == "withheld (pii)"
            assert not {"declared", "observed"} & set(column)
    # the values: no observed range of the id, no country of the data or the contract
    splits = pd.concat(pd.read_parquet(root / f"data/split/{s}.parquet") for s in ("train", "test"))
    assert f"observed {float(splits['transaction_id'].min())}" not in text
    categories = _contract()["columns"]["country"]["categories"]
    assert set(splits["country"].dropna().astype(str)) <= set(categories)
    assert not [c for c in categories if f'"{c}"' in text or f" {c}," in text or f" {c} " in text]
