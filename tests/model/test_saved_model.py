"""Every model of estimators.ESTIMATORS survives models/model.skops: what train fits, saved
and loaded back through the trusted-types check, predicts exactly what the pipeline in memory
predicts, for every task (regression and multiclass included, with a target-encoded column)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template.config import parse_params
from mlops_template.estimators import ESTIMATORS
from mlops_template.model import ModelMeta, column_roles, file_sha256, load, make_pipeline, save
from tests.model.demo import demo_split, fit_demo

# small and quick, and single-threaded: a forest's predict_proba with n_jobs=-1 sums its trees
# in thread order, which differs in the last bit from call to call even in memory
SMALL = {
    "random_forest": {"n_estimators": 20, "n_jobs": 1},
    "hist_gradient_boosting": {"max_iter": 30},
    "lightgbm": {"n_estimators": 20},
}


def _params(raw: dict[str, Any], name: str) -> Any:
    raw["train"]["model"] = name
    raw["train"]["cv"]["folds"] = 2
    raw["train"][name] = raw["train"].get(name, {}) | SMALL.get(name, {})
    return parse_params(raw)


def _round_trip(pipeline: Any, folder: Path, task: str, classes: list[Any] | None) -> Any:
    """Saved as train saves it, loaded as every offline reader loads it."""
    model, meta = folder / "model.skops", folder / "model.json"
    save(pipeline, model)
    ModelMeta(
        task=task,  # type: ignore[arg-type]
        model="m",
        target="y",
        input_columns=["x"],
        classes=classes,
        contract={"name": "t", "version": 1},
        model_sha256=file_sha256(model),
    ).write(meta)
    return load(model, meta)[0]


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_the_trained_demo_pipeline_predicts_the_same_after_loading(
    name: str, raw_params: dict[str, Any], tmp_path: Path
) -> None:
    train, test = demo_split(1500, seed=3, test_rows=300)
    pipeline = fit_demo(train, _params(raw_params, name))
    loaded = _round_trip(pipeline, tmp_path, "binary", [0, 1])
    X = test.drop(columns=["is_fraud"])
    np.testing.assert_array_equal(loaded.predict_proba(X), pipeline.predict_proba(X))
    assert type(loaded.steps[-1][1].steps[-1][1]) is type(pipeline.steps[-1][1].steps[-1][1])


def _table(rows: int, seed: int) -> pd.DataFrame:
    """Missing numbers, a nullable integer, a boolean, a few strings and 100 distinct ids
    (target-encoded: more than ONEHOT_MAX_CATEGORIES)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(size=rows),
            "count": pd.array(rng.integers(0, 5, rows), dtype="Int64"),
            "channel": rng.choice(["web", "app", "pos"], rows),
            "merchant": [f"m{i % 100}" for i in range(rows)],
            "flag": rng.random(rows) > 0.5,
        }
    )
    frame.loc[::7, "amount"] = np.nan
    frame.loc[::11, "count"] = pd.NA
    return frame


@pytest.mark.parametrize("task", ["multiclass", "regression"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_task_predicts_the_same_after_loading(
    name: str, task: str, raw_params: dict[str, Any], tmp_path: Path
) -> None:
    X = _table(600, seed=1)
    rng = np.random.default_rng(2)
    y = rng.normal(size=len(X)) if task == "regression" else rng.choice(["a", "b", "c"], len(X))
    pipeline = make_pipeline(task, _params(raw_params, name).train, column_roles(X)).fit(X, y)
    classes = None if task == "regression" else sorted(set(y))
    loaded = _round_trip(pipeline, tmp_path, task, classes)
    new = _table(200, seed=9)
    if task == "regression":
        np.testing.assert_array_equal(loaded.predict(new), pipeline.predict(new))
    else:
        np.testing.assert_array_equal(loaded.predict_proba(new), pipeline.predict_proba(new))


def test_the_same_pipeline_gives_the_same_bytes(raw_params: dict[str, Any], tmp_path: Path) -> None:
    """skops names arrays and objects by id() and stamps entries with the time: a copy of the
    pipeline (other ids), saved a second later, must still give the file's exact bytes, or
    models/model.skops (and dvc.lock) would change on every run."""
    import copy
    import time

    train, _ = demo_split(1500, seed=3, test_rows=300)
    pipeline = fit_demo(train, _params(raw_params, "hist_gradient_boosting"))
    save(pipeline, tmp_path / "a.skops")
    time.sleep(2.1)  # zip entry times have a 2-second resolution
    save(copy.deepcopy(pipeline), tmp_path / "b.skops")
    assert (tmp_path / "a.skops").read_bytes() == (tmp_path / "b.skops").read_bytes()
