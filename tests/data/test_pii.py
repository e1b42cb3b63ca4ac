"""Personal data (`pii: true` in the contract): never a feature, never kept in examples."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import yaml

from mlops_template.contract import Contract, load_contract, pii_features, redact
from mlops_template.errors import ConfigError
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS


@pytest.fixture
def raw_contract() -> dict[str, Any]:
    raw = yaml.safe_load(DEMO_CONTRACT.read_text())
    raw["columns"]["country"]["pii"] = True
    raw["columns"]["transaction_id"]["pii"] = True
    return raw


def test_pii_columns_and_the_stored_contract(raw_contract: dict[str, Any]) -> None:
    contract = Contract.model_validate(raw_contract)
    assert contract.pii_columns == ["transaction_id", "country"]
    stored = contract.without_pii()
    assert "country" not in stored.columns and "transaction_id" not in stored.columns
    assert stored.id is None and stored.target == "is_fraud"
    assert load_contract(DEMO_CONTRACT).pii_columns == []


def test_a_pii_target_is_refused(tmp_path, raw_contract: dict[str, Any]) -> None:
    raw_contract["columns"]["is_fraud"]["pii"] = True
    path = tmp_path / "contract.yaml"
    path.write_text(yaml.safe_dump(raw_contract))
    with pytest.raises(ConfigError, match=r"target column 'is_fraud' cannot be pii"):
        load_contract(path)


def test_pii_used_as_a_feature_is_named(raw_contract: dict[str, Any]) -> None:
    contract = Contract.model_validate(raw_contract)
    features = yaml.safe_load(DEMO_PARAMS.read_text())["features"]
    # the demo drops transaction_id but keeps country as an input
    assert pii_features(contract, features) == {"country": "not listed in features.drop"}
    features["drop"] = [*features["drop"], "country"]
    assert pii_features(contract, features) == {}
    features["ratios"].append({"name": "r", "numerator": "amount", "denominator": "country"})
    assert pii_features(contract, features) == {"country": "used by a features recipe"}


def test_redact_keeps_the_type_and_drops_the_values(transactions: pd.DataFrame) -> None:
    out = redact(transactions.head(5), ["transaction_id", "country", "timestamp"])
    assert (out["transaction_id"] == 0).all() and (out["country"] == "redacted").all()
    assert (out["timestamp"] == pd.Timestamp(0)).all()
    assert out.dtypes["transaction_id"] == transactions.dtypes["transaction_id"]
    pd.testing.assert_series_equal(out["amount"], transactions.head(5)["amount"])
