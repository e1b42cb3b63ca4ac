"""Two opt-in HistGradientBoosting settings (train.hist_gradient_boosting):
``early_stopping_refit`` fits again on every training row with the iteration count early
stopping chose (``true``), or trains the final fit on every row with the median count train's
CV folds stopped at (``cv``, no second fit); ``native_categorical`` splits string columns as
categories (ordinal codes), and the ONNX export writes those splits as chains of equality
tests (tests/model/test_onnx_path.py checks them on real tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.ensemble import HistGradientBoostingClassifier

from mlops_template.config import FeaturesParams, TrainParams
from mlops_template.features import feature_transformer
from mlops_template.model import (
    column_roles,
    fit,
    iterations_from_cv,
    make_pipeline,
    model_output,
    read_pipeline,
    refits_after_stopping,
    save,
)
from mlops_template.onnx_path import TOLERANCE, export
from mlops_template.stages import train


def _table(rows: int = 2_000, seed: int = 0) -> pd.DataFrame:
    """A binary label from a number (NaN in 10%) and a 20-value string column whose values
    push it up or down in no order an encoding could guess."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.1] = np.nan
    shop = rng.choice([f"s{i:02d}" for i in range(20)], rows)
    up = {f"s{i:02d}": (1.5 if i % 3 == 0 else -1.0) for i in range(20)}
    logit = np.nan_to_num(x) + np.array([up[s] for s in shop]) + rng.normal(scale=0.5, size=rows)
    return pd.DataFrame({"x": x, "shop": shop, "label": (logit > 0).astype(int)})


def test_refit_uses_every_row_with_the_count_early_stopping_chose() -> None:
    frame = _table()
    X, y = frame.drop(columns="label"), frame["label"]
    assert not refits_after_stopping(TrainParams())  # shipped: cv, no second fit
    params = TrainParams().with_overrides({"early_stopping_refit": True})
    assert refits_after_stopping(params)
    pipeline = make_pipeline("binary", params, column_roles(X))
    stopped = fit(clone(pipeline), X, y)  # early stopping alone: 90% of the rows
    chosen = stopped.steps[-1][1].n_iter_
    assert chosen < params.hist_gradient_boosting.max_iter  # it did stop early

    refitted = fit(pipeline, X, y, refit=True)
    estimator = refitted.steps[-1][1]
    assert estimator.early_stopping is False
    assert estimator.max_iter == estimator.n_iter_ == chosen
    # the same as fitting every row with that count from the start
    plain = make_pipeline(
        "binary",
        params.with_overrides({"early_stopping": False, "max_iter": chosen}),
        column_roles(X),
    ).fit(X, y)
    np.testing.assert_array_equal(
        model_output(refitted, X, "binary"), model_output(plain, X, "binary")
    )
    assert not np.array_equal(
        model_output(refitted, X, "binary"), model_output(stopped, X, "binary")
    )


def test_refit_cv_trains_every_row_once_with_the_folds_median_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = _table()
    params = TrainParams()
    assert iterations_from_cv(params) and not refits_after_stopping(params)  # shipped: cv
    assert not iterations_from_cv(TrainParams().with_overrides({"early_stopping_refit": True}))
    fits: list[tuple[int, object]] = []  # rows and early_stopping of every estimator fit
    real_fit = HistGradientBoostingClassifier.fit

    def counted(self: HistGradientBoostingClassifier, X: object, y: np.ndarray, **kw: object):
        fits.append((len(y), self.early_stopping))
        return real_fit(self, X, y, **kw)

    monkeypatch.setattr(HistGradientBoostingClassifier, "fit", counted)
    stopped: list[int] = []
    X, y = frame.drop(columns="label"), frame["label"]
    train.cross_validate(
        make_pipeline("binary", params, column_roles(X)), X, y, "binary", params, stopped
    )
    assert len(stopped) == params.cv.folds
    assert all(n < params.hist_gradient_boosting.max_iter for n in stopped)  # each stopped
    fits.clear()

    result = train.train(
        frame,
        raw_columns=["x", "shop"],
        target="label",
        task="binary",
        params=params,
        feature_spec=FeaturesParams(),
    )
    # one fit per fold and one final fit on every row, early stopping off only in the last
    assert fits == [(1_600, True)] * params.cv.folds + [(2_000, False)]
    estimator = result.model.steps[-1][1].steps[-1][1]
    assert estimator.early_stopping is False
    assert estimator.max_iter == estimator.n_iter_ == round(float(np.median(stopped)))


def test_refit_cv_without_a_fold_that_stopped_early_leaves_the_final_fit_alone() -> None:
    frame = _table(500)
    params = TrainParams().with_overrides(
        {"early_stopping_refit": "cv", "early_stopping": False, "max_iter": 30}
    )
    result = train.train(
        frame,
        raw_columns=["x", "shop"],
        target="label",
        task="binary",
        params=params,
        feature_spec=FeaturesParams(),
    )
    assert result.model.steps[-1][1].steps[-1][1].n_iter_ == 30


def test_refit_leaves_a_fit_without_early_stopping_alone() -> None:
    frame = _table(500)
    X, y = frame.drop(columns="label"), frame["label"]
    params = TrainParams().with_overrides(
        {"early_stopping_refit": True, "early_stopping": False, "max_iter": 30}
    )
    fitted = fit(make_pipeline("binary", params, column_roles(X)), X, y, refit=True)
    assert fitted.steps[-1][1].n_iter_ == 30


def test_native_categorical_splits_export_to_onnx_and_round_trip(tmp_path: Path) -> None:
    from sklearn.pipeline import Pipeline

    frame = _table()
    train, test = frame.iloc[:1_500], frame.iloc[1_500:].copy()
    test.loc[test.index[:5], "shop"] = "never seen"  # unseen at serving: a missing category
    X, y = train.drop(columns="label"), train["label"]
    params = TrainParams().with_overrides({"native_categorical": True})
    pipeline = fit(make_pipeline("binary", params, column_roles(X)), X, y)
    estimator = pipeline.steps[-1][1]
    assert isinstance(estimator, HistGradientBoostingClassifier)
    assert estimator.is_categorical_.tolist() == [False, True]  # x, then shop's codes
    onehot_params = TrainParams().with_overrides({"native_categorical": False})
    onehot = fit(make_pipeline("binary", onehot_params, column_roles(X)), X, y)
    assert onehot.steps[-1][1].is_categorical_ is None

    X_test = test.drop(columns="label")
    output = model_output(pipeline, X_test, "binary")
    assert np.isfinite(output).all()
    inference = Pipeline([("features", feature_transformer(FeaturesParams())), ("model", pipeline)])
    inference.steps[0][1].fit(None)
    onnx_bytes, record = export(inference, X_test, "binary")
    assert record["runtime"] == "onnx" and onnx_bytes is not None, record
    assert record["onnx_max_abs_diff"] <= TOLERANCE
    save(pipeline, tmp_path / "model.skops")  # the trusted loader reads it back, same outputs
    loaded = read_pipeline(tmp_path / "model.skops")
    np.testing.assert_array_equal(model_output(loaded, X_test, "binary"), output)
