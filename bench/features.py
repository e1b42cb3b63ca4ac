"""What each raw input column costs next to what it is worth (ML Test Score, data test 3).

For the trained model in the workspace (after `make repro`): per raw input column, the feature
recipes of params.yaml that read it and their time in the feature function (one row, as
serving computes it, and 100,000 rows, as training does; the time of the same call without
those recipes subtracted), the number of model inputs it becomes after preprocessing (one-hot
columns count one each), and its permutation importance from reports/plots/importance.csv.
Writes reports/benchmarks/features.md.

    python bench/features.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import pandas as pd

from machine import describe, settle  # bench/ is on sys.path when run as a script
from mlops_template import io, paths
from mlops_template.config import FeaturesParams, load_params
from mlops_template.features import build_features
from mlops_template.model import load

REPORT = paths.REPORTS_DIR / "benchmarks/features.md"


def recipes_of(spec: FeaturesParams, column: str) -> FeaturesParams:
    """The recipes of ``spec`` that read ``column`` (drop kept as it is)."""
    return FeaturesParams(
        datetime=[d for d in spec.datetime if d.column == column],
        log=[c for c in spec.log if c == column],
        power=[p for p in spec.power if p.column == column],
        bins=[b for b in spec.bins if b.column == column],
        ratios=[r for r in spec.ratios if column in (r.numerator, r.denominator)],
        aggregates=[a for a in spec.aggregates if column in a.columns],
        drop=spec.drop,
    )


def derived_names(spec: FeaturesParams) -> list[str]:
    names = [f"{d.column}_{p}" for d in spec.datetime for p in d.parts]
    names += [f"log_{c}" for c in spec.log]
    names += [f"{p.column}_pow_{p.exponent:g}" for p in spec.power]
    names += [b.name or f"{b.column}_bin" for b in spec.bins]
    return names + [r.name for r in spec.ratios] + [a.name for a in spec.aggregates]


def median_seconds(frame: pd.DataFrame, spec: FeaturesParams, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        build_features(frame, spec)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def width(model: Any, names: list[str]) -> int:
    """How many columns of the model's matrix come from these feature-frame columns (a
    one-hot encoded column gives one per category)."""
    preprocess = model.named_steps["model"].named_steps["preprocess"]
    encoded = {c for name, _, cols in preprocess.transformers_ if name != "numeric" for c in cols}
    out = list(preprocess.get_feature_names_out())
    exact = sum(1 for n in names if n not in encoded and n in out)
    onehot = sum(1 for o in out for n in names if n in encoded and o.startswith(f"{n}_"))
    return exact + onehot


def measure(repeats: int) -> list[dict[str, Any]]:
    params = load_params()
    spec = params.features
    model, meta = load()
    raw = pd.read_parquet(paths.TEST_SPLIT).drop(columns=[meta.target])
    big = pd.concat([raw] * (100_000 // len(raw) + 1), ignore_index=True).head(100_000)
    one = raw.head(1)
    importance = pd.read_csv(paths.PLOTS_DIR / "importance.csv").set_index("feature")
    bare = FeaturesParams(drop=spec.drop)
    base_one, base_big = median_seconds(one, bare, repeats), median_seconds(big, bare, 5)
    rows = []
    for column in meta.input_columns:
        own = recipes_of(spec, column)
        derived = derived_names(own)
        kept = [] if column in spec.drop else [column]
        used = bool(derived) or bool(kept)
        cost_one = median_seconds(one, own, repeats) - base_one if derived else 0.0
        cost_big = median_seconds(big, own, 5) - base_big if derived else 0.0
        rows.append(
            {
                "column": column,
                "derived": ", ".join(derived) or "-",
                "model inputs": width(model, kept + derived) if used else 0,
                "1 row µs": round(cost_one * 1e6, 1),
                "100k rows ms": round(cost_big * 1e3, 1),
                "importance": importance["importance"].get(column, float("nan")),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    settle()
    rows = measure(args.repeats)
    table = pd.DataFrame(rows)
    text = "\n".join(
        [
            "# Feature cost and value (`python bench/features.py`)",
            "",
            describe(),
            "",
            "Per raw input column of the trained model: the feature recipes of params.yaml that",
            "read it, their extra time in the feature function (median; one row as serving",
            "computes it, 100,000 rows as training does), how many model inputs it becomes after",
            "preprocessing, and its permutation importance (reports/plots/importance.csv). A",
            "column the features drop and no recipe reads costs nothing and gets 0 inputs.",
            "",
            table.to_markdown(index=False),
            "",
        ]
    )
    io.write_text(text, REPORT)
    print(text)


if __name__ == "__main__":
    main()
