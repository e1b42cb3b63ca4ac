"""Model behaviour: beats trivial and simpler baselines, is invariant and directional."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier

from mlops_template import metrics
from mlops_template.config import load_params
from mlops_template.model import model_output
from tests.model.demo import demo_split, fit_demo
from tests.repo import DEMO_PARAMS


@pytest.fixture(scope="module")
def split():
    return demo_split(40_000, seed=11, test_rows=10_000)


def _fit(split, model: str):
    params = load_params(DEMO_PARAMS)
    params.train.model = model
    params.train.cv.folds = 2
    return fit_demo(split[0], params)


@pytest.fixture(scope="module")
def default_model(split):
    return _fit(split, load_params(DEMO_PARAMS).train.model)


def _scores(model, test: pd.DataFrame) -> dict[str, float]:
    proba = model_output(model, test.drop(columns=["is_fraud"]), "binary")
    return metrics.classification(test["is_fraud"], proba, np.array([0, 1]))


def test_default_model_beats_the_prior_by_a_clear_margin(split, default_model):
    train_raw, test = split
    prior = DummyClassifier(strategy="prior").fit(train_raw, train_raw["is_fraud"])
    baseline = metrics.classification(
        test["is_fraud"], prior.predict_proba(test)[:, 1], np.array([0, 1])
    )
    scores = _scores(default_model, test)
    assert scores["roc_auc"] > 0.8  # the prior scores 0.5
    assert scores["pr_auc"] > 3 * test["is_fraud"].mean()  # the prior scores the base rate
    assert scores["log_loss"] < 0.9 * baseline["log_loss"]


def test_a_linear_model_is_not_better_than_the_default(split, default_model):
    _, test = split
    linear = _fit(split, "linear")
    assert _scores(default_model, test)["pr_auc"] > _scores(linear, test)["pr_auc"]


def test_predictions_ignore_the_transaction_id(split, default_model):
    _, test = split
    inputs = test.drop(columns=["is_fraud"]).head(500)
    renumbered = inputs.assign(transaction_id=inputs["transaction_id"] + 10_000_000)
    np.testing.assert_array_equal(
        model_output(default_model, inputs, "binary"),
        model_output(default_model, renumbered, "binary"),
    )


def test_risky_pattern_raises_fraud_probability(split, default_model):
    """Directional: a night-time, foreign, online, high-velocity charge is riskier."""
    _, test = split
    calm = test.drop(columns=["is_fraud"]).head(300).copy()
    calm["timestamp"] = calm["timestamp"].dt.normalize() + pd.Timedelta(hours=14)
    calm["is_foreign"], calm["country"] = False, "US"
    risky = calm.copy()
    risky["timestamp"] = risky["timestamp"].dt.normalize() + pd.Timedelta(hours=2)
    risky["is_foreign"], risky["country"] = True, "NG"
    risky["txn_count_24h"] = 9
    p_risky = model_output(default_model, risky, "binary")
    p_calm = model_output(default_model, calm, "binary")
    assert (p_risky > p_calm).mean() > 0.9
    assert np.median(p_risky / p_calm) > 3
