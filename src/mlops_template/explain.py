"""`mlops explain`: why did the model give this row this output?

Each raw input column gets a contribution: its Shapley value with respect to a background
sample (the held-out reference rows the evaluate stage kept), estimated by permutation
sampling (Štrumbelj & Kononenko, 2014). For a random order of the columns, the columns are
switched one at a time from the background's values to the row's own; the change of the mean
model output at each switch is that column's contribution in that order, and contributions
are averaged over ``permutations`` orders (half of them the reverse of the other half).

Why this method: it needs nothing but the model's own predict (the feature function runs
inside, so a raw column is credited for the derived features built from it), and per order
the contributions add up to exactly output(row) - mean output(background), so the total is
always right and only the split between columns is estimated. A column the model never
uses (the id, a dropped column) gets exactly 0. The output explained is P(positive) for a
binary model, the predicted class's probability for a multiclass one, the value for
regression. Cost: permutations x (columns + 1) x background rows predictions (one batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.errors import DataError
from mlops_template.model import ModelMeta, predict


@dataclass
class Explanation:
    output: float  # the model output explained (see the module docstring)
    baseline: float  # its mean over the background rows
    explained: str  # what the output is: "P(1)", "P(high)", "value"
    contributions: pd.DataFrame  # column, value, contribution; largest |contribution| first

    def as_dict(self) -> dict[str, Any]:
        rows = [
            {"column": r.column, "value": r.value, "contribution": r.contribution}
            for r in self.contributions.itertuples(index=False)
        ]
        return {
            "explained": self.explained,
            "output": self.output,
            "baseline": self.baseline,
            "contributions": rows,
        }


def _scorer(model: Any, meta: ModelMeta, row: pd.DataFrame) -> tuple[Any, str, Any]:
    """The function of a frame that is explained, and its name."""
    first = predict(model, row, meta)
    if meta.task == "regression":
        return lambda X: predict(model, X, meta).output, "value", None
    assert meta.classes is not None
    if meta.task == "binary":
        return lambda X: predict(model, X, meta).output, f"P({meta.classes[1]})", None
    k = int(np.argmax(first.output[0]))
    return lambda X: predict(model, X, meta).output[:, k], f"P({meta.classes[k]})", k


def _orders(n_columns: int, permutations: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    orders: list[np.ndarray] = []
    while len(orders) < permutations:
        order = rng.permutation(n_columns)
        orders += [order, order[::-1]]  # antithetic pairs: lower variance, same cost
    return orders[:permutations]


def explain(
    model: Any,
    meta: ModelMeta,
    row: pd.DataFrame,
    background: pd.DataFrame,
    *,
    permutations: int = 32,
    background_rows: int = 50,
    seed: int = 0,
) -> Explanation:
    """Per-column contributions to the model's output on ``row`` (one raw, contract-valid
    row) against ``background`` (raw rows; columns it lacks, such as pii ones, are missing)."""
    if len(row) != 1:
        raise DataError(f"explain: expected exactly one row, got {len(row)}")
    columns = list(meta.input_columns)
    missing = [c for c in columns if c not in row.columns]
    if missing:
        raise DataError(f"explain: the row lacks input column(s) {', '.join(missing)}")
    x = row[columns].reset_index(drop=True)
    bg = background.reindex(columns=columns)
    bg = bg.sample(n=min(background_rows, len(bg)), random_state=seed).reset_index(drop=True)
    if bg.empty:
        raise DataError("explain: the background sample has no rows")
    bg = bg.astype(x.dtypes.to_dict(), errors="ignore")
    score, explained, _ = _scorer(model, meta, x)

    frames, n = [], len(bg)
    orders = _orders(len(columns), permutations, seed)
    for order in orders:
        current = bg.copy()
        frames.append(current.copy())
        for j in order:
            current[columns[j]] = x[columns[j]].iloc[0]
            frames.append(current.copy())
    values = score(pd.concat(frames, ignore_index=True)).reshape(len(orders), len(columns) + 1, n)
    means = values.mean(axis=2)  # mean output after each switch, per order
    totals = np.zeros(len(columns))
    for o, order in enumerate(orders):
        totals[order] += np.diff(means[o])
    contributions = pd.DataFrame(
        {
            "column": columns,
            "value": [_shown(x[c].iloc[0]) for c in columns],
            "contribution": totals / len(orders),
        }
    )
    contributions = contributions.reindex(
        contributions["contribution"].abs().sort_values(ascending=False, kind="stable").index
    ).reset_index(drop=True)
    output = float(score(x)[0])
    return Explanation(output, float(means[0, 0]), explained, contributions)


def _shown(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, int | float | bool | str) else str(value)


def render(result: Explanation) -> str:
    """A short table for the terminal."""
    lines = [
        f"{result.explained} = {result.output:.4f} "
        f"(background mean {result.baseline:.4f}; contributions add up to the difference)",
        f"{'column':<28} {'value':<24} contribution",
    ]
    for r in result.contributions.itertuples(index=False):
        lines.append(f"{r.column:<28} {str(r.value)[:24]:<24} {r.contribution:+.4f}")
    return "\n".join(lines)


def pick_row(frame: pd.DataFrame, *, row: int | None, id_value: str | None, id_column: str | None):
    """One row of a table: by position (``--row``) or by the contract's id (``--id``)."""
    if id_value is not None:
        if not id_column or id_column not in frame.columns:
            raise DataError("explain --id: the contract declares no id column in this table")
        match = frame[frame[id_column].astype(str) == str(id_value)]
        if match.empty:
            raise DataError(f"explain --id: no row with {id_column} = {id_value}")
        return match.head(1)
    position = row or 0
    if not 0 <= position < len(frame):
        raise DataError(f"explain --row {position}: the table has {len(frame)} rows")
    return frame.iloc[[position]]


def run_cli(
    path: str,
    *,
    row: int | None,
    id_value: str | None,
    contract_path: str,
    permutations: int,
    as_json: bool,
) -> str:
    """`mlops explain FILE`: read and validate the table, explain one row against the
    monitoring reference (data/reference/reference.parquet), return the text to print."""
    import json

    from mlops_template import paths, sources
    from mlops_template.contract import load_contract, validate
    from mlops_template.model import load

    contract = load_contract(contract_path)
    model, meta = load()
    table = sources.read(sources.table(path, name="mlops explain"))
    one = pick_row(table, row=row, id_value=id_value, id_column=contract.id)
    one = validate(one, contract, source=path, with_target=contract.target in one.columns)
    if not paths.REFERENCE.exists():
        raise DataError(f"{paths.REFERENCE}: no background rows (run `dvc repro evaluate`)")
    background = pd.read_parquet(paths.REFERENCE)
    result = explain(model, meta, one, background, permutations=permutations)
    pii = result.contributions["column"].isin(contract.pii_columns)
    result.contributions.loc[pii, "value"] = "<pii>"  # never printed raw
    return json.dumps(result.as_dict(), indent=2) if as_json else render(result)
