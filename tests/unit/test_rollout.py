"""The pure parts of a rollout: stable-hash routing, the challenger's checks, the shadow queue,
the request log's role column on old and new logs, and the comparison's decision."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template.config import parse_params
from mlops_template.errors import ConfigError
from mlops_template.request_log import RequestLog, read_request_log
from mlops_template.serving.rollout import routing
from mlops_template.serving.rollout.compare import KEEP, PROMOTE, decide
from mlops_template.serving.rollout.shadow import Shadow

INPUTS = ["transaction_id", "amount", "channel"]


def _params(raw: dict[str, Any], **serve: Any) -> Any:
    raw["serve"] |= serve
    return parse_params(raw)


# --------------------------------------------------------------------------- routing


def test_bucket_is_the_same_in_every_process_whatever_its_hash_seed() -> None:
    keys = [1, "user-7", 123456789]
    here = [routing.bucket(k, "m:v1") for k in keys]
    code = (
        "from mlops_template.serving.rollout.routing import bucket;"
        f"print([bucket(k, 'm:v1') for k in {keys!r}])"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout) == here


def test_bucket_spreads_keys_evenly_and_depends_on_the_challenger() -> None:
    share = np.mean([routing.bucket(i, "m:v1") < 0.2 for i in range(20_000)])
    assert 0.19 < share < 0.21
    assert [routing.bucket(i, "m:v1") for i in range(5)] != [
        routing.bucket(i, "m:v2") for i in range(5)
    ]


def test_column_key_routes_rows_and_header_key_routes_requests() -> None:
    by_id = routing.Rollout("canary", "m:v1", 0.5, "column", "transaction_id")
    ids = list(range(100))
    assert by_id.to_challenger({"transaction_id": ids}, None) == [
        routing.bucket(i, "m:v1") < 0.5 for i in ids
    ]
    by_header = routing.Rollout("ab", "m:v1", 1.0, "header", "x-user-id")
    assert by_header.to_challenger({"a": [1, 2]}, {"x-user-id": "u"}) == [True, True]
    assert by_header.to_challenger({"a": [1, 2]}, {}) == [False, False]
    assert by_header.to_challenger({"a": [1, 2]}, None) == [False, False]


def test_split_and_merge_keep_request_order() -> None:
    mask = [True, False, False, True, False]
    positions = routing.split(mask)
    assert positions == ([1, 2, 4], [0, 3])
    assert routing.merge(positions, (["b", "c", "e"], ["a", "d"])) == list("abcde")


def test_plan_defaults_the_route_key_to_the_contract_id(raw_params: dict[str, Any]) -> None:
    params = _params(raw_params, strategy="canary", challenger="m:v1", challenger_share=0.3)
    plan = routing.plan(params, "m:v1", INPUTS, "transaction_id")
    assert (plan.key_kind, plan.key, plan.share) == ("column", "transaction_id", 0.3)
    header = _params(raw_params, route_key="header:X-User-Id")
    assert routing.plan(header, "m:v1", INPUTS, None).key == "x-user-id"


@pytest.mark.parametrize(
    ("route_key", "id_column", "message"),
    [
        ("colour", "transaction_id", "'colour' is not an input column"),
        ("", None, "the contract has no id column"),
        ("header:", "transaction_id", "needs a header name"),
    ],
)
def test_bad_route_key_names_the_key(
    raw_params: dict[str, Any], route_key: str, id_column: str | None, message: str
) -> None:
    params = _params(raw_params, strategy="ab", challenger="m:v1", route_key=route_key)
    with pytest.raises(ConfigError, match=r"serve\.route_key") as err:
        routing.plan(params, "m:v1", INPUTS, id_column)
    assert message in str(err.value)


def test_a_strategy_needs_a_challenger(raw_params: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"serve\.challenger is required"):
        _params(raw_params, strategy="shadow")


def test_challenger_must_be_a_tag_or_the_alias() -> None:
    assert routing.challenger_tag("fraud:abc123", "m") == "fraud:abc123"
    with pytest.raises(ConfigError, match=r"serve\.challenger: 'latest' is not a BentoML"):
        routing.challenger_tag("latest", "m")


def _meta(**changes: Any) -> Any:
    from types import SimpleNamespace

    base = {"task": "binary", "classes": [0, 1], "input_columns": ["a", "b"]}
    return SimpleNamespace(**(base | changes))


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({}, ""),
        ({"task": "regression", "classes": None}, "task regression, the champion's is binary"),
        ({"classes": [0, 1, 2]}, "classes [0, 1, 2]"),
        ({"input_columns": ["a"]}, "input columns differ from the champion's: lacks b"),
        ({"input_columns": ["a", "b", "c"]}, "adds c"),
    ],
)
def test_incompatibility_names_what_differs(changes: dict[str, Any], why: str) -> None:
    found = routing.incompatibility(_meta(), _meta(**changes))
    assert (why in found) if why else found == ""


# --------------------------------------------------------------------------- shadow


def test_shadow_batches_counts_errors_and_drops_per_request_and_never_raises() -> None:
    seen: list[str] = []
    batches: list[list[int]] = []
    gate = threading.Event()

    def work(items: list[int]) -> None:
        gate.wait(10)
        batches.append(items)
        if -1 in items:
            raise RuntimeError("broken challenger")

    shadow = Shadow(work, seen.append, max_queue=3, max_wait=10.0, max_size=3)
    for item in (-1, 1, 2, 3, 4, 5, 6, 7):  # a batch of three waits in work; the queue fills
        shadow.submit(item)
    gate.set()
    shadow.flush()
    assert batches[0] == [-1, 1, 2]  # one call for the first three requests
    assert shadow.failures["error"] == 3  # counted per request of the failed batch
    dropped = shadow.failures["dropped"]
    assert 2 <= dropped <= 5 and sum(map(len, batches)) + dropped == 8
    assert sorted(seen) == sorted(["error"] * 3 + ["dropped"] * dropped)


# --------------------------------------------------------------------------- request log


def test_an_old_sqlite_log_still_opens_and_gains_the_role_column(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE requests (request_id TEXT, logged_at TEXT, model_version TEXT, "
        "record TEXT, prediction TEXT)"
    )
    conn.execute(
        "INSERT INTO requests VALUES ('r0', '2026-01-01T00:00:00+00:00', 'm:v0', "
        """'{"a": 1}', '{"prediction": 0}')"""
    )
    conn.commit()
    conn.close()
    old = read_request_log(path)
    assert old["role"].tolist() == ["champion"] and old["latency_ms"].isna().all()
    log = RequestLog(path)
    log.append("r1", "m:v0", {"a": [2]}, [{"prediction": 1}], "champion", 1.5)
    log.append("r1", "m:v1", {"a": [2]}, [{"prediction": 0}], "shadow", 2.5)
    log.flush()
    answered = read_request_log(path)
    assert answered["role"].tolist() == ["champion", "champion"]
    everything = read_request_log(path, roles=None)
    assert everything["role"].tolist() == ["champion", "champion", "shadow"]
    assert everything["latency_ms"].tolist()[1:] == [1.5, 2.5]


def test_an_old_jsonl_log_reads_as_champion(tmp_path: Path) -> None:
    path = tmp_path / "requests.jsonl"
    old = {
        "request_id": "r0",
        "logged_at": "2026-01-01T00:00:00+00:00",
        "model_version": "m:v0",
        "record": {"a": 1},
        "prediction": {"prediction": 0},
    }
    path.write_text(json.dumps(old) + "\n")
    log = RequestLog(path)
    log.append("r1", "m:v1", {"a": [2]}, [{"prediction": 1}], "shadow", 3.0)
    log.flush()
    assert read_request_log(path)["role"].tolist() == ["champion"]
    assert read_request_log(path, roles=None)["role"].tolist() == ["champion", "shadow"]


# --------------------------------------------------------------------------- compare


def _arm(role: str, version: str, ids: np.ndarray, proba: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": ids,
            "prediction": (proba >= 0.5).astype(int),
            "proba_0": 1 - proba,
            "proba_1": proba,
            "model_version": version,
            "request_id": [f"r{i}" for i in ids],
            "logged_at": pd.Timestamp("2026-01-01", tz="UTC"),
            "role": role,
            "latency_ms": 1.0,
        }
    )


def _world(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a good model's P(1) and a poor one's."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    good = np.clip(0.3 + 0.5 * (y - 0.3) + rng.normal(0, 0.15, n), 0.01, 0.99)
    poor = np.clip(0.3 + 0.1 * (y - 0.3) + rng.normal(0, 0.15, n), 0.01, 0.99)
    return y.astype(int), good, poor


def _canary(champion: np.ndarray, challenger: np.ndarray, share: float = 0.5) -> pd.DataFrame:
    ids = np.arange(len(champion))
    theirs = np.array([routing.bucket(i, "m:c") < share for i in ids])
    return pd.concat(
        [
            _arm("champion", "m:a", ids[~theirs], champion[~theirs]),
            _arm("challenger", "m:c", ids[theirs], challenger[theirs]),
        ],
        ignore_index=True,
    )


def _labels(y: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"transaction_id": np.arange(len(y)), "is_fraud": y})


@pytest.fixture
def params(raw_params: dict[str, Any]) -> Any:
    raw_params["compare"] = {"resamples": 100}
    return parse_params(raw_params)


def test_canary_log_promotes_a_better_challenger_and_keeps_a_worse_one(params: Any) -> None:
    y, good, poor = _world()
    better = decide(params, _canary(poor, good), _labels(y), "transaction_id", "is_fraud")
    assert better.decision == PROMOTE, better.reasons
    assert better.between["mode"] == "split" and better.between["paired_rows"] == 0
    roc = next(q for q in better.quality if q["metric"] == "roc_auc")
    assert roc["interval"][0] > 0
    worse = decide(params, _canary(good, poor), _labels(y), "transaction_id", "is_fraud")
    assert worse.decision == KEEP and any(r.startswith("roc_auc") for r in worse.reasons)


def test_shadow_log_pairs_rows_and_a_dropped_shadow_keeps(params: Any) -> None:
    y, good, _ = _world()
    ids = np.arange(len(y))
    log = pd.concat([_arm("champion", "m:a", ids, good), _arm("shadow", "m:c", ids, good)])
    same = decide(params, log, _labels(y), "transaction_id", "is_fraud")
    assert same.between["agreement_rate"] == 1 and same.between["shadow_coverage"] == 1
    assert same.decision == PROMOTE  # equal quality passes the gate's allowed drop
    assert all(q["difference"] == 0 for q in same.quality)
    half = pd.concat(
        [_arm("champion", "m:a", ids, good), _arm("shadow", "m:c", ids[::2], good[::2])]
    )
    dropped = decide(params, half, _labels(y), "transaction_id", "is_fraud")
    assert dropped.decision == KEEP and "answered 50.0%" in dropped.reasons[0]


def test_no_labels_or_too_few_keep_the_champion(params: Any) -> None:
    y, good, poor = _world()
    log = _canary(poor, good)
    unlabelled = decide(params, log, None, "transaction_id", "is_fraud")
    assert unlabelled.decision == KEEP and "no labels" in unlabelled.reasons[0]
    assert unlabelled.champion["rows"] + unlabelled.challenger["rows"] == len(y)
    few = decide(params, log, _labels(y).head(100), "transaction_id", "is_fraud")
    assert few.decision == KEEP and "too few labelled rows" in few.reasons[0]


def test_a_log_without_a_challenger_is_bad_data(params: Any) -> None:
    from mlops_template.errors import DataError

    _, good, _ = _world(50)
    log = _arm("champion", "m:a", np.arange(50), good)
    with pytest.raises(DataError, match="no challenger or shadow rows"):
        decide(params, log, None, "transaction_id", "is_fraud")
