"""Loading the model file: skops (models/model.skops, what every offline reader and the
scikit-learn serving path use) against joblib (the pickle it replaced), per model of
estimators.ESTIMATORS, fitted with params.yaml's defaults on the features stage's training
split. Writes reports/benchmarks/model_load.md.

- in process: the median time to load the file (the loaded pipeline must predict what the
  fitted one predicts, bit for bit);
- a fresh process (what a serving worker's start and `mlops score` pay): Python start,
  ``import mlops_template.model`` and the load, for both formats, interleaved;
- `mlops score` on one row (the whole CLI, the project's model from models/), for scale.

    python bench/model_load.py [--repeats 7] [--cold 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from machine import describe, quiet_env, settle  # bench/ is on sys.path as a script
from mlops_template import io, paths
from mlops_template.config import load_params
from mlops_template.contract import load_contract
from mlops_template.estimators import ESTIMATORS
from mlops_template.features import feature_transformer
from mlops_template.model import column_roles, make_pipeline, read_pipeline, save

MLOPS = str(Path(sys.executable).parent / "mlops")
REPORT = Path("reports/benchmarks/model_load.md")
COLD = {
    "joblib": "import sys, joblib, mlops_template.model; joblib.load(sys.argv[1])",
    "skops": (
        "import sys, pathlib; from mlops_template.model import read_pipeline; "
        "read_pipeline(pathlib.Path(sys.argv[1]))"
    ),
}


def fitted(name: str) -> tuple[Any, pd.DataFrame]:
    """The inference pipeline train would save for model ``name`` (no CV), and test rows."""
    from sklearn.pipeline import Pipeline

    params = load_params()
    target = load_contract(params.data.contract).target
    table = pd.read_parquet(paths.TRAIN_FEATURES)
    X, y = table.drop(columns=[target]), table[target]
    train_params = params.train.model_copy(update={"model": name})
    model = make_pipeline(params.data.task, train_params, column_roles(X)).fit(X, y)
    step = feature_transformer(params.features)
    step.fit(None)
    test = pd.read_parquet(paths.TEST_SPLIT).drop(columns=[target]).head(1000)
    return Pipeline([("features", step), ("model", model)]), test


def single_threaded(pipeline: Any) -> None:
    estimator = pipeline.steps[-1][1].steps[-1][1]
    if "n_jobs" in estimator.get_params():
        estimator.set_params(n_jobs=1)


def median_s(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cold_s(files: dict[str, Path], repeats: int) -> dict[str, float]:
    """Median wall time of a fresh Python that imports the project and loads each file."""
    times: dict[str, list[float]] = {kind: [] for kind in files}
    for _ in range(repeats):
        for kind, path in files.items():  # interleaved: load drifts hit both alike
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", COLD[kind], str(path)], check=True)
            times[kind].append(time.perf_counter() - start)
    return {kind: statistics.median(t) for kind, t in times.items()}


def score_one_row(repeats: int) -> float | None:
    """Median wall time of `mlops score` on one test row with models/ as it is."""
    if not paths.MODEL.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "one.csv"
        pd.read_parquet(paths.TEST_SPLIT).head(1).to_csv(source, index=False)
        command = [MLOPS, "score", str(source), "--output", str(Path(tmp) / "out.csv")]
        env = quiet_env(OMP_NUM_THREADS="1")
        return median_s(lambda: subprocess.run(command, check=True, env=env), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()
    settle()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in ESTIMATORS:
            pipeline, test = fitted(name)
            files = {"joblib": Path(tmp) / f"{name}.joblib", "skops": Path(tmp) / f"{name}.skops"}
            joblib.dump(pipeline, files["joblib"])
            save(pipeline, files["skops"])
            loaded = read_pipeline(files["skops"])
            for fitted_model in (loaded, pipeline):  # a forest's n_jobs=-1 predict_proba sums
                single_threaded(fitted_model)  # in thread order: last bits vary call to call
            same = np.array_equal(loaded.predict_proba(test), pipeline.predict_proba(test))
            warm = {
                "joblib": median_s(lambda f=files["joblib"]: joblib.load(f), args.repeats),
                "skops": median_s(lambda f=files["skops"]: read_pipeline(f), args.repeats),
            }
            cold = cold_s(files, args.cold)
            size = {k: p.stat().st_size / 2**20 for k, p in files.items()}
            rows.append((name, size, warm, cold, same))
            print(name, size, warm, cold, same, flush=True)
    score = score_one_row(args.cold)
    lines = [
        "# Loading the model file: skops against joblib\n",
        describe(("skops", "joblib", "lightgbm")),
        "\nEach model of estimators.ESTIMATORS with params.yaml's defaults, fitted on "
        "data/features/train.parquet (no CV), saved both ways. In process: median of "
        f"{args.repeats} loads. Fresh process: median of {args.cold} runs of `python -c` that "
        "imports mlops_template.model and loads the file (what a serving worker's start and "
        "`mlops score` pay), formats interleaved. Equal: the skops-loaded pipeline's "
        "predict_proba on 1,000 test rows is bit-identical to the fitted one's. The machine is "
        "shared with other engineers' jobs: see the load average above; ratios are more "
        "stable than absolute times.\n",
        "| model | MiB joblib | MiB skops | load joblib ms | load skops ms | ratio | "
        "fresh process joblib s | fresh process skops s | ratio | equal |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, size, warm, cold, same in rows:
        lines.append(
            f"| {name} | {size['joblib']:.2f} | {size['skops']:.2f} | "
            f"{warm['joblib'] * 1e3:.1f} | {warm['skops'] * 1e3:.1f} | "
            f"{warm['skops'] / warm['joblib']:.1f}x | {cold['joblib']:.2f} | "
            f"{cold['skops']:.2f} | {cold['skops'] / cold['joblib']:.2f}x | {same} |"
        )
    if score is not None:
        lines.append(
            f"\n`mlops score` on one row with the project's model (models/model.skops): "
            f"median {score:.2f} s over {args.cold} runs (whole CLI: imports, contract check, "
            "load, predict, write).\n"
        )
    io.write_text("\n".join(lines) + "\n", REPORT)
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
