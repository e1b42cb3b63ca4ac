"""`evaluate.threshold: auto`: the decision threshold chosen on out-of-fold CV outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from mlops_template.config import EvaluateParams
from mlops_template.errors import ConfigError
from mlops_template.stages.train import choose_threshold


@pytest.fixture
def oof() -> tuple[pd.Series, np.ndarray]:
    rng = np.random.default_rng(3)
    y = pd.Series(rng.random(4000) < 0.2).astype(int)
    scores = np.clip(0.35 * y + rng.normal(0.3, 0.15, len(y)), 0, 1)
    return y, scores


def _at(y: pd.Series, scores: np.ndarray, cut: float) -> tuple[float, float, float]:
    pred = scores >= cut
    return precision_score(y, pred), recall_score(y, pred), f1_score(y, pred)


def test_a_number_is_taken_as_is(oof: tuple[pd.Series, np.ndarray]) -> None:
    assert choose_threshold(*oof, [0, 1], EvaluateParams(threshold=0.3)) == (0.3, "params")


def test_max_f1_beats_every_other_cut(oof: tuple[pd.Series, np.ndarray]) -> None:
    y, scores = oof
    cut, how = choose_threshold(y, scores, [0, 1], EvaluateParams(threshold="auto"))
    best = _at(y, scores, cut)[2]
    assert all(best >= _at(y, scores, c)[2] - 1e-9 for c in np.linspace(0.05, 0.95, 91))
    assert how.startswith("auto: max_f1") and cut != 0.5


@pytest.mark.parametrize("goal", ["min_precision", "min_recall"])
def test_minimum_level_is_met_with_the_most_of_the_other(
    oof: tuple[pd.Series, np.ndarray], goal: str
) -> None:
    y, scores = oof
    params = EvaluateParams(threshold="auto", threshold_objective=goal, threshold_level=0.8)
    cut, _ = choose_threshold(y, scores, [0, 1], params)
    precision, recall, _ = _at(y, scores, cut)
    held, other = (precision, recall) if goal == "min_precision" else (recall, precision)
    assert held >= 0.8
    for c in np.linspace(0.01, 0.99, 99):  # no cut that also holds the level does better
        p, r, _ = _at(y, scores, c)
        h, o = (p, r) if goal == "min_precision" else (r, p)
        assert not (h >= 0.8 and o > other + 1e-9), (c, h, o)


def test_an_unreachable_level_names_the_key(oof: tuple[pd.Series, np.ndarray]) -> None:
    y = oof[0]
    params = EvaluateParams(
        threshold="auto", threshold_objective="min_precision", threshold_level=0.99
    )
    noise = np.full(len(y), 0.5)  # one cut only: precision = the base rate
    with pytest.raises(ConfigError, match=r"evaluate\.threshold_objective"):
        choose_threshold(y, noise, [0, 1], params)
