"""The models `train.model` can name: one entry per model, the one place to add one.

An entry carries the model's builder, its hyper-parameters (a pydantic section: params.yaml's
``train.<name>``, validated like every other key) and its default search space (params.yaml's
``tune.space.<name>``). config.py derives ``train.model``'s choices, the ``train.<name>``
sections and tune's default space from :data:`ESTIMATORS`; model.py builds the chosen one.

To add a model: write its params section and its builder (``builder(task, hyper-parameters,
seed) -> an unfitted scikit-learn estimator``: a classifier with ``predict_proba`` for binary
and multiclass tasks, a regressor for regression), add an entry below, and add its section to
params.yaml (and examples/card-transactions/params.yaml: the tests keep them equal to these
defaults). A builder is a function or ``"module:function"``: the ones below live in model.py
and are imported only when a model is built, so reading params never imports scikit-learn.

The model file (models/model.skops) is loaded by skops, which builds only the types it is
told to trust: its defaults (scikit-learn's estimators, numpy arrays, builtins) plus
:func:`trusted_types`, this module's fixed list: :data:`PIPELINE_TYPES` (every pipeline's
own) and each entry's ``trusted_types`` (what its fitted estimator holds beyond skops'
defaults). A new model whose fitted state holds other types fails at train with their names:
list them in its entry (docs/training.md, "The saved model").

No project imports: config.py imports this module.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# builder(task, hyper-parameters of its params section, seed) -> an unfitted estimator
Builder = Callable[[str, dict[str, Any], int], Any]


class Hyperparameters(BaseModel):
    """Strict base of a params section: unknown keys are errors, assignment is validated
    (config.Section is this base)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class LinearParams(Hyperparameters):
    """LogisticRegression for classification, Ridge for regression."""

    C: float = Field(1.0, gt=0)
    alpha: float = Field(1.0, ge=0)
    max_iter: int = Field(1000, ge=1)
    class_weight: Literal["balanced"] | None = None


class RandomForestParams(Hyperparameters):
    n_estimators: int = Field(200, ge=1)
    max_depth: int | None = Field(16, ge=1)
    min_samples_leaf: int = Field(5, ge=1)
    max_features: float | Literal["sqrt", "log2"] | None = "sqrt"
    class_weight: Literal["balanced", "balanced_subsample"] | None = None
    n_jobs: int = -1


class HistGradientBoostingParams(Hyperparameters):
    learning_rate: float = Field(0.1, gt=0)
    max_iter: int = Field(200, ge=1)
    max_leaf_nodes: int | None = Field(31, ge=2)
    max_depth: int | None = Field(None, ge=1)
    min_samples_leaf: int = Field(20, ge=1)
    # > 0 bounds the leaf values of rare classes (Newton steps on tiny hessians): without it a
    # 7-class table's held-out log loss was 9.8 against the prior's 1.5 (bench/quality.py)
    l2_regularization: float = Field(1.0, ge=0)
    class_weight: Literal["balanced"] | None = None
    # stop adding trees when the loss on a held-out 10% of the training rows stops improving;
    # "auto" (scikit-learn's default) is off below 10,000 rows, where 200 unchecked iterations
    # made probabilities worse than the class prior on real tables (reports/benchmarks/quality.md)
    early_stopping: bool | Literal["auto"] = True
    # "cv" (default): the final fit trains every training row, early stopping off, for the
    # median iteration count train's CV folds stopped at: the 10% early stopping holds out
    # trains the shipped trees too, at no extra fit (tune's CV stops early as usual). true:
    # once early stopping chose the count on its held-out 10%, fit again on every row with it
    # (model.fit: every fit twice, CV folds and tune trials included). false: the final fit
    # stops early on its own 10%. Refitting on every row wins on 8 of 10 real tables (credit
    # accuracy 0.810 -> 0.821) and loses on ames unless native_categorical is on too
    # (reports/benchmarks/quality.md, "Refit and native categoricals")
    early_stopping_refit: bool | Literal["cv"] = "cv"
    # true (default): categorical columns of up to model.ONEHOT_MAX_CATEGORIES values are
    # split natively (ordinal codes + categorical_features; ames R² 0.909 one-hot -> 0.922,
    # as plain HistGradientBoosting); the ONNX export writes such splits as chains of equality
    # tests (onnx_path). false: one-hot encoded
    native_categorical: bool = True


class LightGBMParams(Hyperparameters):
    """LGBMClassifier / LGBMRegressor in process; DaskLGBMClassifier / Regressor on Dask."""

    n_estimators: int = Field(200, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    num_leaves: int = Field(31, ge=2)
    max_depth: int = Field(-1, ge=-1)  # -1: no limit
    min_child_samples: int = Field(20, ge=1)
    # 0.0: 1.0 fixes a rare class's exploding leaves (log loss 20 -> 0 on a 7-class table) but cost
    # the demo's ROC AUC 0.894 -> 0.884 (reports/benchmarks/lightgbm_categorical.md)
    reg_lambda: float = Field(0.0, ge=0)
    subsample: float = Field(1.0, gt=0, le=1)
    subsample_freq: int = Field(0, ge=0)  # bagging every k iterations (0: off)
    colsample_bytree: float = Field(1.0, gt=0, le=1)
    class_weight: Literal["balanced"] | None = None
    # OpenMP threads in process (on Dask: the worker's threads). 1: LightGBM's spinning OpenMP
    # threads on a loaded 2-core machine took 113 s for a 4 s fit (docs/scale-out.md)
    n_jobs: int = 1


@dataclass(frozen=True)
class Estimator:
    """One model: ``params`` its section's model, ``build`` its builder (or where it is),
    ``space`` its default search space (per key: low/high[/log] or choices, as in
    params.yaml), ``scale_numeric``: standardise numeric inputs first (linear models),
    ``on_dask``: it also trains on a Dask cluster (``dask.enabled``: distributed_train.py),
    ``native_missing``: numeric inputs reach it with NaN kept (no imputer: it learns where a
    missing value goes, so "missing means never" stays a signal), ``categorical_param``: the
    estimator's keyword that takes the positions of the low-cardinality categorical columns,
    which then reach it as integer codes (missing and unseen values NaN) instead of one-hot
    columns ("" : one-hot; a model whose section has ``native_categorical`` only when that is
    true), ``trusted_types``: the
    types (module.qualname) its fitted estimator holds that skops does not trust by default,
    so that models/model.skops can be loaded."""

    params: type[Hyperparameters]
    build: Builder | str
    space: dict[str, dict[str, Any]] = field(default_factory=dict)
    scale_numeric: bool = False
    on_dask: bool = False
    native_missing: bool = False
    categorical_param: str = ""
    trusted_types: tuple[str, ...] = ()

    def builder(self) -> Builder:
        if callable(self.build):
            return self.build
        module, _, name = self.build.partition(":")
        found: Builder = getattr(importlib.import_module(module), name)
        return found


ESTIMATORS: dict[str, Estimator] = {
    "linear": Estimator(
        LinearParams,
        "mlops_template.model:_linear",
        {"C": {"low": 0.001, "high": 100.0, "log": True}},
        scale_numeric=True,
    ),
    "random_forest": Estimator(
        RandomForestParams,
        "mlops_template.model:_random_forest",
        {"n_estimators": {"choices": [100, 200, 400]}, "max_depth": {"low": 4, "high": 24}},
        trusted_types=("sklearn.tree._tree.Tree",),
    ),
    "hist_gradient_boosting": Estimator(
        HistGradientBoostingParams,
        "mlops_template.model:_hist_gradient_boosting",
        {
            "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
            "max_leaf_nodes": {"choices": [15, 31, 63]},
            "min_samples_leaf": {"low": 5, "high": 100},
        },
        native_missing=True,
        categorical_param="categorical_features",  # only with native_categorical: true
        trusted_types=(
            "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
            # native_categorical: the estimator's own column step holds a FunctionTransformer
            # of partial(check_array, ...); skops loads the partial's function only when it is
            # trusted itself (check_array, listed here), so no other callable can ride along
            "functools.partial",
            "sklearn.utils.validation.check_array",
        ),
    ),
    "lightgbm": Estimator(
        LightGBMParams,
        "mlops_template.model:_lightgbm",
        {
            "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
            "num_leaves": {"choices": [15, 31, 63]},
            "min_child_samples": {"low": 5, "high": 100},
        },
        on_dask=True,
        native_missing=True,
        # LightGBM's alias of categorical_feature that goes to the Dataset as it is (the
        # constructor's `categorical_feature` would be ignored with a warning)
        categorical_param="categorical_column",
        trusted_types=(
            "lightgbm.sklearn.LGBMClassifier",
            "lightgbm.sklearn.LGBMRegressor",
            "lightgbm.basic.Booster",  # rebuilt from LightGBM's text model format
            "collections.OrderedDict",
        ),
    ),
}

# Types every pipeline of model.make_pipeline holds beyond skops' defaults: the feature
# step's function and the numeric cast, numpy dtypes, and TargetEncoder's CV splitters.
PIPELINE_TYPES: tuple[str, ...] = (
    "mlops_template.features.build_features",
    "mlops_template.model.AsFloat",
    "numpy.dtype",
    "sklearn.model_selection._split.KFold",
    "sklearn.model_selection._split.StratifiedKFold",
)


def trusted_types() -> list[str]:
    """The types models/model.skops may hold beyond skops' defaults: fixed by this module,
    never read from the file."""
    extra = (entry.trusted_types for entry in ESTIMATORS.values())
    return sorted(set(PIPELINE_TYPES).union(*extra))
