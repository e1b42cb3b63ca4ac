"""Simpler models on the same held-out split: "a simpler model is not better" (ML Test Score),
checked on the user's data every run.

- :func:`measure` (the `evaluate` stage): the class prior / the training mean
  (``DummyClassifier(strategy="prior")`` / ``DummyRegressor()``) always, and a plain
  ``HistGradientBoostingClassifier()`` / ``Regressor()`` with scikit-learn's defaults (native
  categoricals, NaN kept: :func:`plain_frame`) when the training split has at most
  ``evaluate.reference.max_rows`` rows. Fitted on the training features, scored on the test
  features: reports/baselines.json.
- the gate checks the file with :mod:`mlops_template.baseline_rules` (pure, no pandas or
  scikit-learn: the gate stays fast); this module imports them when called.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from mlops_template.baseline_rules import HGB_MAX_CATEGORIES, PRIOR

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_template.config import ReferenceParams, Task

# --------------------------------------------------------------------------- measure


def plain_frame(train: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """``other`` as plain HistGradientBoosting takes it, with ``train``'s categories: numbers
    and booleans as float (NaN kept), strings and categories as a pandas categorical (native
    categorical splits; values unseen in training become missing); above 255 distinct
    training values, where native support stops, the category's code as a number."""
    import numpy as np
    import pandas as pd

    out: dict[str, Any] = {}
    for name in train.columns:
        column, seen = other[name], train[name]
        dtype = seen.dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            out[name] = column.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
            continue
        categories = pd.Index(seen.dropna().astype(str).unique()).sort_values()
        values = column.astype("string").astype(object)
        coded = pd.Categorical(values.where(values.isin(categories)), categories=categories)
        if len(categories) <= HGB_MAX_CATEGORIES:
            out[name] = coded
        else:
            out[name] = np.where(coded.codes < 0, np.nan, coded.codes.astype("float64"))
    return pd.DataFrame(out, index=other.index)


def _output(model: Any, X: pd.DataFrame, task: Task, classes: list[Any] | None) -> np.ndarray:
    """What metrics take, with the columns in the model's class order."""
    import numpy as np

    if task == "regression":
        return np.asarray(model.predict(X), dtype="float64")
    assert classes is not None
    proba = np.asarray(model.predict_proba(X), dtype="float64")
    own = [str(c) for c in model.classes_]
    proba = proba[:, [own.index(str(c)) for c in classes]]
    return proba[:, 1] if task == "binary" else proba


def _score(task: Task, y: Any, output: Any, classes: list[Any] | None) -> dict[str, float]:
    import numpy as np

    from mlops_template import metrics

    cls = None if classes is None else np.asarray(classes)
    return metrics.score(task, y, output, cls, 0.5)


def measure(
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    target: str,
    task: Task,
    classes: list[Any] | None,
    params: ReferenceParams,
    seed: int,
    train_rows: int | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    """reports/baselines.json (the simpler models' held-out metrics; binary labels cut at
    0.5) and the wall times (MLflow only: they are no function of the inputs).
    ``train_rows``: the training split's row count when ``train`` is a sample of it (on
    Dask): the reference is skipped above ``max_rows`` of those, as in process."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from mlops_template.model import early_stopping_blocker

    X, y = train.drop(columns=[target]), train[target]
    X_test, y_test = test.drop(columns=[target]), test[target].to_numpy()
    prior = DummyRegressor() if task == "regression" else DummyClassifier(strategy="prior")
    prior.fit(X, y)
    result: dict[str, Any] = {
        "task": task,
        "rows": {"train": len(train), "test": len(test)},
        "prior": {
            "model": "DummyRegressor()" if task == "regression" else PRIOR,
            "metrics": _score(task, y_test, _output(prior, X_test, task, classes), classes),
        },
    }
    timings: dict[str, float] = {}
    if not params.enabled:
        result["reference"] = {"skipped": "evaluate.reference.enabled is false"}
        return result, timings
    rows = len(train) if train_rows is None else train_rows
    if rows > params.max_rows:
        result["reference"] = {
            "skipped": f"{rows:,} training rows > evaluate.reference.max_rows {params.max_rows:,}"
        }
        return result, timings
    hgb = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    start = time.perf_counter()
    reference = hgb(random_state=seed)
    blocked = early_stopping_blocker(reference, y)  # `auto` stops early above 10k rows
    if blocked:
        reference.set_params(early_stopping=False)
    reference.fit(plain_frame(X, X), y)
    timings["reference_fit_seconds"] = time.perf_counter() - start
    output = _output(reference, plain_frame(X, X_test), task, classes)
    result["reference"] = {
        "model": f"{hgb.__name__}() (scikit-learn defaults, random_state={seed})"
        + (f"; early stopping off: {blocked}" if blocked else ""),
        "iterations": int(reference.n_iter_),
        "metrics": _score(task, y_test, output, classes),
    }
    return result, timings
