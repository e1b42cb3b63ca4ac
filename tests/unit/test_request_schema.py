"""The request schema (from the data contract) and the bounding of error bodies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from mlops_template.serving.request_schema import (
    INT64_MAX,
    INT64_MIN,
    MAX_ERRORS,
    bounded_error,
    record_model,
    typed_column,
)


@pytest.fixture
def good(transactions) -> dict[str, Any]:
    row = transactions.drop(columns=["is_fraud"]).head(1)
    return dict(orjson.loads(row.to_json(orient="records", date_format="iso"))[0])


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("transaction_id", INT64_MAX + 1),  # no contract max: int64's
        ("transaction_id", 10**400),
        ("customer_tenure_days", INT64_MIN - 1),  # nullable, contract min 0
        ("txn_count_24h", 10_001),  # the contract's max
    ],
)
def test_integers_outside_int64_or_the_contract_are_rejected(contract, good, column, value):
    Record = record_model(contract)
    with pytest.raises(ValidationError) as err:
        Record.model_validate(good | {column: value})
    assert err.value.errors()[0]["loc"] == (column,)


def test_the_largest_int64_fits_the_models_column(contract, good):
    record = record_model(contract).model_validate(good | {"transaction_id": INT64_MAX})
    assert typed_column([record.transaction_id], "int64")[0] == INT64_MAX


def _errors(n: int, key: str = "amount") -> bytes:
    detail = [
        {"type": "extra_forbidden", "loc": ["records", i, key], "msg": "no"} for i in range(n)
    ]
    return orjson.dumps({"error": f"{n} validation errors for Input", "detail": detail})


def test_error_bodies_list_at_most_20_errors():
    body, reason = bounded_error(_errors(1000), 400)
    out = orjson.loads(body)
    assert len(out["detail"]) == MAX_ERRORS and out["error"].startswith("1000 errors")
    assert reason == "extra_forbidden" and len(body) < 3000


def test_a_huge_bad_key_is_not_echoed_back():
    body, _ = bounded_error(_errors(1, key="k" * 1_000_000), 400)
    loc = orjson.loads(body)["detail"][0]["loc"]
    assert len(body) < 500 and loc[2] == "k" * 100 + "…"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(b"Method Not Allowed" * 1000, "405"), (orjson.dumps([{"error": "e" * 5000}]), "415")],
)
def test_other_error_bodies_are_cut_too(raw, reason):
    body, got = bounded_error(raw, int(reason))
    assert got == reason and len(body) < 1500


LOOSE = [
    ("amount", "38.75"),
    ("amount", True),
    ("is_foreign", "yes"),
    ("is_foreign", 1),
    ("transaction_id", True),
    ("transaction_id", "7"),
    ("txn_count_24h", 1.0),
    ("timestamp", 12345),
    ("timestamp", "12345"),  # lax pydantic: Unix time
    ("channel", 1),
    ("customer_tenure_days", 668.0),  # nullable int
]


@pytest.mark.parametrize("mode", ["python", "json"])
@pytest.mark.parametrize(("column", "value"), LOOSE, ids=[f"{c}={v!r}" for c, v in LOOSE])
def test_values_the_contract_does_not_say_are_refused(contract, good, column, value, mode):
    """pydantic's lax mode took each of these (200 at the API); both of the service's paths
    refuse them now: Python mode after orjson (the fast path), JSON mode (BentoML's)."""
    Record = record_model(contract)
    with pytest.raises(ValidationError) as err:
        if mode == "python":
            Record.model_validate(orjson.loads(orjson.dumps(good | {column: value})))
        else:
            Record.model_validate_json(orjson.dumps(good | {column: value}))
    assert err.value.errors()[0]["loc"] == (column,)


KEPT = [
    ("amount", 38, 38.0),  # a JSON integer is a number
    ("timestamp", "2026-03-14", dt.datetime(2026, 3, 14)),
    ("timestamp", "2026-03-14 19:43:29", dt.datetime(2026, 3, 14, 19, 43, 29)),
    ("timestamp", "2026-03-14T19:43:29+01:00", dt.datetime(2026, 3, 14, 18, 43, 29)),  # to UTC
    ("timestamp", "2026-03-14T19:43:29Z", dt.datetime(2026, 3, 14, 19, 43, 29)),
    ("customer_tenure_days", None, None),
]


@pytest.mark.parametrize("mode", ["python", "json"])
@pytest.mark.parametrize(("column", "value", "expected"), KEPT, ids=[str(k[1]) for k in KEPT])
def test_the_conversions_kept(contract, good, column, value, expected, mode):
    """What the contract says, in JSON's words: an integer where a float is expected, and a
    datetime as an ISO 8601 string (an offset becomes naive UTC, as in training data)."""
    Record = record_model(contract)
    raw = orjson.dumps(good | {column: value})
    record = (
        Record.model_validate(orjson.loads(raw))
        if mode == "python"
        else Record.model_validate_json(raw)
    )
    assert getattr(record, column) == expected


def test_integer_categories_take_json_integers_only():
    from mlops_template.contract import Contract

    contract = Contract.model_validate(
        {
            "name": "t",
            "target": "y",
            "columns": {
                "y": {"dtype": "int"},
                "grade": {"dtype": "category", "categories": [1, 2]},
            },
        }
    )
    Record = record_model(contract)
    assert Record.model_validate({"grade": 2}).grade == 2
    for value in (2.0, True, "2"):
        with pytest.raises(ValidationError):
            Record.model_validate({"grade": value})
