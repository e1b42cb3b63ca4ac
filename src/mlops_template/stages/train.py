"""The `train` stage: a scikit-learn Pipeline chosen in params, cross-validated, then fitted.

The saved artifact (models/model.skops) is the whole inference pipeline: the stateless
feature function, then imputation/encoding/scaling, then the estimator. Serving and
evaluation call it on raw, contract-valid rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_template import io, metrics, paths, tracking
from mlops_template.config import EvaluateParams, FeaturesParams, Params, Task, TrainParams
from mlops_template.contract import load_contract, pii_features, redact
from mlops_template.errors import ConfigError
from mlops_template.features import feature_transformer
from mlops_template.metric_directions import PRIMARY
from mlops_template.model import (
    ModelMeta,
    column_roles,
    cv_splitter,
    file_sha256,
    fit,
    fold_output,
    iterations_from_cv,
    make_pipeline,
    model_output,
    python_version,
    refits_after_stopping,
    save,
    stopped_at,
    with_iterations,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)

# A cross-validation fold this far below the median of the others (in the task's primary
# metric: ROC AUC, accuracy, R²) is named in a warning (and counted in cv_low_folds).
LOW_FOLD_GAP = 0.1


def cross_validate(
    pipeline: Any,
    X: pd.DataFrame,
    y: pd.Series,
    task: Task,
    params: TrainParams,
    stopped: list[int] | None = None,
    split_rows: int | None = None,
) -> tuple[dict[str, float], pd.Series, np.ndarray | None]:
    """k-fold CV on (a seeded sample of at most cv.max_rows of) the training split.

    Returns the mean and std per metric, the rows cross-validated (``cv_rows``) of the
    split's (``cv_split_rows``: ``split_rows`` when ``X`` is already a sample of it, as on
    Dask), and the labels and out-of-fold outputs of the rows cross-validated (what
    `evaluate.threshold: auto` chooses the threshold on). ``stopped``: the iteration count of
    each fold whose early stopping ran is appended to it."""
    from sklearn.base import clone

    split_rows = len(X) if split_rows is None else split_rows
    if len(X) > params.cv.max_rows:
        sample = X.sample(n=params.cv.max_rows, random_state=params.seed).index
        X, y = X.loc[sample], y.loc[sample]
    folds: list[dict[str, float]] = []
    oof: np.ndarray | None = None
    splitter = cv_splitter(task, params.cv.folds, params.seed)
    every = np.unique(y.to_numpy()) if task == "multiclass" else np.empty(0)
    refit = refits_after_stopping(params)
    for i, (fit_idx, val_idx) in enumerate(splitter.split(X, y), start=1):
        start = time.perf_counter()
        model = fit(clone(pipeline), X.iloc[fit_idx], y.iloc[fit_idx], refit=refit)
        count = stopped_at(model)
        if stopped is not None and count is not None:
            stopped.append(count)
        output, classes = fold_output(model, X.iloc[val_idx], task, every)
        if oof is None:
            oof = np.zeros((len(X), *output.shape[1:]))
        oof[val_idx] = output
        folds.append(metrics.score(task, y.iloc[val_idx], output, classes))
        shown = ", ".join(f"{k}={v:.4f}" for k, v in list(folds[-1].items())[:4])
        log.info(
            "cv fold %d/%d (%.1fs): %s", i, params.cv.folds, time.perf_counter() - start, shown
        )
    summary: dict[str, float] = {}
    for key in folds[0]:
        values = np.array([f[key] for f in folds])
        summary[f"cv_{key}_mean"] = round(float(np.nanmean(values)), 6)
        summary[f"cv_{key}_std"] = round(float(np.nanstd(values)), 6)
    primary = PRIMARY[task]
    scores = [f[primary] for f in folds]
    summary[f"cv_{primary}_min"] = round(float(np.nanmin(scores)), 6)
    summary[f"cv_{primary}_max"] = round(float(np.nanmax(scores)), 6)
    low = low_folds(scores)
    summary["cv_low_folds"] = float(len(low))
    summary["cv_rows"], summary["cv_split_rows"] = len(X), split_rows  # a seeded sample if less
    for i in low:
        others = ", ".join(f"{v:.4f}" for j, v in enumerate(scores) if j != i)
        log.warning(
            "cv fold %d/%d: %s %.4f is far below the other folds (%s): the model is unstable "
            "on this table (a small or unusual group of rows? a leaking or drifting column?)",
            i + 1,
            len(scores),
            primary,
            scores[i],
            others,
        )
    return summary, y, oof


def low_folds(values: list[float], floor: float = LOW_FOLD_GAP) -> list[int]:
    """Indices of folds whose (higher-is-better) metric is below the median of the other
    folds by more than ``floor`` and by more than three median absolute deviations of the
    others: one bad fold in five is what a mean +- std hides."""
    low = []
    for i, value in enumerate(values):
        others = np.array([v for j, v in enumerate(values) if j != i], dtype="float64")
        others = others[np.isfinite(others)]
        if not np.isfinite(value) or len(others) < 2:
            continue
        centre = float(np.median(others))
        spread = float(np.median(np.abs(others - centre)))
        if centre - value > max(floor, 3 * spread):
            low.append(i)
    return low


def choose_threshold(
    y: pd.Series, oof: np.ndarray | None, classes: list[Any], params: EvaluateParams
) -> tuple[float, str]:
    """The binary decision threshold: the number in params, or (``auto``) the one that best
    meets ``threshold_objective`` on the out-of-fold CV outputs of the training split."""
    if params.threshold != "auto":
        return float(params.threshold), "params"
    from sklearn.metrics import precision_recall_curve

    assert oof is not None
    precision, recall, cuts = precision_recall_curve(y == classes[1], oof)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    goal, level = params.threshold_objective, params.threshold_level
    if goal == "max_f1":
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        best = int(np.argmax(f1))
    else:
        met = precision >= level if goal == "min_precision" else recall >= level
        if not met.any():
            raise ConfigError(
                f"evaluate.threshold_objective: no threshold reaches {goal} {level} on the "
                "out-of-fold training predictions; lower evaluate.threshold_level"
            )
        other = recall if goal == "min_precision" else precision
        best = int(np.argmax(np.where(met, other, -1.0)))
    how = f"auto: {goal}" + ("" if goal == "max_f1" else f" {level}")
    how += f" on out-of-fold CV (precision {precision[best]:.4f}, recall {recall[best]:.4f})"
    return round(float(cuts[best]), 6), how


@dataclass
class TrainResult:
    model: Any  # the full inference pipeline: features -> preprocess -> estimator
    cv_metrics: dict[str, float]
    input_columns: list[str]
    classes: list[Any] | None
    threshold: float | None = None
    threshold_source: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def train(
    features: pd.DataFrame,
    *,
    raw_columns: list[str],
    target: str,
    task: Task,
    params: TrainParams,
    feature_spec: FeaturesParams,
    evaluate: EvaluateParams | None = None,
    fit_all: Callable[[Any], Any] | None = None,
    split_rows: int | None = None,
) -> TrainResult:
    """Cross-validate, fit on the whole training split, and wrap with the feature function.

    ``features`` is the output of the `features` stage; ``raw_columns`` are the contract's
    input columns that the returned pipeline expects at inference time. For a binary task
    the decision threshold is chosen here (``evaluate.threshold``) and stored with the model.
    ``fit_all``: fits the (unfitted) pipeline on the whole split elsewhere (on a Dask
    cluster, :func:`run_on_dask`); ``features`` is then the seeded sample CV runs on, of the
    split's ``split_rows``.
    """
    from sklearn.pipeline import Pipeline

    if target not in features.columns:
        raise ConfigError(f"train: target column {target!r} is not in the features")
    X, y = features.drop(columns=[target]), features[target]
    if task != "regression" and y.nunique() < 2:
        raise ConfigError(f"data.task: {task!r} needs at least 2 classes in {target!r}")
    pipeline = make_pipeline(task, params, column_roles(X))
    timings: dict[str, float] = {}

    start = time.perf_counter()
    stopped: list[int] = []
    cv_metrics, cv_y, oof = cross_validate(pipeline, X, y, task, params, stopped, split_rows)
    timings["cv_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    refit = refits_after_stopping(params)
    if iterations_from_cv(params):  # early_stopping_refit: cv, every row, no second fit
        pipeline = with_iterations(pipeline, stopped)
    fitted = fit(pipeline, X, y, refit=refit) if fit_all is None else fit_all(pipeline)
    timings["fit_seconds"] = time.perf_counter() - start
    where = "on Dask" if fit_all is not None else f"on {len(X)} rows"
    log.info("fitted %s %s in %.1fs", params.model, where, timings["fit_seconds"])

    features_step = feature_transformer(feature_spec)
    _forget_thread_count(fitted)
    inference = Pipeline([("features", features_step), ("model", fitted)])
    features_step.fit(None)
    classes = fitted.classes_.tolist() if task != "regression" else None
    threshold, source = None, None
    if task == "binary":
        assert classes is not None
        threshold, source = choose_threshold(cv_y, oof, classes, evaluate or EvaluateParams())
        log.info("decision threshold %s (%s)", threshold, source)
    return TrainResult(inference, cv_metrics, raw_columns, classes, threshold, source, timings)


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, for MLflow params."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def logged_params(params: Params) -> dict[str, Any]:
    """What a training run is described by: the task, the source and the chosen model's knobs."""
    chosen = params.train.model
    return {
        "data": {"task": params.data.task, "source": params.data.source},
        "train": {
            "model": chosen,
            "seed": params.train.seed,
            "cv": params.train.cv.model_dump(),
            chosen: params.train.estimator_params(),
        },
    }


def _input_example(raw: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    complete = raw.dropna()
    return (complete if len(complete) >= rows else raw).head(rows).reset_index(drop=True)


def log_to_mlflow(
    result: TrainResult,
    params: Params,
    raw_sample: pd.DataFrame,
    contract_name: str,
    params_source: str = "params.yaml",
    mlflow: Any = None,
) -> dict[str, Any]:
    """Log params, CV metrics and the model (with signature); register it. Returns run info.

    ``mlflow``: the module as :func:`tracking.connect` returned it, if the caller connected
    already (opening the store is the slow part)."""
    from importlib import metadata

    if mlflow is None:
        mlflow = tracking.connect(params.tracking.experiment)
    from mlflow.models import infer_signature

    example = _input_example(raw_sample)
    with tracking.guarded("find runs of killed trainings"):
        tracking.reap_orphans(mlflow, params.tracking.experiment)
    tags = {"stage": "train", "task": params.data.task, "model": params.train.model}
    tags |= {"contract": contract_name}
    with tracking.guarded("log the training run"), tracking.start_run(mlflow, tags) as active:
        mlflow.log_params(flatten(logged_params(params)))
        mlflow.set_tag("params_source", params_source)
        mlflow.log_metrics(result.cv_metrics | result.timings)  # timings: MLflow only
        signature = infer_signature(example, model_output(result.model, example, params.data.task))
        requirements = [
            f"{name}=={metadata.version(name)}"
            for name in ("scikit-learn", "pandas", "numpy", "pydantic", "pyyaml", "cloudpickle")
        ]
        info = mlflow.sklearn.log_model(
            result.model,
            name="model",
            signature=signature,
            input_example=example,
            registered_model_name=params.tracking.registered_model,
            serialization_format="cloudpickle",
            pip_requirements=requirements,
            code_paths=[str(Path(__file__).parent)],
        )
        version = getattr(info, "registered_model_version", None)
        return {
            "run_id": active.info.run_id,
            "model_uri": info.model_uri,
            "registered_model": params.tracking.registered_model,
            "version": None if version is None else str(version),
            # the model's age (monitor.max_model_age_days): a wall time of the run, so it
            # lives here, outside what the model's version hashes
            "trained_at": _utc(active.info.start_time),
        }


def _utc(epoch_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="seconds")


def head(path: Path, rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of a Parquet file (what ``read_parquet(path).head(rows)``
    gives), reading one batch instead of the whole split; or of a partitioned Parquet
    folder (a split written on Dask)."""
    import pyarrow.parquet as pq

    if Path(path).is_dir():
        return pd.read_parquet(sorted(Path(path).glob("*.parquet"))[0]).head(rows)
    with pq.ParquetFile(path) as pf:
        batches = pf.iter_batches(batch_size=rows)
        first = next(batches, None)
        return pf.schema_arrow.empty_table().to_pandas() if first is None else first.to_pandas()


def run_on_dask(params: Params, raw_columns: list[str], target: str) -> TrainResult:
    """`train` with ``dask.enabled``: the training features stay on the workers. CV and the
    decision threshold use a seeded sample of at most ``train.cv.max_rows`` rows in this
    process (as in process); the final model trains on every row with ``lightgbm.dask``."""
    from mlops_template import distributed
    from mlops_template.distributed_train import fit_lightgbm

    with distributed.connect(params.dask) as client:
        frame = distributed.read_parquet(paths.TRAIN_FEATURES, params.dask)
        rows = len(frame)
        cv_sample = distributed.sample(frame, params.train.cv.max_rows, params.train.seed, rows)
        log.info(
            "train on Dask: %d partitions, %d rows; CV on a seeded sample of %d",
            frame.npartitions,
            rows,
            len(cv_sample),
        )

        def fit_all(pipeline: Any) -> Any:
            return fit_lightgbm(
                frame,
                pipeline=pipeline,
                target=target,
                task=params.data.task,
                train=params.train,
                dask=params.dask,
                client=client,
            )

        return train(
            cv_sample.reset_index(drop=True),
            raw_columns=raw_columns,
            target=target,
            task=params.data.task,
            params=params.train,
            feature_spec=params.features,
            evaluate=params.evaluate,
            fit_all=fit_all,
            split_rows=rows,
        )


def tuned_params(params: Params) -> tuple[Params, str]:
    """params with the tune stage's best hyper-parameters applied, and where they came from."""
    import json

    if not paths.BEST_PARAMS.exists():
        return params, "params.yaml"
    best = json.loads(paths.BEST_PARAMS.read_text())
    if not best.get("params"):
        return params, "params.yaml"
    tuned_for = (best.get("searched") or [best.get("model")])[0]  # train.model at tune time
    if tuned_for != params.train.model:
        raise ConfigError(
            f"{paths.BEST_PARAMS}: tuned for model {tuned_for!r} but train.model is "
            f"{params.train.model!r}; run `mlops stage tune` again"
        )
    model = best.get("model", params.train.model)  # the best kind tune.models let it try
    train_params = params.train.with_overrides(best["params"], model)
    source = str(best["source"])
    if model != params.train.model:
        source += f" (a {model} model: it beat {params.train.model} in tune's CV)"
    return params.model_copy(update={"train": train_params}), source


def _forget_thread_count(pipeline: Pipeline) -> None:
    """HistGradientBoosting's bin mapper keeps the OpenMP thread count it was fitted with (the
    machine's core count or OMP_NUM_THREADS): the only byte of the model file that
    differed between machines once the features agreed. It is used again only by a refit's
    binning; None means "decide at use", what a fresh estimator does."""
    for _, step in pipeline.steps:
        mapper = getattr(step, "_bin_mapper", None)
        if mapper is not None:
            mapper.n_threads = None


def run(params: Params) -> None:
    """Entry point of the `train` stage (``mlops stage train``)."""
    params, params_source = tuned_params(params)
    log.info("train: hyper-parameters from %s", params_source)
    contract = load_contract(params.data.contract)
    if used := pii_features(contract, params.features.model_dump()):
        shown = "; ".join(f"{c}: {how}" for c, how in used.items())
        raise ConfigError(f"{params.data.contract}: pii columns cannot be features ({shown})")
    if params.dask.enabled:
        from mlops_template.distributed import require_dask_model

        require_dask_model(params.train.model)  # before the tracking store is opened
    mlflow = tracking.connect(params.tracking.experiment)  # fail before the expensive work
    if params.dask.enabled:
        result = run_on_dask(params, contract.feature_columns, contract.target)
    else:
        result = train(
            pd.read_parquet(paths.TRAIN_FEATURES),
            raw_columns=contract.feature_columns,
            target=contract.target,
            task=params.data.task,
            params=params.train,
            feature_spec=params.features,
            evaluate=params.evaluate,
        )
    raw_sample = head(paths.TRAIN_SPLIT, 100).drop(columns=[contract.target])
    raw_sample = redact(raw_sample, contract.pii_columns)  # MLflow keeps it as input example
    start = time.perf_counter()
    run_info = log_to_mlflow(result, params, raw_sample, contract.name, params_source, mlflow)
    log.info("logged run %s to MLflow in %.1fs", run_info["run_id"], time.perf_counter() - start)
    save(result.model, paths.MODEL)
    meta = ModelMeta(
        task=params.data.task,
        model=params.train.model,
        target=contract.target,
        id_column=contract.id,
        input_columns=result.input_columns,
        classes=result.classes,
        threshold=result.threshold,
        threshold_source=result.threshold_source,
        contract={"name": contract.name, "version": contract.version},
        mlflow=run_info,
        params_source=params_source,
        hyperparameters=params.train.estimator_params(),
        python=python_version(),
        model_sha256=file_sha256(paths.MODEL),
    )
    io.write_json(result.cv_metrics, paths.CV_METRICS)
    meta.write()
    shown = ", ".join(f"{k}={v}" for k, v in list(result.cv_metrics.items())[:2])
    log.info("train: saved %s (%s)", paths.MODEL, shown)
