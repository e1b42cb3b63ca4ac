"""The per-address throttle of refused requests, and what the guard refuses in a body before
any record is validated."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest

from mlops_template.serving.request_guard import (
    MAX_WAIT_SECONDS,
    DuplicateKey,
    RequestGuard,
    Throttle,
    check_unique_keys,
    parse_body,
)


def test_a_burst_passes_then_refusals_are_spaced_by_the_rate():
    throttle = Throttle(rate=2.0, burst=3)
    waits = [throttle.wait("a", now=0.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert throttle.wait("b", now=0.0) == 0.0  # another address has its own bucket
    assert throttle.wait("a", now=10.0) == 0.0  # refilled


def test_waits_are_capped():
    throttle = Throttle(rate=1.0, burst=1)
    waits = [throttle.wait("a", now=0.0) for _ in range(100)]
    assert max(waits) == pytest.approx(MAX_WAIT_SECONDS)


# ------------------------------------------------------------ the body, before validation

ROW = (
    '{"transaction_id": 1, "timestamp": "2026-03-14T19:43:29", "amount": 38.75, '
    '"merchant_category": "other", "channel": "in_store", "country": "US", "is_foreign": false, '
    '"card_present": false, "customer_tenure_days": 668, "distance_from_home_km": 0.77, '
    '"txn_count_24h": 1}'
)


def _guard(max_rows: int = 1000) -> RequestGuard:
    return RequestGuard(None, max_rows=max_rows, body_limit=2_113_536, refusals_per_second=2)


def _refusal(body: bytes) -> tuple[str, list[Any]] | None:
    parsed, refusal = _guard()._check(body)
    if refusal is None:
        assert parsed is not None
        return None
    detail = orjson.loads(refusal.body)["detail"][0]
    return detail["type"], detail["loc"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"records": [' + b",".join([b"0"] * 1_000_000) + b"]}",  # 2 MB, no "{" to count
        b'{"records": [' + b",".join([b"[]"] * 700_000) + b"]}",
        b'{"records": [' + b",".join([b'"x"'] * 500_000) + b"]}",
        # orjson refuses the 25-digit integer; json reads it, and the count still holds
        b'{"records": [' + b",".join([b"0"] * 600_000) + b", 1" + b"0" * 25 + b"]}",
    ],
    ids=["1M zeros", "700k empty lists", "500k strings", "a huge integer among 600k"],
)
def test_records_of_any_kind_are_counted_before_validation(body: bytes) -> None:
    """Only objects were counted ("{"): a million 0s went to pydantic, which took 28 s and
    1.3 GB to refuse them one by one."""
    start = time.perf_counter()
    assert _refusal(body) == ("too_many_rows", ["records"])
    assert time.perf_counter() - start < 1.0


def test_a_million_items_that_no_parser_reads_are_refused_too() -> None:
    body = b'{"records": [' + b",".join([b"0"] * 1_000_000) + b", 1" + b"0" * 5000 + b"]}"
    assert _refusal(body) == ("json_invalid", ["body"])
    small = b'{"records": [1' + b"0" * 5000 + b"]}"
    assert _guard()._check(small) == (None, None)  # small: BentoML's parser says what it is


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ('{"records": [], "records": [ROW]}', "records"),
        ('{"records" : [ROW], "records": []}', "records"),  # white space before a colon
        (
            '{"records": [ROW]}'.replace("ROW", ROW.replace('"amount"', '"amount": 1, "amount"')),
            "amount",
        ),
        (
            '{"records": [ROW]}'.replace(
                "ROW", ROW.replace('"amount":', '"amount"\n:1, "amount":')
            ),
            "amount",
        ),
    ],
    ids=["records twice", "spaced", "a field twice", "a field twice, spaced"],
)
def test_a_key_twice_is_refused(body: str, key: str) -> None:
    raw = body.replace("ROW", ROW).encode()
    with pytest.raises(DuplicateKey, match=key):
        check_unique_keys(raw, parse_body(raw))
    assert _refusal(raw) == ("duplicate_key", ["body"])


@pytest.mark.parametrize(
    "body",
    [
        '{"records": [ROW]}',
        '{\n  "records": [\n    ROW\n  ]\n}',  # pretty-printed: parsed twice, no duplicate
        '{"records": [ROW]}'.replace('"other"', '"a\\":b"'),  # an escaped quote and a colon
        '{"records": [' + ", ".join([ROW] * 1000) + "]}",
    ],
    ids=["compact", "pretty", "escaped quote", "1000 rows"],
)
def test_bodies_without_duplicates_pass(body: str) -> None:
    raw = body.replace("ROW", ROW).encode()
    assert parse_body(raw) == json.loads(raw)
    check_unique_keys(raw, parse_body(raw))
    assert _refusal(raw) is None


def test_extra_top_level_keys_are_refused() -> None:
    raw = ('{"records": [ROW], "debug": true}').replace("ROW", ROW).encode()
    assert _refusal(raw) == ("extra_forbidden", ["debug"])


def test_a_bom_is_refused_as_bentoml_refuses_it() -> None:
    """json.loads(bytes) skips a UTF-8 BOM: the fast path answered 200 where BentoML's
    parser answers 400."""
    raw = b"\xef\xbb\xbf" + ('{"records": [ROW]}').replace("ROW", ROW).encode()
    with pytest.raises(ValueError):
        parse_body(raw)
    assert _guard()._check(raw) == (None, None)  # BentoML answers it
