"""The one typed loader for params.yaml: a pydantic model per section.

Every stage reads its knobs through :func:`load_params`. An unknown key, a wrong type or an
impossible value fails here, before any work, with a :class:`ConfigError` naming the key
(``train.hist_gradient_boosting.learning_rate: Input should be greater than 0``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from mlops_template import paths
from mlops_template.errors import ConfigError
from mlops_template.estimators import ESTIMATORS, Hyperparameters

Task = Literal["binary", "multiclass", "regression"]
# train.model: a name of estimators.ESTIMATORS (a Literal, so a typo lists the choices)
if TYPE_CHECKING:
    ModelName = str
else:
    ModelName = Literal[tuple(ESTIMATORS)]
# the models that train on a Dask cluster (dask.enabled); the others train in one process
DASK_MODELS = tuple(name for name, entry in ESTIMATORS.items() if entry.on_dask)
Probability = Annotated[float, Field(gt=0, lt=1)]


class Section(BaseModel):
    """Strict base: unknown keys are errors, values are validated on assignment too (the
    models' sections in estimators.py share it)."""

    model_config = Hyperparameters.model_config


# --------------------------------------------------------------------------- data


class SyntheticParams(Section):
    n_rows: int = Field(100_000, ge=100)
    fraud_rate: Probability = 0.015
    seed: int = 42
    drift: Literal["none", "shifted"] = "none"


class SqlParams(Section):
    url: str = ""
    query: str = ""


class SplitParams(Section):
    method: Literal["stratified", "random", "time"] = "stratified"
    test_size: Probability = 0.2
    seed: int = 42


class DataParams(Section):
    task: Task = "binary"
    contract: str = str(paths.CONTRACT)
    source: Literal["synthetic", "csv", "parquet", "sql"] = "synthetic"
    path: str = ""
    synthetic: SyntheticParams = SyntheticParams()
    sql: SqlParams = SqlParams()
    split: SplitParams = SplitParams()

    @model_validator(mode="after")
    def _source_needs_location(self) -> DataParams:
        if self.source in ("csv", "parquet") and not self.path:
            raise ValueError(f"data.path is required when data.source is {self.source!r}")
        if self.source == "sql" and not (self.sql.url and self.sql.query):
            raise ValueError(
                "data.sql.url and data.sql.query are required when data.source is 'sql'"
            )
        return self


# --------------------------------------------------------------------------- features


class DatetimeFeature(Section):
    column: str
    parts: list[Literal["hour", "weekday", "day", "month", "is_weekend", "is_night"]] = Field(
        min_length=1
    )


class PowerFeature(Section):
    column: str
    exponent: float


class BinFeature(Section):
    column: str
    edges: list[float] = Field(min_length=2)
    name: str | None = None

    @model_validator(mode="after")
    def _increasing(self) -> BinFeature:
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bin edges for {self.column!r} must be strictly increasing")
        return self


class RatioFeature(Section):
    name: str
    numerator: str
    denominator: str


class AggregateFeature(Section):
    name: str
    columns: list[str] = Field(min_length=2)
    func: Literal["sum", "mean", "min", "max", "std"]


class FeaturesParams(Section):
    datetime: list[DatetimeFeature] = []
    log: list[str] = []
    power: list[PowerFeature] = []
    bins: list[BinFeature] = []
    ratios: list[RatioFeature] = []
    aggregates: list[AggregateFeature] = []
    drop: list[str] = []


# --------------------------------------------------------------------------- train


class CVParams(Section):
    folds: int = Field(5, ge=2)
    max_rows: int = Field(200_000, ge=100)


class _TrainParams(Section):
    """``train``: the chosen model, the seed, cross-validation, and (added below, one per
    entry of :data:`~mlops_template.estimators.ESTIMATORS`) each model's section."""

    model: ModelName = "hist_gradient_boosting"
    seed: int = 42
    cv: CVParams = CVParams()

    def estimator_params(self) -> dict[str, Any]:
        """The chosen model's hyper-parameters as plain keyword arguments."""
        section: BaseModel = getattr(self, self.model)
        return section.model_dump()

    def with_overrides(self, overrides: dict[str, Any], model: str = "") -> TrainParams:
        """These params with the chosen model's section overridden (tuned values), validated;
        with ``model``, that kind becomes the chosen one first (a kind tune.models searched)."""
        chosen = self.model_copy(update={"model": model}) if model else self
        section = getattr(chosen, chosen.model)
        new_section = type(section).model_validate(section.model_dump() | overrides)
        return chosen.model_copy(update={chosen.model: new_section})


if TYPE_CHECKING:
    TrainParams = _TrainParams
else:
    TrainParams = create_model(
        "TrainParams",
        __base__=_TrainParams,
        __module__=__name__,
        **{name: (e.params, Field(default_factory=e.params)) for name, e in ESTIMATORS.items()},
    )


# --------------------------------------------------------------------------- evaluate


class SliceChecks(Section):
    """Per metric: the floor every slice must reach (a ceiling for log_loss, rmse, ...) and
    the largest allowed gap between the best and the worst slice."""

    min: dict[str, float] = {}
    max_gap: dict[str, Annotated[float, Field(ge=0)]] = {}


class ReferenceParams(Section):
    """The plain ``HistGradientBoosting*()`` reference that evaluate fits beside the class
    prior / mean (which is always measured): skipped, with a note, above ``max_rows`` training
    rows (its fit time grows with them)."""

    enabled: bool = True
    max_rows: int = Field(200_000, ge=1)


class EvaluateParams(Section):
    # binary decision threshold, stored with the model by `train`; auto: chosen on the
    # out-of-fold CV predictions for threshold_objective (at threshold_level)
    threshold: Probability | Literal["auto"] = 0.5
    threshold_objective: Literal["max_f1", "min_precision", "min_recall"] = "max_f1"
    threshold_level: Probability = 0.5
    slice_column: str | None = None
    importance_rows: int = Field(5_000, ge=100)
    importance_repeats: int = Field(3, ge=1)
    # every input column's permutation importance must reach this (None: not checked)
    min_feature_importance: float | None = 0.0
    feature_importance_action: Literal["report", "fail"] = "report"
    # per slice column: what its slices must reach (applied when it is slice_column)
    slice_checks: dict[str, SliceChecks] = {}
    slice_min_rows: int = Field(200, ge=1)  # smaller slices are reported, not judged
    # simpler models measured on the same split (reports/baselines.json; the gate reads it)
    reference: ReferenceParams = ReferenceParams()


class TrackingParams(Section):
    experiment: str = Field("mlops-template", min_length=1)
    registered_model: str = Field("mlops-template-model", min_length=1)


# --------------------------------------------------------------------------- tune


class SpaceDim(Section):
    """One searched hyper-parameter: a numeric range (low/high, optional log) or choices."""

    low: int | float | None = None
    high: int | float | None = None
    log: bool = False
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> SpaceDim:
        has_range = self.low is not None or self.high is not None
        if self.choices is not None and has_range:
            raise ValueError("give either choices or low/high, not both")
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must not be empty")
            return self
        if self.low is None or self.high is None:
            raise ValueError("needs low and high (or choices)")
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("log scale needs low > 0")
        return self

    @property
    def integer(self) -> bool:
        """An int range when both bounds are written as integers in params.yaml."""
        return isinstance(self.low, int) and isinstance(self.high, int)


class TuneParams(Section):
    enabled: bool = False
    method: Literal["grid", "random", "bayesian", "evolutionary"] = "random"
    n_trials: int = Field(20, ge=1)
    timeout_seconds: float | None = Field(None, gt=0)
    metric: str | None = None  # default: roc_auc (classification) / rmse (regression)
    folds: int = Field(3, ge=2)
    max_rows: int = Field(50_000, ge=100)
    repeats: int = Field(1, ge=1)  # k-fold repeated this many times on a small split ...
    repeat_below_rows: int = Field(4_000, ge=0)  # ... below this many training rows
    grid_points: int = Field(3, ge=2)  # values per numeric range in grid search
    n_workers: int = Field(1, ge=1)
    pruning: bool = False
    seed: int = 42
    # model kinds searched beside train.model (each's own defaults first, then its space): a
    # linear model wins on some small tables (attrition: CV ROC AUC 0.836 vs 0.789)
    models: list[ModelName] = Field(default_factory=lambda: ["linear"])
    space: dict[ModelName, dict[str, SpaceDim]] = Field(default_factory=lambda: _default_space())

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "dask_address" in raw:
            raise ValueError(
                "tune.dask_address moved to dask.address (with dask.enabled: true, or env "
                "MLOPS_DASK_ADDRESS)"
            )
        return raw


def _default_space() -> dict[ModelName, dict[str, SpaceDim]]:
    """Each model's default search space, from its entry in estimators.ESTIMATORS."""
    return {
        name: {key: SpaceDim.model_validate(dim) for key, dim in entry.space.items()}
        for name, entry in ESTIMATORS.items()
    }


# --------------------------------------------------------------------------- dask


MEMORY_SIZE = r"^\d+(\.\d+)?\s*([kMGT]i?B|B)$"  # what dask.utils.parse_bytes reads, e.g. 2GiB


class DaskParams(Section):
    """Where the pipeline runs: in this process (``enabled: false``) or on a Dask cluster."""

    # true: tune, train (lightgbm), data (parquet), evaluate, score, monitor on Dask
    enabled: bool = False
    address: str = ""  # tcp://host:8786 (env MLOPS_DASK_ADDRESS overrides); "": a LocalCluster
    workers: int = Field(2, ge=1)  # LocalCluster: worker processes ...
    threads_per_worker: int = Field(1, ge=1)  # ... their threads ...
    memory_limit: str = "2GiB"  # ... and each one's memory limit
    partition_rows: int = Field(500_000, ge=1_000)  # rows per partition when a file is split
    # the seeded sample that fits the preprocessing, and that evaluate's importance, predictions
    # file and monitoring reference use (its metrics are on every held-out row)
    sample_rows: int = Field(200_000, ge=100)
    # lightgbm.dask: LightGBM's time_out; a worker that never joins fails the fit after this long
    socket_timeout_minutes: int = Field(10, ge=1)
    seed: int = 42

    @field_validator("memory_limit")
    @classmethod
    def _a_size(cls, value: str) -> str:
        if not re.match(MEMORY_SIZE, value):
            raise ValueError(f"{value!r} is not a size such as 2GiB or 1500MB")
        return value


# Bytes a request may take per record before it is refused unread (413): a demo record is about
# 250 bytes of JSON; long string columns need a larger serve.max_body_bytes.
BODY_BYTES_PER_ROW = 2048
BODY_ENVELOPE_BYTES = 65_536


class ServeParams(Section):
    max_rows: int = Field(1_000, ge=1)
    # larger bodies get 413 before they are read; null: max_rows x 2 KiB + 64 KiB
    max_body_bytes: int | None = Field(None, ge=1024)
    # oversized or non-JSON requests refused per second, client address and worker after a
    # burst of 10, before further ones wait (so abusive clients cannot crowd out the others)
    refusals_per_second: float = Field(2.0, gt=0)
    request_log: str = Field("logs/requests.db", pattern=r"\.(db|sqlite|jsonl)$")  # SQLite|JSONL
    workers: int = Field(1, ge=1)
    batch_max_size: int = Field(1_000, ge=1)
    batch_max_latency_ms: int = Field(1_000, ge=1)
    runtime: Literal["auto", "sklearn"] = "auto"
    threads: int = Field(1, ge=1)
    # SIGTERM: a worker serves until idle, at most this long, then stops (the log written out)
    graceful_timeout: float = Field(25.0, gt=0)
    # make latency-gate: fail when the 1-row in-process latency (as a ratio to a reference
    # workload) grew by more than this share over gate.baseline_ref's reports/latency.json
    latency_max_increase_rel: float = Field(1.0, gt=0)
    # safe rollout (docs/serving.md): a second model beside the champion
    strategy: Literal["single", "shadow", "canary", "ab"] = "single"
    challenger: str = ""  # a BentoML model tag NAME:VERSION, or the registry alias "challenger"
    challenger_share: float = Field(0.1, ge=0, le=1)  # canary / ab: share of route keys
    route_key: str = ""  # a contract column, or header:NAME; "": the contract's id column

    @model_validator(mode="after")
    def _challenger_given(self) -> ServeParams:
        if self.strategy != "single" and not self.challenger:
            raise ValueError(
                f"serve.challenger is required when serve.strategy is {self.strategy!r}"
            )
        return self

    @property
    def body_limit(self) -> int:
        """Most bytes a predict request body may have (``max_body_bytes`` or sized from
        ``max_rows``)."""
        if self.max_body_bytes is not None:
            return self.max_body_bytes
        return self.max_rows * BODY_BYTES_PER_ROW + BODY_ENVELOPE_BYTES


# A BentoML tag's name: lowercase letters, digits, '-', '_', '.', at most 63 characters.
TAG_NAME = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"


class PackageParams(Section):
    build_bento: bool = True
    # the name of this project's models and Bentos in the BentoML store; "": the project
    # folder's name (so two projects on one machine never share a name)
    model_name: str = Field("", pattern=f"^$|{TAG_NAME}")
    keep: int = Field(5, ge=1)  # the store keeps this project's last N models and Bentos


# --------------------------------------------------------------------------- gate


class MetricGate(Section):
    """One metric's gate. Each limit that is set must hold; at least one must be set.

    ``max_drop_abs`` / ``max_drop_rel``: allowed worsening against the baseline (in the metric's
    own units / as a fraction of the baseline's magnitude). ``min`` / ``max``: absolute floor /
    ceiling for the candidate, checked with or without a baseline. ``direction`` defaults to
    ``metrics.HIGHER_IS_BETTER`` (required for a metric not listed there).
    """

    direction: Literal["higher", "lower"] | None = None
    max_drop_abs: float | None = Field(None, ge=0)
    max_drop_rel: float | None = Field(None, ge=0)
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _some_limit(self) -> MetricGate:
        limits = (self.max_drop_abs, self.max_drop_rel, self.min, self.max)
        if all(v is None for v in limits):
            raise ValueError("set at least one of max_drop_abs, max_drop_rel, min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


class ReferenceGate(Section):
    """How far the model may trail the plain HistGradientBoosting reference (per metric, in
    the metric's units) before the gate says so; ``fail`` makes it refuse the model."""

    max_behind: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=lambda: {"roc_auc": 0.01, "accuracy": 0.01, "log_loss": 0.02, "r2": 0.01}
    )
    action: Literal["report", "fail"] = "report"


class GateParams(Section):
    baseline_ref: str = Field("HEAD", min_length=1)  # env MLOPS_GATE_BASELINE, --baseline
    override: bool = False  # env MLOPS_GATE_OVERRIDE=1, --override
    metrics: dict[str, MetricGate] = Field(
        default_factory=lambda: {
            "roc_auc": MetricGate(max_drop_abs=0.01),
            "pr_auc": MetricGate(max_drop_rel=0.1),
            "log_loss": MetricGate(max_drop_rel=0.05),
            "accuracy": MetricGate(max_drop_abs=0.01),
            "rmse": MetricGate(max_drop_rel=0.05),
            "r2": MetricGate(max_drop_abs=0.02),
        }
    )
    # never worse than the class prior / mean (always on); the reference: reported or refused
    reference: ReferenceGate = ReferenceGate()


# --------------------------------------------------------------------------- monitor

# Evidently drift methods we know the meaning of: a distance drifts when score >= threshold,
# a p-value when score < threshold.
DISTANCE_METHODS = ("wasserstein", "jensenshannon", "psi", "hellinger")
PVALUE_METHODS = ("ks", "chisquare")


class MonitorParams(Section):
    """`mlops monitor`: where the current batch comes from and when to say "retrain"."""

    source: Literal["file", "sql", "request_log"] = "request_log"
    path: str = ""  # file: CSV/Parquet path or fsspec URL; request_log: default serve.request_log
    sql: SqlParams = SqlParams()
    sample_rows: int = Field(100_000, ge=100)  # seeded sample of larger batches (and reference)
    seed: int = 42
    num_method: Literal["wasserstein", "psi", "hellinger", "ks"] = "wasserstein"
    cat_method: Literal["jensenshannon", "psi", "hellinger", "chisquare"] = "jensenshannon"
    column_threshold: float = Field(0.1, gt=0)  # per-column drift threshold of the method
    drift_share: float = Field(0.3, gt=0, le=1)  # retrain when this share of columns drifts
    prediction_drift: bool = True  # a drifted prediction column alone also says retrain
    quality_drop: dict[str, Annotated[float, Field(ge=0)]] = Field(  # metric -> allowed drop
        default_factory=lambda: {"roc_auc": 0.05, "pr_auc": 0.1, "f1": 0.1}
    )
    window_hours: int = Field(0, ge=0)  # request log: only the last N hours (0 = all of it)
    model_version: str = ""  # request log: only rows served by this version ("" = all)
    derived_features: bool = True  # also drift-check datetime parts, ratios, aggregates
    max_model_age_days: float | None = Field(90, gt=0)  # older model -> retrain (None: off)

    @model_validator(mode="after")
    def _source_needs_location(self) -> MonitorParams:
        if self.source == "sql" and not (self.sql.url and self.sql.query):
            raise ValueError("monitor.sql.url and monitor.sql.query are required for 'sql'")
        return self


class CompareParams(Section):
    """`mlops compare`: champion vs challenger on the request log (reports/rollout/)."""

    window_hours: int = Field(0, ge=0)  # only the last N hours of the log (0 = all of it)
    confidence: Probability = 0.95  # bootstrap interval of each metric's difference
    resamples: int = Field(1000, ge=100)
    min_labelled_rows: int = Field(200, ge=1)  # per model, else "keep": too few to decide
    min_shadow_coverage: float = Field(0.99, ge=0, le=1)  # shadow rows / champion rows
    seed: int = 42


# --------------------------------------------------------------------------- card


class BootstrapParams(Section):
    resamples: int = Field(100, ge=50)  # resamples of the held-out predictions
    confidence: Probability = 0.95  # percentile interval of each held-out metric
    seed: int = 42


class CardParams(Section):
    """The model card (reports/model_card.md): what only its owners can say. Empty values are
    shown as "not stated", never filled with invented text."""

    intended_use: str = ""
    out_of_scope_use: str = ""
    owners: list[str] = []
    contact: str = ""
    license: str = ""  # a Hugging Face license id (apache-2.0, mit, other, ...) or ""
    limitations: list[str] = []  # the owners' own, beside those the numbers show
    bootstrap: BootstrapParams = BootstrapParams()


class Params(Section):
    data: DataParams = DataParams()
    features: FeaturesParams = FeaturesParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    tracking: TrackingParams = TrackingParams()
    tune: TuneParams = TuneParams()
    serve: ServeParams = ServeParams()
    package: PackageParams = PackageParams()
    gate: GateParams = GateParams()
    monitor: MonitorParams = MonitorParams()
    compare: CompareParams = CompareParams()
    card: CardParams = CardParams()
    dask: DaskParams = DaskParams()


def _format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        else:
            lines.append(f"{key}: {e['msg']}")
    return "; ".join(lines)


def parse_params(raw: dict[str, Any], source: str = "params") -> Params:
    """Validate an already-loaded params mapping (tests build one by shrinking params.yaml)."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_format_errors(err)}") from None


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error on one line: the line and column where the parser gave up, and why
    (PyYAML's own message spans 6-8 lines with two excerpts of the file)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    why = f"{problem} ({context})" if context else problem
    if mark is None:
        return why
    return f"line {mark.line + 1}, column {mark.column + 1}: {why}"


def load_params(path: str | Path = paths.PARAMS) -> Params:
    """Read and validate params.yaml; raise ConfigError naming the bad key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (run from the project root)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(err)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return parse_params(raw, source=str(path))
