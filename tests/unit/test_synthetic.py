from __future__ import annotations

import pandas as pd
import pytest

from mlops_template.synthetic import generate_transactions


def test_same_seed_same_data_other_seed_other_data():
    a, b = generate_transactions(2000, seed=1), generate_transactions(2000, seed=1)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(generate_transactions(2000, seed=2))


@pytest.mark.parametrize("rate", [0.01, 0.02, 0.05])
def test_fraud_rate_is_close_to_the_requested_rate(rate):
    frame = generate_transactions(50_000, fraud_rate=rate, seed=3)
    assert abs(frame["is_fraud"].mean() - rate) < rate * 0.25


def test_has_missing_values_and_heavy_tailed_amounts():
    frame = generate_transactions(20_000, seed=4)
    assert frame["distance_from_home_km"].isna().mean() > 0.01
    assert frame["customer_tenure_days"].isna().any()
    assert frame["amount"].quantile(0.999) > 20 * frame["amount"].median()


def test_shifted_batch_differs_in_the_documented_ways():
    base = generate_transactions(30_000, seed=5)
    shifted = generate_transactions(30_000, seed=5, drift="shifted")
    assert shifted["amount"].median() > 1.5 * base["amount"].median()
    assert shifted["is_foreign"].mean() > 2 * base["is_foreign"].mean()
    assert shifted["is_fraud"].mean() > 1.5 * base["is_fraud"].mean()
    assert shifted["timestamp"].dt.hour.lt(6).mean() > 1.5 * base["timestamp"].dt.hour.lt(6).mean()


# Hashes of what the generator made before it was sped up (issue 15): the committed demo
# data (dvc.lock) depends on every value, dtype and the row order.
PINNED = {"none": 5864072813892386355, "shifted": 14506615077108264479}


@pytest.mark.parametrize("drift", sorted(PINNED))
def test_the_generated_rows_are_the_ones_committed_data_was_made_from(drift):
    frame = generate_transactions(5000, seed=42, drift=drift)
    assert int(pd.util.hash_pandas_object(frame, index=False).sum()) == PINNED[drift]
    assert frame["timestamp"].is_monotonic_increasing
    assert list(frame["transaction_id"]) == list(range(1, 5001))
    assert dict(frame.dtypes.astype(str)) == {
        "transaction_id": "int64",
        "timestamp": "datetime64[us]",
        "amount": "float64",
        "merchant_category": "category",
        "channel": "category",
        "country": "category",
        "is_foreign": "bool",
        "card_present": "bool",
        "customer_tenure_days": "Int64",
        "distance_from_home_km": "float64",
        "txn_count_24h": "int64",
        "is_fraud": "int64",
    }
