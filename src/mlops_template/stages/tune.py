"""The `tune` stage: hyper-parameter search with k-fold CV on the training split only.

grid / random (scikit-learn samplers), bayesian (Optuna TPE) and evolutionary (Optuna NSGA-II)
all reduce to the same thing: propose a batch of candidate params, cross-validate each one
(locally with joblib, or on a Dask cluster), keep the best. Trial 0 is always the model's own
defaults (params.yaml's ``train.<model>`` section), scored by the same CV; a candidate must
beat it strictly, so a search whose candidates all score worse returns the defaults. The
search covers ``train.model`` and the model kinds ``tune.models`` adds (each kind's own
defaults are its first trial, then the kinds take turns; Optuna picks the kind as one more
parameter): the best kind is what `train` trains. With
``tune.repeats > 1``, on a small training split (below ``tune.repeat_below_rows`` rows) the
k-fold is repeated that many times. The result goes to models/best_params.json, which `train`
reads.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, TypeVar

import pandas as pd

from mlops_template import io, paths
from mlops_template.config import DaskParams, Params, Task, TrainParams, TuneParams
from mlops_template.errors import ConfigError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_score: float
    metric: str
    trials: pd.DataFrame  # one row per trial: number, model, params..., score, seconds, defaults
    best_is_defaults: bool = False  # no candidate beat trial 0 (the configured defaults)
    cv_repeats: int = 1  # times the k-fold ran per trial (tune.repeats on a small split)
    model: str = ""  # the kind of the best trial (train.model or one of tune.models)
    searched: tuple[str, ...] = ()  # train.model first, then the kinds tune.models added


def metric_for(task: Task, tune: TuneParams) -> tuple[str, bool]:
    from mlops_template.metrics import HIGHER_IS_BETTER

    name = tune.metric or ("rmse" if task == "regression" else "roc_auc")
    if name not in HIGHER_IS_BETTER:
        raise ConfigError(
            f"tune.metric: unknown metric {name!r}; one of {sorted(HIGHER_IS_BETTER)}"
        )
    return name, HIGHER_IS_BETTER[name]


def kinds(train: TrainParams, tune: TuneParams, dask: DaskParams | None = None) -> list[str]:
    """The model kinds searched: ``train.model``, then ``tune.models`` (with ``dask.enabled``
    only those that train on a cluster, as `train` will)."""
    from mlops_template.estimators import ESTIMATORS

    out = [train.model]
    for model in tune.models:
        if model in out:
            continue
        if dask is not None and dask.enabled and not ESTIMATORS[model].on_dask:
            log.info("tune: %s trains in one process only; not searched with dask.enabled", model)
            continue
        out.append(model)
    return out


def _space(train: TrainParams, tune: TuneParams, model: str) -> dict[str, Any]:
    """``tune.space.<model>``; empty is a config error naming it."""
    space = tune.space.get(model) or {}
    if not space:
        chosen = "the chosen train.model" if model == train.model else "tune.models"
        raise ConfigError(f"tune.space.{model}: empty search space for {chosen}")
    return space


def spaces(
    train: TrainParams, tune: TuneParams, dask: DaskParams | None = None
) -> dict[str, dict[str, Any]]:
    """The search space of each model kind searched (:func:`kinds`, in that order)."""
    return {model: _space(train, tune, model) for model in kinds(train, tune, dask)}


def check(params: Params) -> None:
    """Fail before any work: empty space, unknown hyper-parameter, invalid bounds, for each
    model kind searched."""
    tune = params.tune
    for model in kinds(params.train, tune, params.dask):  # each kind checked whole, in turn
        space = _space(params.train, tune, model)
        section = getattr(params.train, model)
        for name, dim in space.items():
            if name not in type(section).model_fields:
                raise ConfigError(f"tune.space.{model}.{name}: not a hyper-parameter of {model}")
            samples = dim.choices if dim.choices is not None else [dim.low, dim.high]
            for value in samples:
                try:
                    section.model_copy().__setattr__(name, value)
                except Exception as err:  # pydantic ValidationError: outside the model's range
                    raise ConfigError(
                        f"tune.space.{model}.{name}: {value!r} is invalid: {err}"
                    ) from None
    metric_for(params.data.task, tune)


def on_dask(dask: DaskParams) -> bool:
    """Trials run on Dask with ``dask.enabled``, or (as before the ``dask`` section) when env
    MLOPS_DASK_ADDRESS names a scheduler."""
    return dask.enabled or bool(os.environ.get(paths.ENV_DASK_ADDRESS))


def cv_score(
    X: pd.DataFrame,
    y: pd.Series,
    task: Task,
    train: TrainParams,
    overrides: dict[str, Any],
    folds: int,
    seed: int,
    metric: str,
    repeats: int = 1,
    on_fold: Callable[[int, float], bool] | None = None,
) -> float:
    """Mean validation score of one candidate over k folds (``repeats`` times, reshuffled)
    of the training rows given."""
    import numpy as np

    from mlops_template import metrics
    from mlops_template.model import (
        column_roles,
        cv_splitter,
        fit,
        fold_output,
        make_pipeline,
        refits_after_stopping,
    )

    values = {k: v for k, v in overrides.items() if k != "model"}
    params = train.with_overrides(values, overrides.get("model", ""))
    refit = refits_after_stopping(params)
    roles = column_roles(X)
    splitter = cv_splitter(task, folds, seed, repeats)
    every = np.unique(y.to_numpy()) if task == "multiclass" else np.empty(0)
    scores = []
    for fit_idx, val_idx in splitter.split(X, y):
        model = make_pipeline(task, params, roles)
        fit(model, X.iloc[fit_idx], y.iloc[fit_idx], refit=refit)
        out, classes = fold_output(model, X.iloc[val_idx], task, every)
        scores.append(metrics.score(task, y.iloc[val_idx], out, classes)[metric])
        if on_fold is not None and on_fold(len(scores), float(np.nanmean(scores))):
            raise Pruned(float(np.nanmean(scores)))
    return float(np.nanmean(scores))


class Pruned(Exception):
    """Raised by cv_score when the pruner stops a bad trial after some folds."""

    def __init__(self, score: float) -> None:
        super().__init__(f"pruned at running score {score:.5f}")
        self.score = score


def _timed(*args: Any) -> tuple[float, float]:
    start = time.perf_counter()
    return cv_score(*args), time.perf_counter() - start


def defaults(train: TrainParams, space: dict[str, Any], model: str = "") -> dict[str, Any]:
    """The configured value of each searched hyper-parameter of ``model`` (default
    ``train.model``): what `train` uses untuned."""
    section = getattr(train, model or train.model)
    return {name: getattr(section, name) for name in space}


def in_space(values: dict[str, Any], space: dict[str, Any]) -> bool:
    """Whether a point lies in the search space (Optuna can only be told about such points)."""
    for name, d in space.items():
        v = values[name]
        if d.choices is not None:
            ok = v in d.choices
        else:
            number = isinstance(v, int | float) and not isinstance(v, bool)
            ok = number and d.low <= v <= d.high and not (d.integer and v != int(v))
        if not ok:
            return False
    return True


def cv_repeats(tune: TuneParams, rows: int) -> int:
    """How many times the k-fold is repeated: ``tune.repeats`` on a small training split."""
    return tune.repeats if rows < tune.repeat_below_rows else 1


def _grid_or_random(
    tune: TuneParams, space: dict[str, Any], n: int | None = None
) -> Iterator[dict[str, Any]]:
    """The candidates, drawn as they are needed: with a large ``n_trials`` and a timeout
    (the wall time binds), drawing them all first took longer than the timeout itself."""
    import numpy as np
    from scipy import stats
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    if tune.method == "grid":
        grid = {}
        for name, d in space.items():
            if d.choices is not None:
                grid[name] = list(d.choices)
            elif d.log:
                grid[name] = list(np.geomspace(d.low, d.high, tune.grid_points))
            else:
                grid[name] = list(np.linspace(d.low, d.high, tune.grid_points))
            if d.integer:
                grid[name] = sorted({round(float(v)) for v in grid[name]})
        n = tune.n_trials if n is None else n
        cands: Iterable[dict[str, Any]] = itertools.islice(ParameterGrid(grid), n)
    else:
        dists: dict[str, Any] = {}
        for name, d in space.items():
            if d.choices is not None:
                dists[name] = list(d.choices)
            elif d.integer:
                dists[name] = stats.randint(d.low, d.high + 1)
            elif d.log:
                dists[name] = stats.loguniform(d.low, d.high)
            else:
                dists[name] = stats.uniform(d.low, d.high - d.low)
        n = tune.n_trials if n is None else n
        cands = ParameterSampler(dists, n, random_state=tune.seed) if n else []
    return ({k: (v.item() if hasattr(v, "item") else v) for k, v in c.items()} for c in cands)


def _candidates(
    tune: TuneParams, spaces: dict[str, dict[str, Any]], n: int
) -> Iterator[dict[str, Any]]:
    """Up to ``n`` candidates ``{"model": kind, **values}``, the kinds taking turns (a kind
    whose grid is used up leaves the turns to the others)."""

    def tagged(model: str, space: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for values in _grid_or_random(tune, space, n):
            yield {"model": model, **values}

    streams = [tagged(model, space) for model, space in spaces.items()]
    turns = itertools.chain.from_iterable(itertools.zip_longest(*streams))
    return itertools.islice((c for c in turns if c is not None), n)


def local_map(fn: Callable[..., T], args: list[tuple[Any, ...]], workers: int) -> list[T]:
    """``[fn(*a) for a in args]`` on ``workers`` local processes (joblib), each limited to its
    share of the cores for OpenMP/BLAS threads, whatever OMP_NUM_THREADS says: joblib keeps a
    thread variable set in the environment, and 2 workers x OMP_NUM_THREADS=2 on 2 cores made
    a 10 s search take minutes (OpenMP threads spinning against each other)."""
    if workers == 1:
        return [fn(*a) for a in args]
    from joblib import Parallel, delayed, parallel_config

    threads = max(1, (os.cpu_count() or 1) // workers)
    with parallel_config(backend="loky", inner_max_num_threads=threads):
        return list(Parallel(n_jobs=workers)(delayed(fn)(*a) for a in args))


class _Runner:
    """Evaluates a batch of candidates: joblib processes locally, or a Dask cluster
    (``dask.address``, or a LocalCluster sized by the ``dask`` section)."""

    def __init__(self, tune: TuneParams, dask: DaskParams) -> None:
        self.client: Any = None
        self.workers = tune.n_workers
        self._stack = ExitStack()
        if on_dask(dask):
            from mlops_template.distributed import connect

            self.client = self._stack.enter_context(connect(dask))
            self.workers = max(1, len(self.client.scheduler_info()["workers"]))
            log.info("tune: running trials on Dask (%d workers)", self.workers)

    def map(self, args: list[tuple[Any, ...]]) -> list[tuple[float, float]]:
        if self.client is not None:
            futures = [self.client.submit(_timed, *a, pure=False) for a in args]
            return list(self.client.gather(futures))
        return local_map(_timed, args, self.workers)

    def close(self) -> None:
        self._stack.close()


def tune(
    features: pd.DataFrame,
    *,
    target: str,
    task: Task,
    train: TrainParams,
    params: TuneParams,
    dask: DaskParams | None = None,
) -> TuneResult:
    """Search ``params.space`` of ``train.model`` and of the kinds ``params.models`` adds,
    with k-fold CV on ``features`` (training split only)."""
    searched_spaces = spaces(train, params, dask)
    searched = list(searched_spaces)
    metric, higher = metric_for(task, params)
    X, y = features.drop(columns=[target]), features[target]
    if len(X) > params.max_rows:
        keep = X.sample(n=params.max_rows, random_state=params.seed).index
        X, y = X.loc[keep], y.loc[keep]
    X, y = X.reset_index(drop=True), y.reset_index(drop=True)
    repeats = cv_repeats(params, len(X))
    if repeats > 1:
        log.info(
            "tune: %d training rows < tune.repeat_below_rows=%d: %d-fold CV repeated %d times",
            len(X),
            params.repeat_below_rows,
            params.folds,
            repeats,
        )
    # trial 0: train's configured model as it stands; then each other kind's own defaults
    starts = [{"model": m, **defaults(train, searched_spaces[m], m)} for m in searched]
    runner = _Runner(params, dask or DaskParams())
    deadline = time.monotonic() + (params.timeout_seconds or float("inf"))
    rows: list[dict[str, Any]] = []

    def record(cand: dict[str, Any], row: dict[str, Any]) -> None:
        rows.append({"number": len(rows), **cand, **row, "defaults": not rows})

    def evaluate(cands: list[dict[str, Any]]) -> list[float]:
        args = [(X, y, task, train, c, params.folds, params.seed, metric, repeats) for c in cands]
        results = runner.map(args)
        for c, (score, secs) in zip(cands, results, strict=True):
            record(c, {"score": score, "seconds": round(secs, 3)})
            log.info(
                "tune trial %d/%d%s: %s=%.5f %s",
                len(rows),
                params.n_trials,
                " (defaults)" if len(rows) == 1 else "",
                metric,
                score,
                c,
            )
        return [s for s, _ in results]

    def evaluate_pruned(cand: dict[str, Any], report: Callable[[int, float], bool]) -> float:
        """One trial in this process, reporting each fold to the Optuna pruner."""
        began, state = time.perf_counter(), "complete"
        args = (X, y, task, train, cand, params.folds, params.seed, metric, repeats)
        try:
            score = cv_score(*args, on_fold=report)
        except Pruned as stop:
            score, state = stop.score, "pruned"
        secs = round(time.perf_counter() - began, 3)
        kept = score if state == "complete" else None
        record(cand, {"score": kept, "seconds": secs, "state": state})
        log.info(
            "tune trial %d/%d (%s): %s=%.5f %s",
            len(rows),
            params.n_trials,
            state,
            metric,
            score,
            cand,
        )
        if state == "pruned":
            raise Pruned(score)
        return score

    prune = params.pruning and runner.client is None and runner.workers == 1
    if params.pruning and not prune:
        log.warning("tune.pruning works with n_workers: 1 and no Dask; ignored here")
    try:
        if params.method in ("grid", "random"):
            # Trial 0: the defaults, alone in the first batch (a search always has them).
            drawn = _candidates(params, searched_spaces, max(0, params.n_trials - len(starts)))
            cands = itertools.islice(itertools.chain(starts, drawn), params.n_trials)
            # Independent candidates: hand the workers several per worker at once, so a slow
            # trial does not leave the other workers idle; the deadline is checked between
            # (after the first batch: a search always has a result).
            chunk = runner.workers if runner.workers == 1 else 4 * runner.workers
            evaluate([next(cands)])
            while time.monotonic() <= deadline and (batch := list(itertools.islice(cands, chunk))):
                evaluate(batch)
        else:
            _optuna(
                params,
                searched_spaces,
                higher,
                evaluate,
                runner.workers,
                deadline,
                evaluate_pruned if prune else None,
                starts,
            )
    finally:
        runner.close()
    trials = pd.DataFrame(rows)
    if "state" not in trials:
        trials["state"] = "complete"
    trials["score"] = trials["score"].astype("float64")
    # idxmax/idxmin take the first of equal scores: a candidate must beat trial 0 (the
    # defaults) strictly to replace them.
    best = trials["score"].idxmax() if higher else trials["score"].idxmin()
    model = str(trials.loc[best, "model"])
    best_params = {k: trials.loc[best, k] for k in searched_spaces[model]}
    best_params = {k: (v.item() if hasattr(v, "item") else v) for k, v in best_params.items()}
    # typed by the kind's section (a column that other kinds leave NaN is float: 31.0 -> 31)
    typed = getattr(train.with_overrides(best_params, model), model)
    best_params = {k: getattr(typed, k) for k in best_params}
    if bool(trials.loc[best, "defaults"]):
        log.info("tune: no candidate beat the defaults (trial 0); keeping them")
    elif model != train.model:
        log.info("tune: the best trial is a %s model (train.model: %s)", model, train.model)
    return TuneResult(
        best_params,
        float(trials.loc[best, "score"]),
        metric,
        trials,
        bool(trials.loc[best, "defaults"]),
        repeats,
        model,
        tuple(searched),
    )


def _optuna(
    tune: TuneParams,
    spaces: dict[str, dict[str, Any]],
    higher: bool,
    evaluate: Any,
    batch: int,
    deadline: float,
    evaluate_pruned: Any = None,
    starts: list[dict[str, Any]] | None = None,
) -> None:
    """Ask/tell in batches. ``starts`` (each kind's defaults, trial 0 first) are enqueued, so
    the sampler learns from them, when each lies in its space; else scored first, outside the
    study. With several kinds the kind is one more (categorical) parameter, ``model``, and
    each kind's parameters are named ``<kind>.<name>`` (kinds may share a name, not a range)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.TPESampler(seed=tune.seed)
        if tune.method == "bayesian"
        else optuna.samplers.NSGAIISampler(  # genetic; pure Optuna, no extra dependency
            population_size=max(2, min(tune.n_trials // 2, 50)), seed=tune.seed
        )
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    study = optuna.create_study(
        direction="maximize" if higher else "minimize", sampler=sampler, pruner=pruner
    )
    several = len(spaces) > 1

    def named(model: str, name: str) -> str:
        return f"{model}.{name}" if several else name

    starts = list(starts or [])[: tune.n_trials]
    done = 0
    batch_first = batch
    if starts and all(in_space(c, spaces[c["model"]]) for c in starts):
        for start in starts:
            values = {named(start["model"], k): v for k, v in start.items() if k != "model"}
            study.enqueue_trial(values | ({"model": start["model"]} if several else {}))
        batch_first = 1  # trial 0 alone: it is scored even if the deadline allows nothing else
    elif starts:
        evaluate(starts)
        done = batch_first = len(starts)
    while done < tune.n_trials and (done == 0 or time.monotonic() < deadline):
        n = min(batch if done else batch_first, tune.n_trials - done)
        trials = [study.ask() for _ in range(n)]
        cands = []
        for t in trials:
            model = t.suggest_categorical("model", list(spaces)) if several else next(iter(spaces))
            c: dict[str, Any] = {"model": model}
            for name, d in spaces[model].items():
                key = named(model, name)
                if d.choices is not None:
                    c[name] = t.suggest_categorical(key, d.choices)
                elif d.integer:
                    c[name] = t.suggest_int(key, d.low, d.high, log=d.log)
                else:
                    c[name] = t.suggest_float(key, d.low, d.high, log=d.log)
            cands.append(c)
        done += n
        if evaluate_pruned is not None:
            t, c = trials[0], cands[0]
            try:
                study.tell(t, evaluate_pruned(c, _reporter(t)))
            except Pruned:
                study.tell(t, state=optuna.trial.TrialState.PRUNED)
            continue
        for t, s in zip(trials, evaluate(cands), strict=True):
            study.tell(t, s)


def _reporter(trial: Any) -> Callable[[int, float], bool]:
    """Per-fold callback: report the running CV score, answer whether to prune."""

    def report(step: int, value: float) -> bool:
        trial.report(value, step)
        return bool(trial.should_prune())

    return report


def history(result: TuneResult, higher: bool) -> pd.DataFrame:
    """Optimisation history: each trial's score and the best so far (a DVC plot)."""
    scores = result.trials["score"]
    best = scores.cummax() if higher else scores.cummin()
    return pd.DataFrame({"trial": result.trials["number"], "score": scores, "best": best})


def importance(result: TuneResult, space: dict[str, Any], higher: bool) -> pd.DataFrame:
    """Parameter importance (Optuna fANOVA) over the finished trials of the best trial's model
    kind (``space``: that kind's), whatever the method."""
    import optuna
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dists: dict[str, Any] = {}
    for name, d in space.items():
        if d.choices is not None:
            dists[name] = CategoricalDistribution(d.choices)
        elif d.integer:
            dists[name] = IntDistribution(d.low, d.high, log=d.log)
        else:
            dists[name] = FloatDistribution(d.low, d.high, log=d.log)
    study = optuna.create_study(direction="maximize" if higher else "minimize")
    done = result.trials[result.trials["state"] == "complete"]
    if result.model:  # the best kind's trials: its parameters are the ones asked about
        done = done[done["model"] == result.model]
    done = done[[in_space({k: row[k] for k in space}, space) for row in done.to_dict("records")]]
    for row in done.to_dict("records"):
        values = {k: row[k] for k in space}
        study.add_trial(
            optuna.trial.create_trial(params=values, distributions=dists, value=row["score"])
        )
    if len(done) < 2 or done["score"].nunique() < 2:
        scores = dict.fromkeys(space, 0.0)
    else:
        scores = optuna.importance.get_param_importances(study)
    return pd.DataFrame({"parameter": list(scores), "importance": list(scores.values())})


def log_to_mlflow(result: TuneResult, params: Params) -> str:
    """One parent run for the search, one nested child run per trial; best trial tagged."""
    from mlops_template import tracking

    mlflow = tracking.connect(params.tracking.experiment)
    tags = {"stage": "tune", "method": params.tune.method}
    with (
        tracking.guarded("log the tuning runs"),
        tracking.start_run(mlflow, tags, run_name="tune") as parent,
    ):
        mlflow.log_params(
            {
                "method": params.tune.method,
                "model": params.train.model,
                "n_trials": len(result.trials),
                "metric": result.metric,
                "defaults_trial": 0,
                "cv_repeats": result.cv_repeats,
                "searched": ",".join(result.searched or [params.train.model]),
            }
        )
        for row in result.trials.to_dict("records"):
            best = row["score"] == result.best_score
            kind = row.get("model", params.train.model)
            with tracking.start_run(mlflow, run_name=f"trial-{row['number']}", nested=True):
                names = params.tune.space.get(kind) or result.best_params
                mlflow.log_params({"model": kind} | {k: row[k] for k in names})
                if row["state"] == "complete":
                    mlflow.log_metric(result.metric, row["score"])
                mlflow.set_tag("state", row["state"])
                mlflow.set_tag("best", str(best).lower())
                mlflow.set_tag("defaults", str(bool(row["defaults"])).lower())
        mlflow.set_tag("best_is_defaults", str(result.best_is_defaults).lower())
        mlflow.log_metric(f"best_{result.metric}", result.best_score)
        mlflow.log_params({"best.model": result.model or params.train.model})
        mlflow.log_params({f"best.{k}": v for k, v in result.best_params.items()})
        return str(parent.info.run_id)


def run(params: Params) -> None:
    """Entry point of the `tune` stage. Disabled: write the marker quickly, import nothing heavy."""
    if not params.tune.enabled:
        io.write_json({"source": "params.yaml", "params": {}}, paths.BEST_PARAMS)
        io.write_text("tuning disabled (tune.enabled: false)\n", paths.TUNE_DIR / "README.txt")
        log.info("tune: disabled; train uses params.yaml")
        return
    check(params)
    from mlops_template.contract import load_contract

    contract = load_contract(params.data.contract)
    features = pd.read_parquet(paths.TRAIN_FEATURES)  # the training split only
    result = tune(
        features,
        target=contract.target,
        task=params.data.task,
        train=params.train,
        params=params.tune,
        dask=params.dask,
    )
    run_id = log_to_mlflow(result, params)
    higher = metric_for(params.data.task, params.tune)[1]
    space = params.tune.space[result.model]
    io.write_csv(result.trials, paths.TUNE_TRIALS)
    io.write_csv(history(result, higher), paths.TUNE_HISTORY)
    io.write_csv(importance(result, space, higher), paths.TUNE_IMPORTANCE)
    io.write_json(
        {
            "source": f"tune:{params.tune.method}",
            "model": result.model,  # the best trial's kind: train trains this one
            "searched": list(result.searched),  # train.model first
            "metric": result.metric,
            "score": result.best_score,
            "best_is_defaults": result.best_is_defaults,
            "defaults_trial": 0,
            "mlflow_run_id": run_id,
            "params": result.best_params,
        },
        paths.BEST_PARAMS,
    )
    log.info("tune: best %s=%.5f with %s", result.metric, result.best_score, result.best_params)
