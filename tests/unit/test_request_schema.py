"""The request schema (from the data contract) and the bounding of error bodies."""

from __future__ import annotations

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
