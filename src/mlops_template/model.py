"""The model: what `train` and `tune` build, what every other part loads and predicts with.

- :func:`make_pipeline`: preprocessing + the estimator ``train.model`` names (its entry in
  :data:`mlops_template.estimators.ESTIMATORS`, the one place to add a model; the builders
  below are named there);
- :func:`cv_splitter`: the k-fold splitter of cross-validation and tuning;
- :class:`ModelMeta`: models/model.json, read and written only here;
- :func:`save` / :func:`load`: models/model.skops (skops' format: loading builds only the
  types estimators.trusted_types lists, no pickle), read after its hash matches the one
  recorded at training;
- :func:`decide`: THE prediction function. Labels come from the decision threshold stored
  with the model, so evaluate, `mlops score`, the service and the monitor agree.

Numeric columns keep their missing values for models that route NaN themselves
(``Estimator.native_missing``: HistGradientBoosting, LightGBM);
other models get the training median. Categorical columns at any cardinality: up to
``ONEHOT_MAX_CATEGORIES`` values are one-hot encoded (dense; these are few columns), or
given as integer codes to a model that splits on categories itself
(``Estimator.categorical_param``: LightGBM, HistGradientBoosting unless its
``native_categorical`` is false; missing and unseen values are NaN); above
that a cross-fitted ``TargetEncoder`` turns the column into one number per class, so memory
does not grow with the number of distinct values and unseen values at serving time get the
training mean.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin

from mlops_template import io, paths
from mlops_template.config import Task, TrainParams
from mlops_template.errors import ConfigError, ModelError
from mlops_template.estimators import ESTIMATORS, trusted_types

log = logging.getLogger(__name__)

ONEHOT_MAX_CATEGORIES = 32  # more distinct training values: target encoding
# Models that take NaN in numeric columns as it is, and learn on which side of each split a
# missing value goes: imputing the median first would erase a "missing means never" signal
# (a generated table where only missingness carries the label: ROC AUC 0.5 imputed, 1.0 kept).


# --------------------------------------------------------------------------- build


@dataclass(frozen=True)
class Roles:
    """Feature columns by how the pipeline treats them."""

    numeric: list[str]
    categorical: list[str]  # split as categories by the model, or one-hot
    high_cardinality: list[str]  # target-encoded


class AsFloat(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Numeric columns as float64 with every missing value (NaN, None, ``pd.NA`` of nullable
    ``Int64`` / ``boolean``) as NaN, nothing imputed: what HistGradientBoosting takes. Stateless;
    converted to ONNX as a cast (``onnx_path``)."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> AsFloat:
        self.n_features_in_ = X.shape[1]
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        frame = pd.DataFrame(X)
        return frame.astype("float64").to_numpy(dtype="float64", na_value=np.nan)


def column_roles(X: pd.DataFrame) -> Roles:
    """Numeric (bools included), low- and high-cardinality categorical; anything else (a raw
    datetime, say) is a config error naming the column."""
    numeric: list[str] = []
    categorical: list[str] = []
    high: list[str] = []
    for name in X.columns:
        dtype = X[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            numeric.append(name)
        elif pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            many = X[name].nunique() > ONEHOT_MAX_CATEGORIES
            (high if many else categorical).append(name)
        else:
            raise ConfigError(
                f"features: column {name!r} has dtype {dtype} that no model can use; "
                "decompose it (features.datetime) and list it under features.drop"
            )
    return Roles(numeric, categorical, high)


def _linear(task: Task, p: dict[str, Any], seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression, Ridge

    if task == "regression":
        return Ridge(alpha=p["alpha"], random_state=seed)
    return LogisticRegression(
        C=p["C"], max_iter=p["max_iter"], class_weight=p["class_weight"], random_state=seed
    )


def _random_forest(task: Task, p: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if task == "regression":
        return RandomForestRegressor(**_without(p, "class_weight"), random_state=seed)
    return RandomForestClassifier(**p, random_state=seed)


def _hist_gradient_boosting(task: Task, p: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    # model.fit's and make_pipeline's, not the estimator's
    p = _without(_without(p, "early_stopping_refit"), "native_categorical")
    if task == "regression":
        return HistGradientBoostingRegressor(**_without(p, "class_weight"), random_state=seed)
    return HistGradientBoostingClassifier(**p, random_state=seed)


def lightgbm_kwargs(task: Task, p: dict[str, Any], seed: int) -> dict[str, Any]:
    """LightGBM's keyword arguments, the same in process and on Dask: quiet, seeded, and
    deterministic (row-wise histograms: the same data gives the same trees and bytes)."""
    kwargs = _without(p, "class_weight") if task == "regression" else dict(p)
    return kwargs | {
        "random_state": seed,
        "verbose": -1,
        "deterministic": True,
        "force_row_wise": True,
    }


def _lightgbm(task: Task, p: dict[str, Any], seed: int) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    kwargs = lightgbm_kwargs(task, p, seed)
    return LGBMRegressor(**kwargs) if task == "regression" else LGBMClassifier(**kwargs)


def _without(p: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in p.items() if k != key}


def make_estimator(task: Task, params: TrainParams) -> Any:
    """The chosen model (``train.model``), built by its entry of estimators.ESTIMATORS."""
    build = ESTIMATORS[params.model].builder()
    return build(task, params.estimator_params(), params.seed)


def cv_splitter(task: Task, folds: int, seed: int, repeats: int = 1) -> Any:
    """Stratified k-fold for classification, plain k-fold for regression; shuffled, seeded;
    with ``repeats > 1`` the k-fold is repeated that many times with different shuffles."""
    from sklearn.model_selection import (
        KFold,
        RepeatedKFold,
        RepeatedStratifiedKFold,
        StratifiedKFold,
    )

    if repeats > 1:
        if task == "regression":
            return RepeatedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
        return RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed)
    if task == "regression":
        return KFold(folds, shuffle=True, random_state=seed)
    return StratifiedKFold(folds, shuffle=True, random_state=seed)


def make_pipeline(task: Task, params: TrainParams, roles: Roles) -> Any:
    """Preprocessing (fitted on training data only) + the chosen estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler, TargetEncoder

    entry = ESTIMATORS[params.model]
    numeric: Any = AsFloat()  # NaN kept: the model learns where missing goes
    if not entry.native_missing:
        numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if entry.scale_numeric:
            numeric_steps.append(("scale", StandardScaler()))
        numeric = Pipeline(numeric_steps)
    target_type = {"binary": "binary", "multiclass": "multiclass", "regression": "continuous"}
    high = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="<missing>")),
            (
                "encode",
                TargetEncoder(target_type=target_type[task], cv=cv_splitter(task, 5, params.seed)),
            ),
        ]
    )
    # lightgbm always splits on categories; hist_gradient_boosting when its section's
    # native_categorical is true (the default)
    native = bool(entry.categorical_param) and params.estimator_params().get(
        "native_categorical", True
    )
    transformers = [
        ("numeric", numeric, roles.numeric),
        ("categorical", _categorical_step(native), roles.categorical),
    ]
    if roles.high_cardinality:  # only then: pipelines without it keep their exact shape
        transformers.append(("high_cardinality", high, roles.high_cardinality))
    preprocess = ColumnTransformer(transformers, verbose_feature_names_out=False)
    estimator = make_estimator(task, params)
    if native and roles.categorical:
        first = len(roles.numeric)  # the categorical codes follow the numeric columns
        codes = list(range(first, first + len(roles.categorical)))
        estimator.set_params(**{entry.categorical_param: codes})
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


def _categorical_step(native: bool) -> Any:
    """Low-cardinality categorical columns: integer codes (float64; a missing value, or one
    the training rows lacked, is NaN, which the model treats as missing) for a model that
    splits on categories itself; else the most frequent value for missing, then one-hot."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    if native:
        return OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=np.nan,
            encoded_missing_value=np.nan,
            dtype=np.float64,
        )
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )


def early_stopping_blocker(estimator: Any, y: pd.Series | np.ndarray) -> str:
    """Why a HistGradientBoosting classifier's early stopping cannot draw its stratified
    validation split from ``y`` ("" when it can, or when it does not stop early): scikit-learn
    raises when a class has a single row, or when either side of the split would have fewer
    rows than there are classes."""
    from sklearn.base import is_classifier

    stops = getattr(estimator, "early_stopping", None)
    fraction = getattr(estimator, "validation_fraction", None)
    if not is_classifier(estimator) or stops is None or fraction is None:
        return ""
    counts = pd.Series(np.asarray(y)).value_counts()
    rows = int(counts.sum())
    if stops is False or (stops == "auto" and rows <= 10_000):  # sklearn's own `auto` rule
        return ""
    held = int(fraction) if fraction >= 1 else math.ceil(fraction * rows)
    single = [str(c) for c, n in counts.items() if n < 2]
    if single:
        return f"class {', '.join(map(repr, single))} has a single row"
    if min(held, rows - held) < len(counts):
        return f"{len(counts)} classes do not fit a validation split of {held} of {rows} rows"
    return ""


def refits_after_stopping(params: TrainParams) -> bool:
    """Whether :func:`fit` fits again on every row once early stopping chose the iteration
    count (``early_stopping_refit: true`` of the chosen model's section; models without it,
    and ``cv``, which refits nothing: no)."""
    return params.estimator_params().get("early_stopping_refit", False) is True


def iterations_from_cv(params: TrainParams) -> bool:
    """Whether the final fit takes its iteration count from train's CV folds
    (``early_stopping_refit: cv``; :func:`stopped_at`, :func:`with_iterations`)."""
    return params.estimator_params().get("early_stopping_refit", False) == "cv"


def stopped_at(pipeline: Any) -> int | None:
    """The iteration count early stopping chose in a fitted pipeline; None when it did not
    run (turned off, ``auto`` below 10,000 rows, blocked by :func:`early_stopping_blocker`)."""
    estimator = pipeline.steps[-1][1]
    if len(getattr(estimator, "validation_score_", ())) == 0:
        return None
    return int(estimator.n_iter_)


def with_iterations(pipeline: Any, counts: list[int]) -> Any:
    """``pipeline`` (unfitted) set to train ``median(counts)`` iterations on every row, early
    stopping off: the count the CV folds' early stopping chose, without a second fit. No
    counts (no fold stopped early): the pipeline is left as it is."""
    if not counts:
        return pipeline
    chosen = max(1, round(float(np.median(counts))))
    name = pipeline.steps[-1][0]
    log.info(
        "early_stopping_refit cv: %d iterations on every row (the CV folds stopped at %s)",
        chosen,
        ", ".join(map(str, counts)),
    )
    return pipeline.set_params(**{f"{name}__early_stopping": False, f"{name}__max_iter": chosen})


def fit(pipeline: Any, X: pd.DataFrame, y: pd.Series, *, refit: bool = False) -> Any:
    """``pipeline.fit(X, y)``, with HistGradientBoosting's early stopping turned off for this
    fit (a warning says why) when its stratified validation split cannot be drawn from ``y``
    (:func:`early_stopping_blocker`): the model trains on every iteration instead of crashing.

    ``refit`` (:func:`refits_after_stopping`): when early stopping ran, the estimator is fitted
    again on every row of ``X`` (the same preprocessed features) with the number of iterations
    it stopped at and early stopping off: the rows it held out for stopping train the trees
    too. The fitted pipeline then holds ``max_iter`` = that count, ``early_stopping=False``."""
    name, estimator = pipeline.steps[-1]
    reason = early_stopping_blocker(estimator, y)
    if reason:
        log.warning(
            "early stopping off for this fit: %s (too few for its validation split)", reason
        )
        pipeline.set_params(**{f"{name}__early_stopping": False})
    if not refit:
        return pipeline.fit(X, y)
    features = pipeline[:-1].fit_transform(X, y)  # fits the preprocessing steps in place
    estimator.fit(features, y)
    if len(getattr(estimator, "validation_score_", ())) == 0:  # it did not stop early
        return pipeline
    chosen = int(estimator.n_iter_)
    log.debug("early stopping chose %d iterations: refitting on all %d rows", chosen, len(X))
    estimator.set_params(early_stopping=False, max_iter=chosen)
    estimator.fit(features, y)
    return pipeline


def fold_output(model: Any, X: pd.DataFrame, task: Task, every: np.ndarray) -> tuple[Any, Any]:
    """A CV fold model's output on ``X`` and the classes its columns stand for: for multiclass,
    widened to ``every`` class of the split (0 for a class the fold's training rows lacked: a
    class of a single row is in one fold only)."""
    output = model_output(model, X, task)
    classes = getattr(model, "classes_", None)
    if classes is None or task != "multiclass" or len(classes) == len(every):
        return output, classes
    wide = np.zeros((len(output), len(every)))
    wide[:, np.searchsorted(every, np.asarray(classes))] = output
    return wide, every


def model_output(model: Any, X: pd.DataFrame, task: Task) -> np.ndarray:
    """What metrics are computed on: P(positive) for binary, class probabilities for
    multiclass, values for regression."""
    if task == "regression":
        return np.asarray(model.predict(X), dtype="float64")
    return positive_column(np.asarray(model.predict_proba(X), dtype="float64"), task)


def positive_column(proba: np.ndarray, task: Task) -> np.ndarray:
    return proba[:, 1] if task == "binary" else proba


# --------------------------------------------------------------------------- metadata


class ModelMeta(BaseModel):
    """models/model.json: what the trained pipeline expects and returns, and where it came from.

    Committed to git: everything here is a function of the inputs, except ``mlflow`` (the run
    that trained it; wall times go to that run, not here)."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    model: str
    target: str
    id_column: str | None = None
    input_columns: list[str]
    classes: list[Any] | None = None
    threshold: float | None = None  # binary only: P(classes[1]) >= threshold -> classes[1]
    threshold_source: str | None = None  # "params" or how `auto` chose it
    contract: dict[str, Any]
    mlflow: dict[str, Any] | None = None
    params_source: str = "params.yaml"
    hyperparameters: dict[str, Any] = {}
    python: str = ""
    model_sha256: str = ""  # of models/model.skops: checked before it is read

    @classmethod
    def read(cls, path: Path = paths.MODEL_META) -> ModelMeta:
        try:
            return cls.model_validate(json.loads(Path(path).read_text()))
        except FileNotFoundError:
            raise ModelError(f"{path}: missing (run the train stage first)") from None
        except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as err:
            first = str(err).splitlines()[0]
            raise ModelError(f"{path}: not a model description ({first})") from None

    def write(self, path: Path = paths.MODEL_META) -> None:
        io.write_json(self.model_dump(mode="json"), path)

    @property
    def run_id(self) -> str | None:
        return (self.mlflow or {}).get("run_id")

    @property
    def trained_at(self) -> datetime | None:
        return parse_trained_at(self.mlflow)


def parse_trained_at(mlflow: dict[str, Any] | None) -> datetime | None:
    """``mlflow.trained_at`` of models/model.json as an aware time (UTC when it names no
    zone); None when it is not recorded (a model trained before it was)."""
    recorded = (mlflow or {}).get("trained_at")
    if not recorded:
        return None
    when = datetime.fromisoformat(recorded)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --------------------------------------------------------------------------- load


def save(pipeline: Any, path: Path = paths.MODEL) -> None:
    """Write the fitted pipeline in skops' format (a zip of JSON and arrays, no pickle),
    atomically. A pipeline holding a type :func:`read_pipeline` would refuse is a ModelError
    naming it here, at train, not at the first reader."""
    import skops.io as sio

    data = canonical_skops(sio.dumps(pipeline))
    if untrusted := sorted(set(sio.get_untrusted_types(data=data)) - set(trusted_types())):
        raise ModelError(
            f"{path}: the fitted pipeline holds types no loader trusts ({', '.join(untrusted)}); "
            "if they are safe, add them to the model's trusted_types in "
            "src/mlops_template/estimators.py"
        )
    io.write_atomic(path, lambda tmp: tmp.write_bytes(data))


def canonical_skops(data: bytes) -> bytes:
    """The same skops file with nothing that depends on the process that wrote it: skops
    names objects and array files by ``id()`` (memory addresses) and stamps each zip entry with
    the wall time, so the same pipeline gave other bytes on every run. Ids are renumbered and
    files renamed in the order they first appear in the schema (shared objects stay shared),
    entries get a fixed time and order; nothing is compressed (zlib's output may differ
    between builds). Loads to the same objects (tests/model/test_saved_model.py)."""
    import zipfile

    with zipfile.ZipFile(BytesIO(data)) as source:
        schema = json.loads(source.read("schema.json"))
        ids: dict[int, int] = {}
        files: dict[str, str] = {}

        def renumber(node: Any) -> None:
            if isinstance(node, list):
                for item in node:
                    renumber(item)
            elif isinstance(node, dict):
                if isinstance(node.get("__id__"), int):
                    node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
                if isinstance(node.get("file"), str):
                    suffix = Path(node["file"]).suffix
                    node["file"] = files.setdefault(node["file"], f"{len(files) + 1}{suffix}")
                for value in node.values():
                    renumber(value)

        renumber(schema)
        entries = {new: source.read(old) for old, new in files.items()}
    entries["schema.json"] = json.dumps(schema, indent=2).encode()
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            target.writestr(info, entries[name])
    return out.getvalue()


def read_pipeline(path: Path) -> Any:
    """The pipeline of a skops file, built from data only: skops constructs nothing but its
    default types and :func:`~mlops_template.estimators.trusted_types` (a fixed list, never
    read from the file), so a rewritten file runs no code of its own; anything else is one
    ModelError naming the untrusted types or the file's defect."""
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    trusted = trusted_types()
    try:
        return sio.load(path, trusted=trusted)
    except UntrustedTypesFoundException:
        found = sorted(set(sio.get_untrusted_types(file=path)) - set(trusted))
        raise ModelError(
            f"{path}: holds types outside the trusted list ({', '.join(found)}): refusing to "
            "load it (src/mlops_template/estimators.py lists what a model file may hold)"
        ) from None
    except Exception as err:  # a pickle, a truncated zip, another skops version's schema
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ModelError(f"{path}: cannot load ({type(err).__name__}: {first})") from None


def load(
    model_path: Path = paths.MODEL, meta_path: Path = paths.MODEL_META
) -> tuple[Any, ModelMeta]:
    """The trained inference pipeline and its metadata. The file is read only when its
    sha256 equals the one train recorded in model.json (a swapped or stale file is refused),
    and then only through :func:`read_pipeline` (a file rewritten together with its hash
    still runs no code)."""
    meta = ModelMeta.read(meta_path)
    if not Path(model_path).exists():
        raise ModelError(f"{model_path}: missing (run the train stage first)")
    actual = file_sha256(Path(model_path))
    if actual != meta.model_sha256:
        raise ModelError(
            f"{model_path}: sha256 {actual[:12]}… is not the {meta.model_sha256[:12] or 'none'}… "
            f"recorded in {meta_path}: refusing to load a model train did not write "
            f"(retrain, or restore the committed pair: `git restore {meta_path} && "
            f"dvc checkout --force {model_path}`; plain `dvc checkout` refuses to overwrite)"
        )
    return read_pipeline(Path(model_path)), meta


# --------------------------------------------------------------------------- predict


@dataclass
class Prediction:
    """One prediction per row: ``labels`` (class labels, or values for regression),
    ``proba`` (rows x classes) for classification, ``output`` what metrics take."""

    labels: np.ndarray
    proba: np.ndarray | None
    output: np.ndarray

    def frame(self, classes: list[Any] | None) -> pd.DataFrame:
        """``prediction`` and ``proba_<class>`` columns (offline outputs)."""
        out = pd.DataFrame({"prediction": self.labels})
        if self.proba is not None and classes is not None:
            for j, c in enumerate(classes):
                out[f"proba_{c}"] = self.proba[:, j]
        return out

    def records(self, classes: list[Any] | None, version: str) -> list[dict[str, Any]]:
        """The service's response rows."""
        labels = self.labels.tolist()
        if self.proba is None or classes is None:
            return [{"prediction": v, "model_version": version} for v in labels]
        names = [str(c) for c in classes]
        return [
            {
                "prediction": label,
                "probabilities": dict(zip(names, p, strict=True)),
                "model_version": version,
            }
            for label, p in zip(labels, self.proba.tolist(), strict=True)
        ]


def labels_for(
    output: np.ndarray, classes: list[Any] | np.ndarray, threshold: float | None
) -> np.ndarray:
    """Binary (1-d P(classes[1])): cut at ``threshold``; multiclass: the most probable class."""
    cls = np.asarray(classes)
    if output.ndim == 1:
        cut = 0.5 if threshold is None else threshold
        return np.where(output >= cut, cls[1], cls[0])
    return cls[np.argmax(output, axis=1)]


def decide(raw: np.ndarray, meta: ModelMeta) -> Prediction:
    """THE prediction function: ``raw`` is what the model step returns (class probabilities,
    or values), shaped by the task and the model's stored threshold."""
    raw = np.asarray(raw, dtype="float64")
    if meta.task == "regression":
        values = raw.reshape(-1)
        return Prediction(values, None, values)
    assert meta.classes is not None
    output = positive_column(raw, meta.task)
    return Prediction(labels_for(output, meta.classes, meta.threshold), raw, output)


def predict(model: Any, X: pd.DataFrame, meta: ModelMeta) -> Prediction:
    """Predict raw, contract-valid rows with the whole inference pipeline."""
    X = X[meta.input_columns]
    if meta.task == "regression":
        return decide(model.predict(X), meta)
    return decide(model.predict_proba(X), meta)
