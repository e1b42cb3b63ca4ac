"""Benchmark: the same 20-trial search with 1 and 2 local workers and on a 2-worker LocalCluster.

Writes reports/benchmarks/tuning.md (machine, medians over repeats, speed-up ratios).
Run: ``uv run python bench/tuning.py [--rows 20000] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from importlib import metadata
from pathlib import Path

import psutil
import yaml

from mlops_template.config import TuneParams, parse_params
from mlops_template.contract import load_contract, validate
from mlops_template.features import build_features
from mlops_template.synthetic import generate_transactions
from mlops_template.tune import tune

OUT = Path("reports/benchmarks/tuning.md")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    from distributed import LocalCluster

    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["train"]["hist_gradient_boosting"]["max_iter"] = 50
    raw["train"]["hist_gradient_boosting"]["early_stopping"] = False
    raw["tune"].update(enabled=True, method="random", n_trials=20, folds=3)
    params = parse_params(raw)
    contract = load_contract(params.data.contract)
    df = validate(generate_transactions(args.rows, seed=1), contract)
    feats = build_features(df, params.features)

    def timed(**over: object) -> float:
        tp = TuneParams.model_validate(params.tune.model_dump() | over)
        start = time.perf_counter()
        tune(feats, target=contract.target, task=params.data.task, train=params.train, params=tp)
        return time.perf_counter() - start

    results: dict[str, list[float]] = {"1 local worker": [], "2 local workers": [],
                                       "LocalCluster, 2 workers": []}  # fmt: skip
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None,
                      host="127.0.0.1") as cluster:  # fmt: skip
        for _ in range(args.repeats):
            results["1 local worker"].append(timed(n_workers=1))
            results["2 local workers"].append(timed(n_workers=2))
            results["LocalCluster, 2 workers"].append(timed(dask_address=cluster.scheduler_address))
    med = {k: statistics.median(v) for k, v in results.items()}
    base = med["1 local worker"]
    versions = ", ".join(
        f"{p} {metadata.version(p)}" for p in ("scikit-learn", "optuna", "distributed", "joblib")
    )
    lines = [
        "# Tuning benchmark: 20-trial random search, 3-fold CV",
        "",
        f"- Machine: {_cpu()}, {os.cpu_count()} logical cores, "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        f"- Python {platform.python_version()}; {versions}",
        f"- Data: {args.rows} synthetic rows, hist_gradient_boosting max_iter=50; "
        f"{args.repeats} repeats, medians quoted",
        "",
        "| setup | median wall time (s) | runs (s) | speed-up vs 1 worker |",
        "|---|---|---|---|",
    ]
    for name, values in results.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {name} | {med[name]:.1f} | {runs} | {base / med[name]:.2f}x |")
    lines += ["", "Target: at least 1.7x with 2 workers on 2 cores.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
