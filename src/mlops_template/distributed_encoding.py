"""Target encoding of high-cardinality columns on Dask: the statistics of every category come
from a group-by over the whole training split on the workers, not from the seeded sample.

In process, model.make_pipeline's ``TargetEncoder`` is cross-fitted: each training row is
encoded with statistics of the other folds, and the saved model encodes with all rows' (an
unseen value: the training mean). On Dask the same two come from one Dask group-by of
``(column, value, fold)`` sums: the count, the sum and the sum of squares of the target (one
indicator per class for multiclass) per category and fold, small (categories x folds rows)
and gathered here. The encoding is scikit-learn's (``smooth="auto"``: Micci-Barreca's
shrinkage towards the mean by the category's variance), so the fitted ``TargetEncoder`` of
the pipeline gets the whole split's ``categories_`` / ``encodings_`` / ``target_mean_`` and
serves, saves and exports as in process; each training row gets the encoding of its fold's
complement (:meth:`OutOfFold.apply`). A row's fold is a seeded hash of its values, so it
does not depend on how the table is partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MISSING = "<missing>"  # model.make_pipeline's fill value for a missing high-cardinality value
FOLDS = 5


def row_folds(part: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Each row's fold: a seeded hash of its values (the same row, the same fold, wherever
    it lies)."""
    hashed = pd.util.hash_pandas_object(part, index=False).to_numpy()
    return ((hashed ^ np.uint64(seed)) % np.uint64(folds)).astype("int64")


def _targets(y: pd.Series, task: str, classes: np.ndarray | None) -> np.ndarray:
    """The target as scikit-learn's TargetEncoder sees it: the value (regression), the
    positive class's indicator (binary), one indicator per class (multiclass)."""
    if task == "regression":
        return y.to_numpy(dtype="float64").reshape(-1, 1)
    assert classes is not None
    indicators = (y.to_numpy()[:, None] == classes[None, :]).astype("float64")
    return indicators[:, 1:] if task == "binary" else indicators


def _partition_sums(
    part: pd.DataFrame,
    columns: list[str],
    target: str,
    task: str,
    classes: np.ndarray | None,
    seed: int,
) -> pd.DataFrame:
    """One partition's sums per (column, value, fold): n, s0.., q0.. (summed again across
    partitions by the group-by). Summed here first, column by column, so a partition never
    holds more than one column's rows in this long form."""
    fold = row_folds(part, FOLDS, seed)
    y = _targets(part[target], task, classes)
    sums = {f"s{k}": y[:, k] for k in range(y.shape[1])}
    squares = {f"q{k}": y[:, k] ** 2 for k in range(y.shape[1])}
    blocks = []
    for name in columns:
        values = part[name].astype("object").where(part[name].notna(), MISSING).astype("str")
        long = pd.DataFrame({"value": values.to_numpy(), "fold": fold, "n": 1.0} | sums | squares)
        block = long.groupby(["value", "fold"], sort=False).sum().reset_index()
        blocks.append(block.assign(column=name))
    out = pd.concat(blocks, ignore_index=True)
    return out[["column", "value", "fold", *out.columns.drop(["column", "value", "fold"])]]


def _encode(n: np.ndarray, s: np.ndarray, q: np.ndarray, total: np.ndarray) -> np.ndarray:
    """scikit-learn's ``smooth="auto"`` encoding from sums: per category the count ``n``, the
    sum ``s`` and the sum of squares ``q`` of the target; ``total`` = (count, sum, sum of
    squares) of every row the encoder is fitted on."""
    count, y_sum, y_squares = total
    y_mean = y_sum / count
    y_variance = y_squares / count - y_mean**2
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        within = q - n * mean**2  # sum of squared differences from the category's mean
        lam = y_variance * n / (y_variance * n + within / n)
        out = lam * mean + (1 - lam) * y_mean
    return np.where(np.isnan(lam), y_mean, out)


@dataclass
class OutOfFold:
    """Per high-cardinality column: its categories (sorted) and the encoding of each category
    for each fold's complement, ``(folds, categories, outputs)``; the seed of the folds."""

    categories: dict[str, np.ndarray]
    encodings: dict[str, np.ndarray]
    means: np.ndarray  # (folds, outputs): each complement's target mean (unseen categories)
    seed: int

    def apply(self, part: pd.DataFrame, X: np.ndarray, positions: dict[str, list[int]]) -> None:
        """Overwrite the target-encoded columns of ``X`` (the preprocessed ``part``, in place)
        with the out-of-fold encodings of each row's fold."""
        fold = row_folds(part, FOLDS, self.seed)
        for name, cats in self.categories.items():
            values = part[name].astype("object").where(part[name].notna(), MISSING).astype("str")
            code = pd.Index(cats).get_indexer(values)
            table = self.encodings[name]
            found = code >= 0
            out = self.means[fold].copy()
            out[found] = table[fold[found], code[found]]
            X[:, positions[name]] = out


def fit(
    frame: Any,
    encoder: Any,
    *,
    columns: list[str],
    target: str,
    task: str,
    classes: np.ndarray | None,
    seed: int,
) -> OutOfFold:
    """Fill ``encoder`` (a TargetEncoder fitted on the sample, for its shape) with the whole
    split's encodings, and return the out-of-fold encodings of the training rows; ``frame``: a
    Dask DataFrame of the training split (features and target)."""
    outputs = 1 if task != "multiclass" else len(classes)  # type: ignore[arg-type]
    meta = _partition_sums(frame._meta, columns, target, task, classes, seed)
    long = frame.map_partitions(
        _partition_sums, columns, target, task, classes, seed, meta=meta, enforce_metadata=False
    )
    sums = long.groupby(["column", "value", "fold"]).sum().compute().sort_index()
    s_cols = [f"s{k}" for k in range(outputs)]
    q_cols = [f"q{k}" for k in range(outputs)]
    first = sums.xs(columns[0], level="column").groupby(level="fold").sum()
    first = first.reindex(range(FOLDS), fill_value=0.0)  # every row counts once per column
    counts = first["n"].to_numpy()[:, None].repeat(outputs, axis=1)
    per_fold = np.stack([counts, first[s_cols].to_numpy(), first[q_cols].to_numpy()])
    total = per_fold.sum(axis=1)  # (count, sum, squares) x outputs
    complement = total[:, None, :] - per_fold  # the same for each fold's complement
    categories: dict[str, np.ndarray] = {}
    oof: dict[str, np.ndarray] = {}
    full: list[np.ndarray] = []
    for name in columns:
        block = sums.xs(name, level="column")
        cats = np.sort(block.index.get_level_values("value").unique().to_numpy(dtype=object))
        grid = pd.MultiIndex.from_product([cats, range(FOLDS)], names=["value", "fold"])
        block = block.reindex(grid, fill_value=0.0)
        n = block["n"].to_numpy().reshape(len(cats), FOLDS, 1)
        s = block[s_cols].to_numpy().reshape(len(cats), FOLDS, outputs)
        q = block[q_cols].to_numpy().reshape(len(cats), FOLDS, outputs)
        n_all, s_all, q_all = n.sum(axis=1), s.sum(axis=1), q.sum(axis=1)
        full.append(_encode(n_all, s_all, q_all, total))  # (categories, outputs)
        held = _encode(n_all[:, None] - n, s_all[:, None] - s, q_all[:, None] - q, complement)
        categories[name] = cats
        oof[name] = held.transpose(1, 0, 2)  # (folds, categories, outputs)
    _set_encoder(encoder, [categories[c] for c in columns], full, total, task)
    means = complement[1] / complement[0]
    return OutOfFold(categories, oof, means, seed)


def _set_encoder(
    encoder: Any, categories: list[np.ndarray], full: list[np.ndarray], total: np.ndarray, task: str
) -> None:
    """The fitted TargetEncoder with the whole split's statistics, its columns in ``columns``'
    order (scikit-learn's layout: per column, then per class for multiclass)."""
    encoder.categories_ = categories
    encoder.encodings_ = [table[:, k].copy() for table in full for k in range(table.shape[1])]
    mean = total[1] / total[0]
    encoder.target_mean_ = mean if task == "multiclass" else float(mean[0])
