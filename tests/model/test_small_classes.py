"""HistGradientBoosting's early stopping holds out a stratified validation split, which
scikit-learn cannot draw when a class has a single row: training turns early stopping off for
that fit, says so, and trains instead of crashing."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from mlops_template import baselines
from mlops_template.config import FeaturesParams, ReferenceParams, TrainParams
from mlops_template.model import column_roles, early_stopping_blocker, fit, make_pipeline
from mlops_template.stages import train
from mlops_template.stages.tune import cv_score


def _with_a_singleton(rows: int, seed: int = 0) -> pd.DataFrame:
    """A string target with two big classes and one that occurs once; a string column and NaN."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.05] = np.nan
    frame = pd.DataFrame(
        {
            "x": x,
            "shop": rng.choice(["north", "south", "east"], rows),
            "label": np.where(np.nan_to_num(x) > 0, "up", "down").astype(object),
        }
    )
    frame.loc[rows // 3, "label"] = "once"
    return frame


def test_the_blocker_names_the_class() -> None:
    y = _with_a_singleton(500)["label"]
    stopping = HistGradientBoostingClassifier(early_stopping=True)
    assert early_stopping_blocker(stopping, y) == "class 'once' has a single row"
    assert early_stopping_blocker(HistGradientBoostingClassifier(), y) == ""  # auto: off < 10k
    assert early_stopping_blocker(HistGradientBoostingClassifier(early_stopping=False), y) == ""
    two = y.copy()
    two.iloc[0] = "once"  # two rows: scikit-learn can stratify them
    assert early_stopping_blocker(stopping, two) == ""
    tiny = pd.Series(["a", "a", "b", "b", "c", "c", "d", "d"])  # 1 validation row, 4 classes
    assert "4 classes do not fit" in early_stopping_blocker(stopping, tiny)
    assert early_stopping_blocker(HistGradientBoostingClassifier(), pd.Series(["a", "b"] * 9)) == ""


def test_a_pipeline_with_early_stopping_trains_on_a_singleton_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frame = _with_a_singleton(1_000)
    X, y = frame.drop(columns="label"), frame["label"]
    params = TrainParams().with_overrides({"early_stopping": True})
    pipeline = make_pipeline("multiclass", params, column_roles(X))
    with pytest.raises(ValueError, match="only 1 member"):  # what scikit-learn does alone
        make_pipeline("multiclass", params, column_roles(X)).fit(X, y)
    with caplog.at_level(logging.WARNING):
        fitted = fit(pipeline, X, y)
    assert "early stopping off for this fit: class 'once' has a single row" in caplog.text
    assert sorted(fitted.classes_) == ["down", "once", "up"]
    assert fitted.predict_proba(X).shape == (1_000, 3)
    assert (fitted.predict(X) == y).mean() > 0.9


def test_train_and_tune_survive_a_singleton_class(caplog: pytest.LogCaptureFixture) -> None:
    """The whole train stage (CV folds + the final fit) and a tune trial's CV."""
    frame = _with_a_singleton(600)
    # 40 iterations learn this table; what is under test is that no fit raises
    params = TrainParams().with_overrides({"early_stopping": True, "max_iter": 40})
    with caplog.at_level(logging.WARNING):
        trained = train.train(
            frame,
            raw_columns=["x", "shop"],
            target="label",
            task="multiclass",
            params=params,
            feature_spec=FeaturesParams(),
        )
    assert trained.classes == ["down", "once", "up"]
    assert trained.cv_metrics["cv_accuracy_mean"] > 0.9
    assert "class 'once' has a single row" in caplog.text
    X, y = frame.drop(columns="label"), frame["label"]
    score = cv_score(X, y, "multiclass", params, {"learning_rate": 0.1}, 3, 0, "accuracy")
    assert score > 0.9


def test_the_reference_survives_a_singleton_class_above_10k_rows() -> None:
    """Plain HGB defaults stop early (`auto`) above 10,000 rows: the reference turns it off."""
    frame = _with_a_singleton(10_500)
    fit_rows, test = frame.iloc[:10_200], frame.iloc[10_200:]
    simple, _ = baselines.measure(
        fit_rows,
        test,
        target="label",
        task="multiclass",
        classes=["down", "once", "up"],
        params=ReferenceParams(),
        seed=0,
    )
    reference = simple["reference"]
    assert "early stopping off: class 'once' has a single row" in reference["model"]
    assert reference["metrics"]["accuracy"] > 0.9
