"""The `train` stage: a scikit-learn Pipeline chosen in params, cross-validated, then fitted.

The saved artifact (models/model.joblib) is the whole inference pipeline: the stateless
feature function, then imputation/encoding/scaling, then the estimator. Serving and
evaluation call it on raw, contract-valid rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops_template import io, metrics, paths, tracking
from mlops_template.config import FeaturesParams, Params, Task, TrainParams
from mlops_template.contract import load_contract
from mlops_template.errors import ConfigError
from mlops_template.features import feature_transformer

log = logging.getLogger(__name__)


def column_roles(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Split feature columns into numeric and categorical; anything else is a config error."""
    numeric, categorical = [], []
    for name in X.columns:
        dtype = X[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            numeric.append(name)
        elif pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            categorical.append(name)
        else:
            raise ConfigError(
                f"features: column {name!r} has dtype {dtype} that no model can use; "
                "decompose it (features.datetime) and list it under features.drop"
            )
    return numeric, categorical


def make_estimator(task: Task, params: TrainParams) -> BaseEstimator:
    p = params.estimator_params()
    seed = params.seed
    classify = task != "regression"
    if params.model == "linear":
        if classify:
            return LogisticRegression(
                C=p["C"], max_iter=p["max_iter"], class_weight=p["class_weight"], random_state=seed
            )
        return Ridge(alpha=p["alpha"], random_state=seed)
    if params.model == "random_forest":
        kwargs = {k: v for k, v in p.items() if k != "class_weight"}
        if classify:
            return RandomForestClassifier(
                **kwargs, class_weight=p["class_weight"], random_state=seed
            )
        return RandomForestRegressor(**kwargs, random_state=seed)
    kwargs = {k: v for k, v in p.items() if k != "class_weight"}
    if classify:
        return HistGradientBoostingClassifier(
            **kwargs, class_weight=p["class_weight"], random_state=seed
        )
    return HistGradientBoostingRegressor(**kwargs, random_state=seed)


def make_pipeline(
    task: Task, params: TrainParams, numeric: list[str], categorical: list[str]
) -> Pipeline:
    """Preprocessing (fitted on training data only) + the chosen estimator."""
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if params.model == "linear":
        numeric_steps.append(("scale", StandardScaler()))
    categorical_steps = [
        ("impute", SimpleImputer(strategy="most_frequent")),
        ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ]
    preprocess = ColumnTransformer(
        [
            ("numeric", Pipeline(numeric_steps), numeric),
            ("categorical", Pipeline(categorical_steps), categorical),
        ],
        verbose_feature_names_out=False,
    )
    return Pipeline([("preprocess", preprocess), ("estimator", make_estimator(task, params))])


def model_output(model: Any, X: pd.DataFrame, task: Task) -> np.ndarray:
    """P(positive) for binary, class probabilities for multiclass, values for regression."""
    if task == "regression":
        return np.asarray(model.predict(X), dtype="float64")
    proba = np.asarray(model.predict_proba(X), dtype="float64")
    return proba[:, 1] if task == "binary" else proba


def cross_validate(
    pipeline: Pipeline, X: pd.DataFrame, y: pd.Series, task: Task, params: TrainParams
) -> dict[str, float]:
    """k-fold CV on (a seeded sample of at most cv.max_rows of) the training split."""
    if len(X) > params.cv.max_rows:
        sample = X.sample(n=params.cv.max_rows, random_state=params.seed).index
        X, y = X.loc[sample], y.loc[sample]
    splitter = (
        KFold(params.cv.folds, shuffle=True, random_state=params.seed)
        if task == "regression"
        else StratifiedKFold(params.cv.folds, shuffle=True, random_state=params.seed)
    )
    folds: list[dict[str, float]] = []
    for i, (fit_idx, val_idx) in enumerate(splitter.split(X, y), start=1):
        start = time.perf_counter()
        model = clone(pipeline).fit(X.iloc[fit_idx], y.iloc[fit_idx])
        classes = getattr(model, "classes_", None)
        output = model_output(model, X.iloc[val_idx], task)
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
    return summary


@dataclass
class TrainResult:
    model: Pipeline  # the full inference pipeline: features -> preprocess -> estimator
    cv_metrics: dict[str, float]
    input_columns: list[str]
    classes: list[Any] | None
    timings: dict[str, float] = field(default_factory=dict)


def train(
    features: pd.DataFrame,
    *,
    raw_columns: list[str],
    target: str,
    task: Task,
    params: TrainParams,
    feature_spec: FeaturesParams,
) -> TrainResult:
    """Cross-validate, fit on the whole training split, and wrap with the feature function.

    ``features`` is the output of the `features` stage; ``raw_columns`` are the contract's
    input columns that the returned pipeline expects at inference time.
    """
    if target not in features.columns:
        raise ConfigError(f"train: target column {target!r} is not in the features")
    X, y = features.drop(columns=[target]), features[target]
    if task != "regression" and y.nunique() < 2:
        raise ConfigError(f"data.task: {task!r} needs at least 2 classes in {target!r}")
    numeric, categorical = column_roles(X)
    pipeline = make_pipeline(task, params, numeric, categorical)
    timings: dict[str, float] = {}

    start = time.perf_counter()
    cv_metrics = cross_validate(pipeline, X, y, task, params)
    timings["cv_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    fitted = pipeline.fit(X, y)
    timings["fit_seconds"] = time.perf_counter() - start
    log.info("fitted %s on %d rows in %.1fs", params.model, len(X), timings["fit_seconds"])

    features_step = feature_transformer(feature_spec)
    inference = Pipeline([("features", features_step), ("model", fitted)])
    features_step.fit(None)
    classes = list(fitted.classes_) if task != "regression" else None
    return TrainResult(inference, cv_metrics, raw_columns, classes, timings)


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
) -> dict[str, Any]:
    """Log params, CV metrics and the model (with signature); register it. Returns run info."""
    from importlib import metadata
    from pathlib import Path

    mlflow = tracking.connect(params.tracking.experiment)
    from mlflow.models import infer_signature

    example = _input_example(raw_sample)
    with tracking.guarded("log the training run"), mlflow.start_run() as active:
        mlflow.set_tags(
            tracking.run_tags()
            | {"stage": "train", "task": params.data.task, "model": params.train.model,
               "contract": contract_name}
        )  # fmt: skip
        mlflow.log_params(flatten(logged_params(params)))
        mlflow.set_tag("params_source", params_source)
        mlflow.log_metrics(result.cv_metrics)
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
        }


def tuned_params(params: Params) -> tuple[Params, str]:
    """params with the tune stage's best hyper-parameters applied, and where they came from."""
    import json

    if not paths.BEST_PARAMS.exists():
        return params, "params.yaml"
    best = json.loads(paths.BEST_PARAMS.read_text())
    if not best.get("params"):
        return params, "params.yaml"
    if best.get("model") != params.train.model:
        raise ConfigError(
            f"{paths.BEST_PARAMS}: tuned for model {best.get('model')!r} but train.model is "
            f"{params.train.model!r}; run `mlops stage tune` again"
        )
    from mlops_template.tune import merged

    train_params = merged(params.train, best["params"])
    return params.model_copy(update={"train": train_params}), str(best["source"])


def run(params: Params) -> None:
    """Entry point of the `train` stage (``mlops stage train``)."""
    import joblib

    params, params_source = tuned_params(params)
    log.info("train: hyper-parameters from %s", params_source)
    contract = load_contract(params.data.contract)
    tracking.connect(params.tracking.experiment)  # fail before the expensive work
    features = pd.read_parquet(paths.TRAIN_FEATURES)
    result = train(
        features,
        raw_columns=contract.feature_columns,
        target=contract.target,
        task=params.data.task,
        params=params.train,
        feature_spec=params.features,
    )
    raw_sample = pd.read_parquet(paths.TRAIN_SPLIT).drop(columns=[contract.target]).head(100)
    start = time.perf_counter()
    run_info = log_to_mlflow(result, params, raw_sample, contract.name, params_source)
    log.info("logged run %s to MLflow in %.1fs", run_info["run_id"], time.perf_counter() - start)
    meta = {
        "task": params.data.task,
        "model": params.train.model,
        "target": contract.target,
        "id_column": contract.id,
        "input_columns": result.input_columns,
        "classes": result.classes,
        "contract": {"name": contract.name, "version": contract.version},
        "mlflow": run_info,
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
        "params_source": params_source,
        "hyperparameters": params.train.estimator_params(),
    }
    io.write_json(result.cv_metrics, paths.CV_METRICS)
    io.write_json(meta, paths.MODEL_META)
    io.write_atomic(paths.MODEL, lambda p: joblib.dump(result.model, p))
    log.info("train: saved %s (%s)", paths.MODEL, ", ".join(f"{k}={v}" for k, v in
             list(result.cv_metrics.items())[:2]))  # fmt: skip
