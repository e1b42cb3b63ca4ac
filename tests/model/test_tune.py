"""The search itself: methods, Dask scale-out, the stage contract (training split only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_template.config import DaskParams, Params, TuneParams, parse_params
from mlops_template.errors import ConfigError
from mlops_template.features import build_features
from tests.repo import DEMO_CONTRACT

ROOT = Path(__file__).resolve().parents[2]
SPACE = {
    "hist_gradient_boosting": {
        "learning_rate": {"choices": [0.03, 0.3]},
        "max_leaf_nodes": {"choices": [4, 15]},
    }
}


@pytest.fixture
def tiny(raw_params: dict[str, Any]) -> Params:
    raw_params["train"]["hist_gradient_boosting"]["max_iter"] = 15
    raw_params["train"]["hist_gradient_boosting"]["early_stopping"] = False
    raw_params["tune"].update(
        enabled=True, method="grid", n_trials=4, folds=2, space=SPACE, models=[]
    )  # one kind: the tests below are about the search of one model's space
    return parse_params(raw_params)


@pytest.fixture
def feats(transactions: pd.DataFrame, tiny: Params) -> pd.DataFrame:
    return build_features(transactions, tiny.features)


def _tune(feats: pd.DataFrame, params: Params, dask: DaskParams | None = None, **over: Any):
    from mlops_template.stages.tune import tune

    tp = TuneParams.model_validate(params.tune.model_dump() | over)
    return tune(feats, target="is_fraud", task="binary", train=params.train, params=tp, dask=dask)


def test_grid_same_best_on_local_cluster_as_locally(feats: pd.DataFrame, tiny: Params) -> None:
    from distributed import LocalCluster

    local = _tune(feats, tiny)
    assert len(local.trials) == 4
    assert set(local.best_params) == {"learning_rate", "max_leaf_nodes"}
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
    ) as cluster:
        dask = DaskParams(enabled=True, address=cluster.scheduler_address)
        remote = _tune(feats, tiny, dask)
    assert remote.best_params == local.best_params
    pd.testing.assert_series_equal(remote.trials["score"], local.trials["score"])


@pytest.mark.parametrize("method", ["random", "bayesian", "evolutionary"])
def test_methods_respect_trial_budget(feats: pd.DataFrame, tiny: Params, method: str) -> None:
    space = {
        "hist_gradient_boosting": {
            "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
            "min_samples_leaf": {"low": 5, "high": 50},
        }
    }
    result = _tune(feats, tiny, method=method, n_trials=3, space=space)
    assert len(result.trials) == 3
    assert 0.01 <= result.best_params["learning_rate"] <= 0.3
    assert isinstance(result.best_params["min_samples_leaf"], int)
    assert result.best_score == result.trials["score"].max()


@pytest.mark.parametrize("method", ["random", "bayesian"])
def test_the_timeout_binds_whatever_n_trials_says(
    feats: pd.DataFrame, tiny: Params, method: str
) -> None:
    """n_trials huge and a timeout shorter than one trial: the search draws candidates as it
    goes (drawing 10 million first took longer than any timeout), runs one batch (a search
    always has a result; zero trials crashed with KeyError 'score') and stops."""
    import time

    space = {"hist_gradient_boosting": {"learning_rate": {"low": 0.01, "high": 0.3, "log": True}}}
    start = time.perf_counter()
    result = _tune(
        feats, tiny, method=method, n_trials=10_000_000, timeout_seconds=0.001, space=space
    )
    assert len(result.trials) == 1
    assert 0.01 <= result.best_params["learning_rate"] <= 0.3
    assert time.perf_counter() - start < 60


def test_stage_never_reads_test_split(
    feats: pd.DataFrame, tiny: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the training features exist in the folder: the stage still works end to end."""
    import sqlite3

    from mlops_template import paths
    from mlops_template.stages import tune
    from mlops_template.stages.train import tuned_params

    shutil.copy(DEMO_CONTRACT, tmp_path / "contract.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    paths.TRAIN_FEATURES.parent.mkdir(parents=True)
    feats.to_parquet(paths.TRAIN_FEATURES)
    tune.run(tiny)
    assert not paths.TEST_FEATURES.exists() and not paths.TEST_SPLIT.exists()
    best = json.loads(paths.BEST_PARAMS.read_text())
    assert best["defaults_trial"] == 0 and isinstance(best["best_is_defaults"], bool)
    trials = pd.read_csv(paths.TUNE_TRIALS)
    assert trials["defaults"].tolist() == [True, False, False, False]
    assert best["source"] == "tune:grid" and set(best["params"]) == {
        "learning_rate",
        "max_leaf_nodes",
    }
    hist = pd.read_csv(paths.TUNE_HISTORY)
    assert len(hist) == 4 and hist["best"].iloc[-1] == best["score"]
    imp = pd.read_csv(paths.TUNE_IMPORTANCE)
    assert set(imp["parameter"]) == {"learning_rate", "max_leaf_nodes"}
    merged, source = tuned_params(tiny)
    assert source == "tune:grid"
    assert merged.train.hist_gradient_boosting.learning_rate == best["params"]["learning_rate"]
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        parent = db.execute("select run_uuid from runs where name='tune'").fetchall()
        children = db.execute(
            "select count(*) from tags where key='mlflow.parentRunId' and value=?", parent[0]
        ).fetchone()[0]
        best_tags = db.execute("select count(*) from tags where key='best' and value='true'")
        n_best = best_tags.fetchone()[0]
        n_defaults = db.execute(
            "select count(*) from tags where key='defaults' and value='true'"
        ).fetchone()[0]
    assert len(parent) == 1 and children == 4 and n_best >= 1 and n_defaults == 1


def test_disabled_stage_writes_marker_fast(
    tiny: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_template import paths
    from mlops_template.stages import tune
    from mlops_template.stages.train import tuned_params

    monkeypatch.chdir(tmp_path)
    params = tiny.model_copy(update={"tune": tiny.tune.model_copy(update={"enabled": False})})
    tune.run(params)
    assert json.loads(paths.BEST_PARAMS.read_text()) == {"source": "params.yaml", "params": {}}
    assert tuned_params(params) == (params, "params.yaml")


def test_pruning_stops_bad_trials_early(feats: pd.DataFrame, tiny: Params) -> None:
    space = {
        "hist_gradient_boosting": {
            "learning_rate": {"low": 0.0001, "high": 0.5, "log": True},
            "max_leaf_nodes": {"choices": [2, 31]},
        }
    }
    result = _tune(feats, tiny, method="bayesian", n_trials=8, folds=3, pruning=True, space=space)
    assert len(result.trials) == 8
    assert set(result.trials["state"]) <= {"complete", "pruned"}
    assert "pruned" in set(result.trials["state"])
    best = result.trials.loc[result.trials["score"].idxmax()]
    assert best["state"] == "complete" and result.best_score == best["score"]


def _openmp_threads() -> int:
    """The OpenMP thread count scikit-learn's tree code would use in this process."""
    import sklearn.ensemble  # noqa: F401  (loads OpenMP)
    from threadpoolctl import threadpool_info

    return min(p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp")


def test_local_workers_share_the_cores_whatever_omp_num_threads_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OMP_NUM_THREADS=<all cores> in the environment (common in containers) used to reach
    every joblib worker: 2 workers x 2 threads on 2 cores made a 10 s search take minutes."""
    import os

    from mlops_template.stages.tune import local_map

    cores = os.cpu_count() or 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(cores))
    threads = local_map(_openmp_threads, [()] * 4, workers=2)
    assert threads == [max(1, cores // 2)] * 4


IN_SPACE = {  # tiny's defaults (learning_rate 0.1, min_samples_leaf 20) lie inside
    "hist_gradient_boosting": {
        "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
        "min_samples_leaf": {"low": 5, "high": 50},
    }
}


@pytest.mark.parametrize("space", [IN_SPACE, SPACE], ids=["defaults-in-space", "outside"])
@pytest.mark.parametrize("method", ["grid", "random", "bayesian", "evolutionary"])
def test_the_defaults_are_trial_zero_for_every_method(
    feats: pd.DataFrame, tiny: Params, method: str, space: dict[str, Any]
) -> None:
    """Trial 0 is params.yaml's own values (inside the space: enqueued in the Optuna study;
    outside it, e.g. learning_rate 0.1 not among SPACE's choices: scored before the study)."""
    result = _tune(feats, tiny, method=method, n_trials=3, space=space)
    section = tiny.train.hist_gradient_boosting
    first = result.trials.iloc[0]
    assert len(result.trials) == 3
    assert result.trials["defaults"].tolist() == [True, False, False]
    for name in space["hist_gradient_boosting"]:
        assert first[name] == getattr(section, name)
    assert first["score"] == pytest.approx(result.trials["score"].iloc[0])
    others = result.trials.iloc[1:]
    assert not any(
        all(row[k] == getattr(section, k) for k in space["hist_gradient_boosting"])
        for row in others.to_dict("records")
    ), "the later trials are the search's own candidates"


@pytest.mark.parametrize("method", ["grid", "random", "bayesian", "evolutionary"])
def test_a_search_whose_candidates_all_lose_returns_the_defaults(
    feats: pd.DataFrame, tiny: Params, method: str
) -> None:
    """Every candidate can only grow one leaf (min_samples_leaf above the rows): a constant
    model, ROC AUC 0.5. The search must hand back the defaults, not the least bad of those."""
    bad = {
        "hist_gradient_boosting": {
            "min_samples_leaf": {"choices": [100_000, 200_000]},
            "max_leaf_nodes": {"choices": [2]},
        }
    }
    result = _tune(feats, tiny, method=method, n_trials=3, space=bad)
    section = tiny.train.hist_gradient_boosting
    assert result.best_is_defaults
    assert result.best_params == {
        "min_samples_leaf": section.min_samples_leaf,
        "max_leaf_nodes": section.max_leaf_nodes,
    }
    scores = result.trials["score"]
    assert result.best_score == scores.iloc[0] > 0.6
    assert (scores.iloc[1:] == 0.5).all()


def test_a_tie_keeps_the_defaults(feats: pd.DataFrame, tiny: Params) -> None:
    """A candidate equal to the defaults scores the same: it does not replace them."""
    space = {"hist_gradient_boosting": {"max_leaf_nodes": {"choices": [31]}}}
    result = _tune(feats, tiny, method="grid", n_trials=2, space=space)
    assert result.trials["score"].nunique() == 1 and len(result.trials) == 2
    assert result.best_is_defaults


def test_small_training_splits_repeat_the_k_fold(feats: pd.DataFrame, tiny: Params) -> None:
    """Below tune.repeat_below_rows rows each trial's k-fold runs tune.repeats times, with
    different shuffles (another score than one k-fold); at or above it, once."""
    from mlops_template.model import cv_splitter

    one = {"hist_gradient_boosting": {"max_leaf_nodes": {"choices": [15]}}}
    small = _tune(feats, tiny, n_trials=1, space=one, repeats=3, repeat_below_rows=len(feats) + 1)
    large = _tune(feats, tiny, n_trials=1, space=one, repeats=3, repeat_below_rows=len(feats))
    off = _tune(feats, tiny, n_trials=1, space=one, repeats=1, repeat_below_rows=len(feats) + 1)
    assert (small.cv_repeats, large.cv_repeats, off.cv_repeats) == (3, 1, 1)
    assert large.best_score == off.best_score != small.best_score
    X, y = feats.drop(columns=["is_fraud"]), feats["is_fraud"]
    splits = list(cv_splitter("binary", 2, 0, repeats=3).split(X, y))
    assert len(splits) == 6
    assert len({tuple(val[:20]) for _, val in splits}) == 6


def linear_table(rows: int, seed: int) -> pd.DataFrame:
    """A label from a weighted sum of 12 numbers plus logistic noise, 400 rows: what a linear
    model gets right and 15 shallow trees only approximate."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 12))
    logit = X @ np.linspace(-1.5, 1.5, 12) + rng.logistic(size=rows)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
    return frame.assign(is_fraud=(logit > 0).astype(int))


TWO_KINDS = {
    "hist_gradient_boosting": {"learning_rate": {"choices": [0.03, 0.3]}},
    "linear": {"C": {"low": 0.01, "high": 10.0, "log": True}},
}


@pytest.mark.parametrize("method", ["grid", "random", "bayesian", "evolutionary"])
def test_tune_models_adds_a_kind_whose_defaults_come_second(
    feats: pd.DataFrame, tiny: Params, method: str
) -> None:
    """tune.models: trial 0 is train.model's defaults, trial 1 the linear model's own
    (train.linear), then the kinds take turns (Optuna: the kind is a parameter)."""
    result = _tune(feats, tiny, method=method, n_trials=6, space=TWO_KINDS, models=["linear"])
    trials = result.trials
    assert trials["model"].tolist()[:2] == ["hist_gradient_boosting", "linear"]
    assert trials["defaults"].tolist() == [True] + [False] * 5
    assert trials["C"].iloc[1] == tiny.train.linear.C
    assert trials["learning_rate"].iloc[0] == tiny.train.hist_gradient_boosting.learning_rate
    if method in ("grid", "random"):
        assert trials["model"].tolist()[2:] == ["hist_gradient_boosting", "linear"] * 2
    best = trials.loc[trials["score"].idxmax()]
    assert result.model == best["model"] and result.best_score == best["score"]
    assert set(result.best_params) == set(TWO_KINDS[result.model])
    assert result.searched == ("hist_gradient_boosting", "linear")


def test_the_kind_tune_finds_best_is_the_one_train_trains(
    tiny: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a table with a linear signal the linear model wins the CV: best_params.json names
    it, and `train` builds a logistic regression with the tuned C, though params.yaml still
    says hist_gradient_boosting."""
    from sklearn.linear_model import LogisticRegression

    from mlops_template import paths
    from mlops_template.model import make_pipeline
    from mlops_template.stages import tune
    from mlops_template.stages.train import tuned_params

    shutil.copy(DEMO_CONTRACT, tmp_path / "contract.yaml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    paths.TRAIN_FEATURES.parent.mkdir(parents=True)
    linear_table(400, seed=0).to_parquet(paths.TRAIN_FEATURES)
    update = {"space": TWO_KINDS, "models": ["linear"], "method": "random", "n_trials": 4}
    tune_params = TuneParams.model_validate(tiny.tune.model_dump() | update)
    params = tiny.model_copy(update={"tune": tune_params})
    tune.run(params)
    best = json.loads(paths.BEST_PARAMS.read_text())
    assert best["model"] == "linear" and best["searched"] == ["hist_gradient_boosting", "linear"]
    assert set(best["params"]) == {"C"}
    trials = pd.read_csv(paths.TUNE_TRIALS)
    by_kind = trials.groupby("model")["score"].max()
    assert by_kind["linear"] > by_kind["hist_gradient_boosting"]
    merged, source = tuned_params(params)
    assert merged.train.model == "linear" and best["params"]["C"] == merged.train.linear.C
    assert source == "tune:random (a linear model: it beat hist_gradient_boosting in tune's CV)"
    assert set(pd.read_csv(paths.TUNE_IMPORTANCE)["parameter"]) == {"C"}
    X = linear_table(50, seed=1).drop(columns="is_fraud")
    from mlops_template.model import column_roles

    pipeline = make_pipeline("binary", merged.train, column_roles(X))
    assert isinstance(pipeline.steps[-1][1], LogisticRegression)
    assert best["params"]["C"] == pipeline.steps[-1][1].C
    # params.yaml's train.model changed since: the stale result is refused, naming both
    other = params.model_copy(
        update={"train": params.train.model_copy(update={"model": "lightgbm"})}
    )
    with pytest.raises(ConfigError, match=r"tuned for model 'hist_gradient_boosting'.*lightgbm"):
        tuned_params(other)


def test_on_dask_only_kinds_that_train_on_a_cluster_are_searched(tiny: Params) -> None:
    from mlops_template.stages.tune import kinds

    tune = tiny.tune.model_copy(update={"models": ["linear", "lightgbm", "linear"]})
    assert kinds(tiny.train, tune) == ["hist_gradient_boosting", "linear", "lightgbm"]
    lightgbm = tiny.train.model_copy(update={"model": "lightgbm"})
    assert kinds(lightgbm, tune, DaskParams(enabled=True)) == ["lightgbm"]


def test_the_best_values_keep_their_types_across_kinds(
    feats: pd.DataFrame, tiny: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column one kind leaves empty is float in the trials table (NaN): the winner's values
    come back typed by its section (max_leaf_nodes 15, not 15.0)."""
    from mlops_template.stages import tune

    def scored(*args: Any) -> tuple[float, float]:
        cand = args[4]
        return (0.9 if cand.get("max_leaf_nodes") == 15 else 0.6), 0.0

    monkeypatch.setattr(tune, "_timed", scored)
    space = {
        "hist_gradient_boosting": {"max_leaf_nodes": {"choices": [15, 63]}},
        "linear": {"C": {"low": 0.01, "high": 10.0, "log": True}},
    }
    result = _tune(feats, tiny, method="random", n_trials=6, space=space, models=["linear"])
    assert result.trials["max_leaf_nodes"].dtype == "float64"  # NaN on the linear rows
    assert result.model == "hist_gradient_boosting"
    assert result.best_params == {"max_leaf_nodes": 15}
    assert type(result.best_params["max_leaf_nodes"]) is int
