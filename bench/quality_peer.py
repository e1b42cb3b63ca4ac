"""The AutoML peer of bench/quality.py: FLAML with a wall-time budget, run by the benchmark's
throwaway environment (FLAML is no dependency of the template).

    python bench/quality_peer.py TRAIN.parquet TEST.parquet TARGET TASK SECONDS OUT.npy

Fits on the project's training features (the `features` stage's output), writes the held-out
class probabilities (columns in sorted class order) or predictions to OUT.npy; the benchmark
scores them with the project's own metric functions.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import pandas as pd


def main(train: str, test: str, target: str, task: str, seconds: str, out: str) -> None:
    from flaml import AutoML

    fit, held_out = pd.read_parquet(train), pd.read_parquet(test)
    X, y = fit.drop(columns=[target]), fit[target]
    X_test = held_out.drop(columns=[target])
    for frame in (X, X_test):  # FLAML takes strings as pandas categories
        for name in frame.columns:
            if not pd.api.types.is_numeric_dtype(frame[name]) and frame[name].dtype != bool:
                frame[name] = frame[name].astype("string").astype("category")
    automl = AutoML()
    kind = "regression" if task == "regression" else "classification"
    start = time.perf_counter()
    automl.fit(
        X,
        y,
        task=kind,
        time_budget=float(seconds),
        metric="r2" if kind == "regression" else "log_loss",
        seed=0,
        n_jobs=1,
        verbose=0,
    )
    elapsed = time.perf_counter() - start
    if kind == "regression":
        result = np.asarray(automl.predict(X_test), dtype="float64")
    else:
        proba = np.asarray(automl.predict_proba(X_test), dtype="float64")
        order = np.argsort([str(c) for c in automl.classes_])
        result = proba[:, order]
    np.save(out, result)
    print(f"{automl.best_estimator} in {elapsed:.0f} s", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:7])
