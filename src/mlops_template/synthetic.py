"""A seeded generator of realistic card transactions with a rare, non-linear fraud label.

Fraud depends on interactions (night x foreign, online x card-not-present x high amount,
new customer x high velocity) and on thresholds, so a boosted tree model clearly beats a
linear one. The intercept is solved for so that the expected fraud rate matches
``fraud_rate``. Everything is vectorised: 10M rows take seconds.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MERCHANT_CATEGORIES = [
    "grocery",
    "restaurant",
    "fuel",
    "electronics",
    "travel",
    "entertainment",
    "online_services",
    "jewelry",
    "health",
    "other",
]
_MERCHANT_P = np.array([0.24, 0.16, 0.11, 0.06, 0.05, 0.08, 0.12, 0.02, 0.07, 0.09])
_MERCHANT_P_DRIFT = np.array([0.14, 0.12, 0.08, 0.16, 0.10, 0.07, 0.16, 0.07, 0.04, 0.06])
# Typical spend per category (median of the log-normal amount, in currency units).
_MERCHANT_MEDIAN = np.array([35, 28, 45, 220, 310, 40, 18, 450, 30, 25], dtype=float)
_RISKY_MERCHANTS = np.isin(MERCHANT_CATEGORIES, ["electronics", "jewelry", "online_services"])

CHANNELS = ["in_store", "contactless", "online", "atm"]
_CHANNEL_P = np.array([0.38, 0.27, 0.30, 0.05])

HOME_COUNTRY = "US"
COUNTRIES = ["US", "CA", "MX", "GB", "DE", "FR", "BR", "NG", "IN", "CN"]
_FOREIGN_P = np.array([0.2, 0.15, 0.15, 0.12, 0.1, 0.08, 0.07, 0.06, 0.07])  # all but US

# Hour-of-day activity: quiet at night, busy around lunch and early evening.
_HOUR_WEIGHTS = np.array(
    [2, 1.2, 0.8, 0.6, 0.6, 1, 2, 4, 6, 7, 8, 9, 10, 9, 8, 8, 9, 10, 10, 9, 7, 6, 4, 3],
    dtype=float,
)
_NIGHT_HOURS = np.array([0, 1, 2, 3, 4, 5])
START = pd.Timestamp("2026-01-01")
DAYS = 120


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _solve_intercept(score: np.ndarray, rate: float) -> float:
    """Bisection on b so that mean(sigmoid(b + score)) == rate (monotone in b)."""
    lo, hi = -30.0, 30.0
    sample = score[:: max(1, score.size // 200_000)]
    for _ in range(60):
        mid = (lo + hi) / 2
        if _sigmoid(mid + sample).mean() > rate:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


def _time_order(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The stable sort order of ``seconds`` and the sorted values, from one sort of unique
    keys (second x n + position): about 3x faster than a stable argsort at 10M rows."""
    n = seconds.size
    key = seconds * n + np.arange(n)
    key.sort()
    return key % n, key // n


def _gather(values: np.ndarray, order: np.ndarray, narrow: type[np.integer]) -> np.ndarray:
    """``values[order]`` as int64, gathered as a narrower integer type (the values fit)."""
    return values.astype(narrow)[order].astype("int64")


def _categorical(codes: np.ndarray, order: np.ndarray, categories: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int8)[order], categories)


def generate_transactions(
    n_rows: int, fraud_rate: float = 0.015, seed: int = 42, drift: str = "none"
) -> pd.DataFrame:
    """Return ``n_rows`` transactions sorted by time, with an ``is_fraud`` label.

    ``drift="shifted"`` gives a batch from a changed world (larger amounts, a riskier merchant
    mix, more night-time and foreign activity, twice the fraud rate) for monitoring demos.
    """
    if drift not in ("none", "shifted"):
        raise ValueError(f"unknown drift {drift!r}: expected 'none' or 'shifted'")
    shifted = drift == "shifted"
    rng = np.random.default_rng(seed)
    n = n_rows

    hour_w = _HOUR_WEIGHTS.copy()
    if shifted:
        hour_w[_NIGHT_HOURS] *= 3
    hour = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    day = rng.integers(0, DAYS, size=n)
    seconds = day * 86_400 + hour * 3_600 + rng.integers(0, 3_600, size=n)

    merchant = rng.choice(
        len(MERCHANT_CATEGORIES), size=n, p=_MERCHANT_P_DRIFT if shifted else _MERCHANT_P
    )
    channel = rng.choice(len(CHANNELS), size=n, p=_CHANNEL_P)
    online = channel == CHANNELS.index("online")
    foreign_p = 0.16 if shifted else 0.06
    foreign = rng.random(n) < foreign_p
    country_idx = np.where(foreign, 1 + rng.choice(len(_FOREIGN_P), size=n, p=_FOREIGN_P), 0)
    card_present = np.where(online, False, rng.random(n) < 0.97)

    typical = _MERCHANT_MEDIAN[merchant]
    spend = rng.lognormal(0.0, 1.0, size=n) * (1.8 if shifted else 1.0)
    amount = np.round(np.clip(typical * spend, 0.5, 50_000), 2)

    tenure = np.floor(rng.gamma(1.6, 500, size=n)).astype("int64")
    distance = np.where(
        foreign, rng.lognormal(7.5, 0.6, size=n), rng.lognormal(1.8, 1.2, size=n)
    ).round(2)
    velocity = rng.poisson(1.5, size=n) + (rng.random(n) < 0.03) * rng.poisson(8, size=n)

    night = np.isin(hour, _NIGHT_HOURS)
    high_amount = amount > 3 * typical
    new_customer = tenure < 60
    score = (
        0.3 * night
        + 0.3 * foreign
        + 3.2 * (night & foreign)
        + 3.4 * (online & high_amount)
        + 1.0 * _RISKY_MERCHANTS[merchant]
        + 2.8 * (velocity >= 6)
        + 2.2 * (new_customer & (velocity >= 4))
        + 1.5 * (amount > 8 * typical)
        - 1.0 * card_present
    )
    rate = min(0.5, fraud_rate * (2 if shifted else 1))
    p = _sigmoid(_solve_intercept(score, rate) + score)
    is_fraud = (rng.random(n) < p).astype("int64")
    # A few missing values, as real feeds have: unknown distance, unknown tenure.
    distance[rng.random(n) < 0.04] = np.nan
    no_tenure = rng.random(n) < 0.01

    # Rows in time order, ties in generated order (what a stable sort gives). Columns are built
    # already in that order and handed to pandas without a copy: at 10M rows a frame sort or a
    # copy costs seconds. Gathering narrow integers (int8 codes, int32 counts) is what makes
    # the reordering cheap; the values and dtypes are those of a sorted frame.
    order, seconds = _time_order(seconds)
    frame = pd.DataFrame(
        {
            "transaction_id": np.arange(1, n + 1, dtype="int64"),
            "timestamp": START.to_datetime64() + seconds.astype("timedelta64[s]"),
            "amount": amount[order],
            "merchant_category": _categorical(merchant, order, MERCHANT_CATEGORIES),
            "channel": _categorical(channel, order, CHANNELS),
            "country": _categorical(country_idx, order, COUNTRIES),
            "is_foreign": foreign[order],
            "card_present": card_present[order],
            "customer_tenure_days": pd.arrays.IntegerArray(
                _gather(tenure, order, np.int32), no_tenure[order]
            ),
            "distance_from_home_km": distance[order],
            "txn_count_24h": _gather(velocity, order, np.int32),
            "is_fraud": _gather(is_fraud, order, np.int8),
        },
        copy=False,
    )
    log.info("generated %d synthetic transactions, fraud rate %.4f", n, is_fraud.mean())
    return frame


def write_batch(
    output: str, n_rows: int, fraud_rate: float, seed: int, drift: str, *, label: bool = True
) -> None:
    """Write a generated batch to ``output`` (.parquet or .csv) atomically (`mlops synth`)."""
    from mlops_template import io

    frame = generate_transactions(n_rows, fraud_rate, seed, drift=drift)
    if not label:
        frame = frame.drop(columns=["is_fraud"])
    if output.endswith(".csv"):
        io.write_csv(frame, output)
    else:
        io.write_parquet(frame, output)
    log.info("wrote %d %srows to %s", n_rows, "drifted " if drift != "none" else "", output)
