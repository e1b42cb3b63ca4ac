"""Simpler models on the same held-out split: "a simpler model is not better" (ML Test Score),
checked on the user's data every run.

- :func:`measure` (the `evaluate` stage): the class prior / the training mean
  (``DummyClassifier(strategy="prior")`` / ``DummyRegressor()``) always, and a plain
  ``HistGradientBoostingClassifier()`` / ``Regressor()`` with scikit-learn's defaults (native
  categoricals, NaN kept: :func:`plain_frame`) when the training split has at most
  ``evaluate.reference.max_rows`` rows. Fitted on the training features, scored on the test
  features: reports/baselines.json.
- :func:`check_baselines` (the gate): a model worse than the prior on the task's primary metric
  (:data:`PRIMARY`) or on log loss fails, with or without a git baseline; one behind the
  reference by more than ``gate.reference.max_behind`` is reported, or fails when
  ``gate.reference.action`` is ``fail``.

The rule is pure and imports neither pandas nor scikit-learn (the gate stays fast); the
measurement imports them when called.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mlops_template import paths
from mlops_template.errors import DataError
from mlops_template.metric_directions import HIGHER_IS_BETTER, PRIMARY

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_template.config import ReferenceGate, ReferenceParams, Task

HGB_MAX_CATEGORIES = 255  # scikit-learn's limit for a native categorical column
THRESHOLD_METRICS = frozenset({"accuracy", "precision", "recall", "f1"})
TOLERANCE = 1e-9  # metrics are rounded to 6 decimals: a tie is no loss
PRIOR = "class prior"
MEAN = "training mean"
REFERENCE = "plain HistGradientBoosting"


def checked_metrics(task: str) -> list[str]:
    primary = PRIMARY[task]
    return [primary] if task == "regression" else [primary, "log_loss"]


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
) -> tuple[dict[str, Any], dict[str, float]]:
    """reports/baselines.json (the simpler models' held-out metrics; binary labels cut at
    0.5) and the wall times (MLflow only: they are no function of the inputs)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

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
    if len(train) > params.max_rows:
        result["reference"] = {
            "skipped": f"{len(train):,} training rows > evaluate.reference.max_rows "
            f"{params.max_rows:,}"
        }
        return result, timings
    hgb = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    start = time.perf_counter()
    reference = hgb(random_state=seed).fit(plain_frame(X, X), y)
    timings["reference_fit_seconds"] = time.perf_counter() - start
    output = _output(reference, plain_frame(X, X_test), task, classes)
    result["reference"] = {
        "model": f"{hgb.__name__}() (scikit-learn defaults, random_state={seed})",
        "iterations": int(reference.n_iter_),
        "metrics": _score(task, y_test, output, classes),
    }
    return result, timings


# --------------------------------------------------------------------------- check


@dataclass(frozen=True)
class Check:
    """One row of the gate's report (the fields of the gate's ``Row``): ``baseline`` is the
    simpler model's value, ``candidate`` the model's."""

    metric: str
    baseline: float | None
    candidate: float | None
    delta: float | None
    threshold: str
    status: Literal["pass", "fail", "info"]
    note: str = ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _worse_by(metric: str, simple: float, model: float) -> float:
    """How much worse the model is than the simpler one (negative: better)."""
    return simple - model if HIGHER_IS_BETTER.get(metric, True) else model - simple


def _prior_check(metric: str, simple: float, model: float, name: str) -> Check:
    worse = _worse_by(metric, simple, model)
    delta = round(model - simple, 12)
    rule = f"not worse than the {name}"
    if worse > TOLERANCE:
        sign = "<" if HIGHER_IS_BETTER.get(metric, True) else ">"
        note = f"worse than the {name}: {metric} {model:.4f} {sign} {simple:.4f}"
        return Check(f"{metric} vs {name}", simple, model, delta, rule, "fail", note)
    return Check(f"{metric} vs {name}", simple, model, delta, rule, "pass")


def _reference_check(
    metric: str, simple: float, model: float, margin: float | None, action: str
) -> Check:
    behind = _worse_by(metric, simple, model)
    delta = round(model - simple, 12)
    name = f"{metric} vs {REFERENCE}"
    if margin is None:
        return Check(name, simple, model, delta, "not gated", "info")
    rule = f"behind by ≤ {margin:g} ({action})"
    if behind <= margin + TOLERANCE:
        return Check(name, simple, model, delta, rule, "pass")
    note = f"behind the {REFERENCE} reference by {behind:.4g} > {margin:g}"
    if action == "fail":
        return Check(name, simple, model, delta, rule, "fail", note)
    return Check(name, simple, model, delta, rule, "info", f"⚠️ {note} (reported only)")


def check_baselines(
    candidate: Mapping[str, Any],
    baselines: Mapping[str, Any] | None,
    rules: ReferenceGate,
    task: str,
) -> tuple[list[Check], list[str]]:
    """The gate's rows for the simpler models, and notes for its report.

    Against the prior: a model worse on :data:`PRIMARY` or log loss fails. Against the
    reference (when evaluate measured it): ``rules.max_behind`` per metric; beyond it the row
    fails if ``rules.action`` is ``fail``, else it is shown as a warning. ``baselines`` None:
    evaluate wrote no reports/baselines.json (nothing checked, a note says so)."""
    if baselines is None:
        return [], [f"{paths.BASELINES} is missing: the model was not compared with the prior."]
    checks: list[Check] = []
    prior = (baselines.get("prior") or {}).get("metrics") or {}
    name = MEAN if task == "regression" else PRIOR
    for metric in checked_metrics(task):
        simple, model = _number(prior.get(metric)), _number(candidate.get(metric))
        if simple is not None and model is not None:
            checks.append(_prior_check(metric, simple, model, name))
    reference = baselines.get("reference") or {}
    notes = []
    if "metrics" not in reference:
        why = reference.get("skipped", "not measured")
        notes.append(f"The {REFERENCE} reference was not fitted: {why}.")
        return checks, notes
    measured = reference["metrics"]
    wanted = list(dict.fromkeys([*checked_metrics(task), *rules.max_behind]))
    if task == "binary":  # the model's labels follow its own threshold, the reference's 0.5
        wanted = [m for m in wanted if m not in THRESHOLD_METRICS]
    for metric in wanted:
        simple, model = _number(measured.get(metric)), _number(candidate.get(metric))
        if simple is not None and model is not None:
            margin = rules.max_behind.get(metric)
            checks.append(_reference_check(metric, simple, model, margin, rules.action))
    return checks, notes


def read(path: Path = paths.BASELINES) -> dict[str, Any] | None:
    """reports/baselines.json; None when evaluate did not write it."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); re-run the evaluate stage") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data
