"""The default model against the obvious ones (issue 20): missing values that carry the label
are learned, a model worse than the class prior is refused by the gate, an unstable
cross-validation fold is named."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn import metrics as skm
from sklearn.model_selection import PredefinedSplit, train_test_split

from mlops_template import baselines, io, paths
from mlops_template.config import (
    EvaluateParams,
    FeaturesParams,
    ReferenceParams,
    Task,
    TrainParams,
    load_params,
)
from mlops_template.errors import GateFailed
from mlops_template.model import ModelMeta, column_roles, make_pipeline, model_output
from mlops_template.stages import evaluate, gate, train
from tests.repo import DEMO_PARAMS


def missing_means_positive(rows: int, seed: int) -> pd.DataFrame:
    """The label is whether ``last_claim`` is missing (5% of labels flipped); the values
    themselves and ``noise`` say nothing. ``last_claim`` is 0 or 1 (mostly 1), so the median
    an imputer puts into the gaps hides them among the real ones."""
    rng = np.random.default_rng(seed)
    missing = rng.random(rows) < 0.4
    value = (rng.random(rows) < 0.7).astype("float64")
    value[missing] = np.nan
    flip = rng.random(rows) < 0.05
    return pd.DataFrame(
        {
            "last_claim": value,
            "noise": rng.normal(size=rows),
            "label": np.where(missing ^ flip, "yes", "no"),
        }
    )


def _held_out_auc(train_params: TrainParams, fit: pd.DataFrame, test: pd.DataFrame) -> float:
    X = fit.drop(columns="label")
    model = make_pipeline("binary", train_params, column_roles(X)).fit(X, fit["label"])
    p = model_output(model, test.drop(columns="label"), "binary")
    return float(skm.roc_auc_score(test["label"] == "yes", p))


def test_missing_values_that_carry_the_label_are_learned() -> None:
    fit, test = missing_means_positive(4_000, 0), missing_means_positive(2_000, 1)
    default = TrainParams()
    assert _held_out_auc(default, fit, test) > 0.9
    # the same trees after median imputation (what every model but HGB gets) cannot tell
    imputed = default.model_copy(update={"model": "random_forest"})
    assert _held_out_auc(imputed, fit, test) < 0.75


def _shuffled_breast_cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = datasets.load_breast_cancer(as_frame=True).frame
    frame["target"] = np.random.default_rng(0).permutation(frame["target"].to_numpy())
    fit, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    return fit.reset_index(drop=True), test.reset_index(drop=True)


def _gate_inputs(
    fit: pd.DataFrame, test: pd.DataFrame, target: str, task: Task, name: str
) -> tuple[evaluate.Evaluation, dict[str, Any]]:
    """The real train, evaluate and baselines on ``fit`` / ``test`` (all other columns are
    inputs); writes what the gate reads (metrics, dataset identity, baselines) here."""
    columns = [c for c in fit.columns if c != target]
    trained = train.train(
        fit,
        raw_columns=columns,
        target=target,
        task=task,
        params=TrainParams(),
        feature_spec=FeaturesParams(),
    )
    meta = ModelMeta(
        task=task,
        model="hist_gradient_boosting",
        target=target,
        input_columns=columns,
        classes=trained.classes,
        threshold=trained.threshold,
        contract={"name": name, "version": 1},
    )
    params = EvaluateParams(importance_rows=100, importance_repeats=1)
    result = evaluate.evaluate(trained.model, test, meta=meta, params=params)
    simple, _ = baselines.measure(
        fit, test, target=target, task=task, classes=meta.classes, params=ReferenceParams(), seed=0
    )
    io.write_json(result.metrics, paths.METRICS)
    io.write_json(evaluate.dataset_identity(meta), paths.DATASET)
    io.write_json(simple, paths.BASELINES)
    return result, simple


def test_gate_refuses_a_model_worse_than_the_prior(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shuffled labels: the real train + evaluate + baselines, then the gate (no git
    baseline at all) stops with exit 5 and names both numbers."""
    monkeypatch.chdir(tmp_path)
    fit, test = _shuffled_breast_cancer()
    result, simple = _gate_inputs(fit, test, "target", "binary", "shuffled")
    model_loss, prior_loss = result.metrics["log_loss"], simple["prior"]["metrics"]["log_loss"]
    assert model_loss > prior_loss  # what the gate must catch

    gate_params = load_params(DEMO_PARAMS)
    with pytest.raises(GateFailed) as err:
        gate.run_gate(gate_params)
    assert err.value.exit_code == 5
    message = str(err.value)
    assert "log_loss vs class prior" in message
    assert f"{model_loss:.4f}" in message and f"{prior_loss:.4f}" in message
    report = json.loads(paths.GATE_JSON.read_text())
    assert report["baseline"]["compared"] is False  # no git baseline: refused all the same
    assert "log_loss vs class prior" in report["failed"]
    assert "worse than the class prior" in paths.GATE_MD.read_text()
    assert not paths.GATE_OK.exists()


def test_the_same_gate_passes_a_real_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    frame = datasets.load_breast_cancer(as_frame=True).frame
    fit, test = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame["target"])
    X = fit.drop(columns="target")
    model = make_pipeline("binary", TrainParams(), column_roles(X)).fit(X, fit["target"])
    output = model_output(model, test.drop(columns="target"), "binary")
    from mlops_template import metrics

    io.write_json(metrics.score("binary", test["target"], output, np.array([0, 1])), paths.METRICS)
    meta_identity = {"contract": {"name": "bc", "version": 1}, "target": "target", "task": "binary"}
    io.write_json(meta_identity, paths.DATASET)
    simple, _ = baselines.measure(
        fit, test, target="target", task="binary", classes=[0, 1], params=ReferenceParams(), seed=0
    )
    io.write_json(simple, paths.BASELINES)
    result = gate.run_gate(load_params(DEMO_PARAMS))
    statuses = {r.metric: r.status for r in result.rows}
    assert statuses["roc_auc vs class prior"] == "pass"
    assert statuses["log_loss vs class prior"] == "pass"
    assert "roc_auc vs plain HistGradientBoosting" in statuses
    assert paths.GATE_OK.exists()


def test_low_fold_rule() -> None:
    # the folds of the 7-class table: two far below the other three
    assert train.low_folds([0.63, 0.62, 0.38, 0.48, 0.64]) == [2, 3]
    assert train.low_folds([0.80, 0.81, 0.79, 0.80, 0.82]) == []
    assert train.low_folds([0.80, 0.81, float("nan"), 0.80, 0.60]) == [4]


def test_a_fold_far_below_the_others_is_named_in_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows of group B follow the opposite rule and all sit in the third fold: the other
    folds score ROC AUC near 1, that one near 0; the warning names it."""
    rng = np.random.default_rng(0)
    rows = 1_000
    group = np.where(np.arange(rows) < 200, "B", "A")
    x = rng.normal(size=rows)
    label = np.where((x > 0) ^ (group == "B"), "yes", "no")
    frame = pd.DataFrame({"x": x, "other": rng.normal(size=rows), "label": label})
    folds = np.where(group == "B", 2, rng.choice([0, 1, 3, 4], rows))
    monkeypatch.setattr(train, "cv_splitter", lambda *a: PredefinedSplit(folds))
    X, y = frame.drop(columns="label"), frame["label"]
    pipeline = make_pipeline("binary", TrainParams(), column_roles(X))
    with caplog.at_level(logging.WARNING, logger=train.log.name):
        summary, _, _ = train.cross_validate(pipeline, X, y, "binary", TrainParams())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("cv fold 3/5: roc_auc")
    assert summary["cv_low_folds"] == 1.0
    assert summary["cv_roc_auc_min"] < 0.2 < 0.9 < summary["cv_roc_auc_max"]
    assert summary["cv_roc_auc_std"] > 0.3


def test_a_class_missing_from_the_test_rows_still_gets_roc_auc_and_passes_the_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A time split of a weather-like table: "snow" falls only in the early years, so the later
    test rows lack it. ROC AUC is the macro mean over the four classes present (NaN made the
    gate fail the run as a missing metric); the evaluate log and report name the class left out."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    rows = 1_500
    temp = rng.normal(10, 8, rows)
    rain = rng.exponential(3, rows)
    weather = np.select(
        [temp < -2, rain > 6, rain > 3, temp > 18], ["snow", "rain", "drizzle", "sun"], "fog"
    ).astype(object)
    late = np.arange(rows) >= 1_200  # the held-out rows: later dates, no snow in them
    weather[late & (weather == "snow")] = "fog"
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2012-01-01", periods=rows, freq="D").astype(str),
            "temp": temp,
            "rain": rain,
            "weather": weather,
        }
    )
    fit, test = frame[~late].reset_index(drop=True), frame[late].reset_index(drop=True)
    assert "snow" in set(fit["weather"]) and "snow" not in set(test["weather"])
    columns = ["temp", "rain"]
    with caplog.at_level(logging.WARNING, logger=evaluate.log.name):
        result, _ = _gate_inputs(
            fit[[*columns, "weather"]],
            test[[*columns, "weather"]],
            "weather",
            "multiclass",
            "weather",
        )
    assert 0.5 < result.metrics["roc_auc"] <= 1.0
    note = "ROC AUC over 4 of 5 classes; absent from the test rows: snow"
    assert result.extra["roc_auc_classes"]["left_out"] == ["snow"]
    assert result.extra["roc_auc_classes"]["note"] == note
    assert any(note in r.getMessage() for r in caplog.records)
    gate_params = load_params(DEMO_PARAMS)
    gate_params.data.task = "multiclass"
    gated = gate.run_gate(gate_params)
    statuses = {r.metric: r.status for r in gated.rows}
    assert statuses["roc_auc"] == "pass"  # was "fail: missing from the candidate"
    assert paths.GATE_OK.exists()


def test_the_cv_report_says_how_many_rows_it_cross_validated() -> None:
    """Above train.cv.max_rows CV runs on a seeded sample: cv_metrics.json names the rows
    cross-validated and the split's (on Dask the caller passes the split's count)."""
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": rng.normal(size=600)})
    y = pd.Series(np.where(X["x"] > 0, "yes", "no"))
    params = TrainParams.model_validate({"cv": {"folds": 2, "max_rows": 200}})
    pipeline = make_pipeline("binary", params, column_roles(X))
    sampled, _, _ = train.cross_validate(pipeline, X, y, "binary", params)
    assert (sampled["cv_rows"], sampled["cv_split_rows"]) == (200, 600)
    whole, _, _ = train.cross_validate(pipeline, X.head(150), y.head(150), "binary", params)
    assert (whole["cv_rows"], whole["cv_split_rows"]) == (150, 150)
    on_dask, _, _ = train.cross_validate(
        pipeline, X.head(200), y.head(200), "binary", params, split_rows=5_000
    )
    assert (on_dask["cv_rows"], on_dask["cv_split_rows"]) == (200, 5_000)
