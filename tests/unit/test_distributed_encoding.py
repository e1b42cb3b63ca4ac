"""Target encoding from Dask group-bys equals scikit-learn's TargetEncoder: fitted on every
row for the saved model, and on each fold's complement for the training rows (cross-fitting),
for binary, multiclass and regression targets, missing values and many categories included."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import TargetEncoder

from mlops_template import distributed_encoding

TARGET_TYPES = {"binary": "binary", "multiclass": "multiclass", "regression": "continuous"}


def _table(task: str, rows: int = 12_000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    city = pd.Series([f"city_{i}" for i in rng.integers(0, 800, rows)], dtype="str")
    city[rng.random(rows) < 0.05] = np.nan
    shop = pd.Series([f"shop_{i}" for i in rng.integers(0, 60, rows)], dtype="str")
    signal = city.str.len().fillna(0).to_numpy() + rng.normal(size=rows)
    y: object
    if task == "regression":
        y = signal
    elif task == "binary":
        y = np.where(signal > 7.5, "yes", "no")
    else:
        y = np.select([signal < 7, signal < 8], ["a", "b"], "c")
    return pd.DataFrame({"city": city, "shop": shop, "x": rng.normal(size=rows), "y": y})


@pytest.mark.parametrize("task", list(TARGET_TYPES))
def test_group_by_encodings_equal_scikit_learns(task: str) -> None:
    import dask.dataframe as dd

    frame = _table(task)
    X = frame[["city", "shop"]].astype(object).fillna(distributed_encoding.MISSING)
    target_type = TARGET_TYPES[task]
    everything = TargetEncoder(target_type=target_type).fit(X, frame["y"])
    encoder = TargetEncoder(target_type=target_type).fit(X.head(300), frame["y"].head(300))
    classes = None if task == "regression" else np.sort(frame["y"].unique())
    out_of_fold = distributed_encoding.fit(
        dd.from_pandas(frame, npartitions=5),
        encoder,
        columns=["city", "shop"],
        target="y",
        task=task,
        classes=classes,
        seed=7,
    )
    # the saved encoder: every row's statistics, not the 300-row sample's
    for got, want in zip(encoder.categories_, everything.categories_, strict=True):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(encoder.encodings_, everything.encodings_, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(encoder.target_mean_, everything.target_mean_, atol=1e-12)
    # the training rows: each encoded by the other folds, as cross-fitting does
    folds = distributed_encoding.row_folds(frame, distributed_encoding.FOLDS, 7)
    assert set(np.unique(folds)) == set(range(distributed_encoding.FOLDS))
    width = len(encoder.get_feature_names_out())
    X_out = np.full((len(frame), width), np.nan)
    half = width // 2
    out_of_fold.apply(frame, X_out, {"city": list(range(half)), "shop": list(range(half, width))})
    for k in range(distributed_encoding.FOLDS):
        rest = TargetEncoder(target_type=target_type).fit(X[folds != k], frame["y"][folds != k])
        want = rest.transform(X[folds == k])
        np.testing.assert_allclose(X_out[folds == k], want, rtol=0, atol=1e-12)


def test_a_rows_fold_does_not_depend_on_the_partitioning() -> None:
    frame = _table("binary", rows=2_000)
    whole = distributed_encoding.row_folds(frame, 5, 1)
    cuts = [0, 1, 250, 999, 1000, 1700, 2000]  # partitions of uneven sizes
    parts = [frame.iloc[a:b] for a, b in itertools.pairwise(cuts)]
    split = np.concatenate([distributed_encoding.row_folds(p, 5, 1) for p in parts])
    np.testing.assert_array_equal(whole, split)
    assert not np.array_equal(whole, distributed_encoding.row_folds(frame, 5, 2))  # seeded
