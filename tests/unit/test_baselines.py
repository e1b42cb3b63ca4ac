"""The simpler models of reports/baselines.json and the gate's rule on them (issue 20)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import datasets
from sklearn import metrics as skm
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.model_selection import train_test_split

from mlops_template.baseline_rules import check_baselines
from mlops_template.baselines import measure, plain_frame
from mlops_template.config import ReferenceGate, ReferenceParams
from tests.tables import nasty_table


def _split(frame: pd.DataFrame, target: str, stratify: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    by = frame[target] if stratify else None
    train, test = train_test_split(frame, test_size=0.25, random_state=0, stratify=by)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def test_binary_numbers_are_sklearns() -> None:
    """Prior and reference on a real table equal what scikit-learn computes directly."""
    frame = datasets.load_breast_cancer(as_frame=True).frame
    train, test = _split(frame, "target", stratify=True)
    report, timings = measure(
        train,
        test,
        target="target",
        task="binary",
        classes=[0, 1],
        params=ReferenceParams(),
        seed=3,
    )
    y_test = test["target"].to_numpy()
    share = train["target"].mean()
    prior = report["prior"]["metrics"]
    assert prior["log_loss"] == pytest.approx(skm.log_loss(y_test, np.full(len(test), share)))
    assert prior["roc_auc"] == 0.5
    assert prior["accuracy"] == pytest.approx(max(y_test.mean(), 1 - y_test.mean()), abs=1e-6)
    X, X_test = train.drop(columns="target"), test.drop(columns="target")
    hgb = HistGradientBoostingClassifier(random_state=3).fit(X, train["target"])
    p = hgb.predict_proba(X_test)[:, 1]
    reference = report["reference"]["metrics"]
    assert reference["roc_auc"] == pytest.approx(skm.roc_auc_score(y_test, p), abs=1e-6)
    assert reference["log_loss"] == pytest.approx(skm.log_loss(y_test, p), abs=1e-6)
    assert report["reference"]["iterations"] == hgb.n_iter_
    assert report["rows"] == {"train": len(train), "test": len(test)}
    assert timings["reference_fit_seconds"] > 0


def test_multiclass_strings_nan_and_many_values() -> None:
    """A 3-class string target, NaN, a 10,000-value string column (codes: above the 255
    categories of native support) and a 4-value one (native categorical)."""
    frame = nasty_table(3_000).drop(columns=["row_id", "event_time", "signup_date"])
    train, test = _split(frame, "label", stratify=True)
    classes = sorted(train["label"].unique())
    report, _ = measure(
        train,
        test,
        target="label",
        task="multiclass",
        classes=classes,
        params=ReferenceParams(),
        seed=0,
    )
    counts = train["label"].value_counts(normalize=True)
    prior = np.tile([counts[c] for c in classes], (len(test), 1))
    expected = skm.log_loss(test["label"], prior, labels=classes)
    assert report["prior"]["metrics"]["log_loss"] == pytest.approx(expected, abs=1e-6)
    X, X_test = train.drop(columns="label"), test.drop(columns="label")
    plain = plain_frame(X, X_test)
    assert isinstance(plain["channel"].dtype, pd.CategoricalDtype)
    assert plain["city"].dtype == "float64"
    assert plain["amount"].isna().sum() == X_test["amount"].isna().sum()
    hgb = HistGradientBoostingClassifier(random_state=0).fit(plain_frame(X, X), train["label"])
    accuracy = skm.accuracy_score(test["label"], hgb.predict(plain))
    assert report["reference"]["metrics"]["accuracy"] == pytest.approx(accuracy, abs=1e-6)
    assert report["reference"]["metrics"]["accuracy"] > report["prior"]["metrics"]["accuracy"]


def test_regression_mean_and_skips() -> None:
    frame = datasets.load_diabetes(as_frame=True).frame
    train, test = _split(frame, "target", stratify=False)
    kwargs = {"target": "target", "task": "regression", "classes": None, "seed": 0}
    report, _ = measure(train, test, params=ReferenceParams(), **kwargs)  # type: ignore[arg-type]
    mean = np.full(len(test), train["target"].mean())
    rmse = skm.root_mean_squared_error(test["target"], mean)
    assert report["prior"]["metrics"]["rmse"] == pytest.approx(rmse, abs=1e-6)
    X = train.drop(columns="target")
    hgb = HistGradientBoostingRegressor(random_state=0).fit(X, train["target"])
    r2 = skm.r2_score(test["target"], hgb.predict(test.drop(columns="target")))
    assert report["reference"]["metrics"]["r2"] == pytest.approx(r2, abs=1e-6)

    small = ReferenceParams(max_rows=100)
    skipped, _ = measure(train, test, params=small, **kwargs)  # type: ignore[arg-type]
    assert skipped["reference"] == {
        "skipped": f"{len(train)} training rows > evaluate.reference.max_rows 100"
    }
    off, _ = measure(train, test, params=ReferenceParams(enabled=False), **kwargs)  # type: ignore[arg-type]
    assert "metrics" not in off["reference"]


BASELINES = {
    "prior": {"metrics": {"accuracy": 0.304, "log_loss": 1.49, "roc_auc": 0.5}},
    "reference": {"metrics": {"accuracy": 0.741, "log_loss": 3.40, "roc_auc": 0.9}},
}


def test_worse_than_the_prior_fails_naming_both_numbers() -> None:
    candidate = {"accuracy": 0.676, "log_loss": 5.77, "roc_auc": 0.88}
    checks, notes = check_baselines(candidate, BASELINES, ReferenceGate(), "multiclass")
    by_name = {c.metric: c for c in checks}
    failed = by_name["log_loss vs class prior"]
    assert failed.status == "fail"
    assert "5.7700 > 1.4900" in failed.note
    assert by_name["accuracy vs class prior"].status == "pass"
    # behind the reference by 0.065 in accuracy: reported (action report), not failed
    behind = by_name["accuracy vs plain HistGradientBoosting"]
    assert behind.status == "info" and "0.065" in behind.note
    assert by_name["log_loss vs plain HistGradientBoosting"].status == "info"
    assert notes == []


def test_reference_action_fail_and_binary_uses_roc_auc() -> None:
    candidate = {"accuracy": 0.2, "log_loss": 1.2, "roc_auc": 0.85}
    rules = ReferenceGate(action="fail")
    checks, _ = check_baselines(candidate, BASELINES, rules, "binary")
    status = {c.metric: c.status for c in checks}
    # binary: accuracy below the majority class is no failure (a threshold may trade it)
    assert "accuracy vs class prior" not in status
    assert status["roc_auc vs class prior"] == "pass"
    assert status["log_loss vs class prior"] == "pass"
    assert status["roc_auc vs plain HistGradientBoosting"] == "fail"  # 0.05 behind > 0.01
    assert status["log_loss vs plain HistGradientBoosting"] == "pass"  # better
    # labels at the model's own threshold vs the reference's 0.5: not compared
    assert "accuracy vs plain HistGradientBoosting" not in status


def test_regression_mean_ties_pass_and_missing_reports() -> None:
    baselines = {"prior": {"metrics": {"r2": -0.001, "rmse": 70.0}}, "reference": {"skipped": "x"}}
    checks, notes = check_baselines({"r2": -0.001}, baselines, ReferenceGate(), "regression")
    assert [(c.metric, c.status) for c in checks] == [("r2 vs training mean", "pass")]
    assert notes == ["The plain HistGradientBoosting reference was not fitted: x."]
    checks, notes = check_baselines({"r2": 0.3}, None, ReferenceGate(), "regression")
    assert checks == [] and "baselines.json is missing" in notes[0]
