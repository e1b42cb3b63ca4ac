"""The merchants table that bench/dask_target_encoding.py and
tests/scale/test_categories_on_dask.py share: a 2,000-value column that decides the label.
Here, not under tests/, for the reason bench/live.py gives (the tests import it as
``bench.merchant_table``). numpy and pandas only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MERCHANTS = 2_000


def merchants(rows: int, seed: int) -> pd.DataFrame:
    """A tenth of the merchants are risky (60 % fraud vs 5 %); ``channel`` (4 values, some
    missing) and ``amount`` (some missing) add a little."""
    rng = np.random.default_rng(seed)
    risky = np.random.default_rng(0).random(MERCHANTS) < 0.1
    merchant = rng.integers(0, MERCHANTS, rows)
    channel = pd.Series(rng.choice(["app", "web", "store", "phone"], rows), dtype="str")
    channel[rng.random(rows) < 0.05] = np.nan
    amount = rng.lognormal(3, 1, rows)
    amount[rng.random(rows) < 0.1] = np.nan
    rate = np.where(risky[merchant], 0.6, 0.05) + (channel == "web").to_numpy() * 0.05
    return pd.DataFrame(
        {
            "merchant": pd.Series([f"m{m:05d}" for m in merchant], dtype="str"),
            "channel": channel,
            "amount": amount,
            "is_fraud": (rng.random(rows) < rate).astype(int),
        }
    )
