"""Generated tables with the shapes real data has and our synthetic generator has not: ids,
timestamps as datetimes and as ISO strings, missing values, booleans, integer codes, counts,
a 10,000-value string column and a 3-class string target. Seeded, so tests can assert values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHANNELS = ["app", "phone", "store", "web"]
LABELS = ["high", "low", "mid"]


def nasty_table(
    n_rows: int = 12_000, *, seed: int = 0, iso_strings: bool = False, cities: int = 10_000
) -> pd.DataFrame:
    """A 3-class string target ``label`` that depends on amount, temperature and channel.

    ``iso_strings``: ``event_time`` as ISO 8601 strings (as a CSV would hold them) instead of
    datetime64 values. ``city`` has ``cities`` distinct values (at most 5/6 of ``n_rows``, so
    never all distinct).
    """
    rng = np.random.default_rng(seed)
    start = np.datetime64("2024-01-01T00:00:00")
    event_time = start + np.sort(rng.integers(0, 365 * 24 * 3600, n_rows)).astype("timedelta64[s]")
    signup = (start - rng.integers(0, 900, n_rows).astype("timedelta64[D]")).astype("datetime64[D]")
    amount = rng.lognormal(3, 1, n_rows).round(2)
    temperature = rng.normal(8, 9, n_rows).round(1)
    channel = rng.choice(CHANNELS, n_rows)
    distinct = min(cities, n_rows - n_rows // 6)  # never all distinct (that is free text)
    city_ids = np.concatenate([rng.permutation(distinct), rng.integers(0, distinct, n_rows)])
    score = (
        np.log(amount) + 0.08 * temperature + (channel == "web") * 1.0 + rng.normal(0, 0.5, n_rows)
    )
    label = np.select([score < 3.2, score < 4.2], ["low", "mid"], "high")
    frame = pd.DataFrame(
        {
            "row_id": rng.permutation(n_rows) + 1,
            "event_time": pd.Series(event_time).dt.strftime("%Y-%m-%dT%H:%M:%S")
            if iso_strings
            else event_time,
            "signup_date": pd.Series(signup.astype(str)),
            "amount": amount,
            "temperature": temperature,
            "n_items": rng.integers(0, 8, n_rows),
            "grade": rng.integers(1, 6, n_rows),
            "is_member": rng.random(n_rows) < 0.3,
            "channel": channel,
            "city": [f"city_{i:05d}" for i in city_ids[:n_rows]],
            "label": label,
        }
    )
    missing = rng.random((n_rows, 3)) < [0.05, 0.03, 0.02]
    frame.loc[missing[:, 0], "amount"] = np.nan
    frame.loc[missing[:, 1], "channel"] = None
    frame.loc[missing[:, 2], "signup_date"] = None
    return frame
