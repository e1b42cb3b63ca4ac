"""The evaluate stage's permutation importance is scikit-learn's, to the last digit, for every
task and kind of model (it only batches the predictions)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes, load_wine
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops_template.config import EvaluateParams, Task, load_params
from mlops_template.contract import load_contract
from mlops_template.stages.evaluate import importance
from tests.model.demo import demo_split, fit_demo
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS

PARAMS = EvaluateParams(importance_rows=700, importance_repeats=3)


def scikit_learns(
    model: Any, inputs: pd.DataFrame, y: np.ndarray, task: Task, seed: int, skip: list[str]
) -> pd.DataFrame:
    """What the evaluate stage computed before it batched the predictions (issue 15)."""
    sample = inputs.sample(n=min(len(inputs), PARAMS.importance_rows), random_state=seed)
    y_sample = pd.Series(y, index=inputs.index).loc[sample.index]
    scoring = {"binary": "roc_auc", "multiclass": "accuracy", "regression": "r2"}[task]
    if task == "binary" and y_sample.nunique() < 2:
        scoring = "accuracy"
    result = permutation_importance(
        model,
        sample,
        y_sample,
        scoring=scoring,
        n_repeats=PARAMS.importance_repeats,
        random_state=seed,
        n_jobs=1,
    )
    frame = pd.DataFrame({"feature": sample.columns, "importance": result.importances_mean})
    frame = frame[~frame["feature"].isin(skip)]
    return frame.sort_values("importance", ascending=False).round(6).reset_index(drop=True)


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:
    return demo_split(12_000, seed=5, test_rows=3_000)


@pytest.mark.parametrize("model", ["hist_gradient_boosting", "random_forest", "linear"])
@pytest.mark.parametrize("seed", [0, 42])
def test_equals_scikit_learn_on_the_demo_pipeline(demo, model: str, seed: int):
    params = load_params(DEMO_PARAMS)
    params.train.model = model
    params.train.cv.folds = 2
    params.train.random_forest.n_estimators = 20
    params.train.hist_gradient_boosting.max_iter = 30
    contract = load_contract(DEMO_CONTRACT)
    train_raw, test = demo
    pipeline = fit_demo(train_raw, params)
    inputs, y = test.drop(columns=[contract.target]), test[contract.target].to_numpy()
    skip = [contract.id or ""]
    got = importance(pipeline, inputs, y, "binary", PARAMS, seed, skip)
    pd.testing.assert_frame_equal(got, scikit_learns(pipeline, inputs, y, "binary", seed, skip))
    assert got["importance"].abs().sum() > 0  # the model uses its inputs
    assert contract.id not in set(got["feature"])


def test_a_binary_sample_with_one_class_is_scored_by_accuracy(demo):
    train_raw, test = demo
    X = train_raw[["amount", "txn_count_24h", "distance_from_home_km"]].fillna(0)
    model = HistGradientBoostingClassifier(max_iter=20).fit(X, train_raw["is_fraud"])
    inputs = test[X.columns].fillna(0)
    y = np.zeros(len(inputs), dtype="int64")
    got = importance(model, inputs, y, "binary", PARAMS, 3, [])
    pd.testing.assert_frame_equal(got, scikit_learns(model, inputs, y, "binary", 3, []))


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_equals_scikit_learn_on_public_tables(task: Task):
    if task == "multiclass":
        X, y = load_wine(return_X_y=True, as_frame=True)
        model: Any = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    else:
        X, y = load_diabetes(return_X_y=True, as_frame=True)
        model = HistGradientBoostingRegressor(max_iter=50, random_state=0)
    model.fit(X, y)
    got = importance(model, X, y.to_numpy(), task, PARAMS, 7, [])
    pd.testing.assert_frame_equal(got, scikit_learns(model, X, y.to_numpy(), task, 7, []))
    assert got["importance"].max() > 0
