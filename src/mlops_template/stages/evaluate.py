"""The `evaluate` stage: held-out metrics, DVC plots, per-slice error analysis, predictions."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlops_template import baselines, io, metrics, paths, tracking
from mlops_template.config import EvaluateParams, Params, Task
from mlops_template.contract import load_contract
from mlops_template.errors import GateFailed
from mlops_template.model import ModelMeta, Prediction, load, predict
from mlops_template.stages import checks

log = logging.getLogger(__name__)

CURVE_POINTS = 200  # ROC / PR curves are thinned to about this many points
CONFUSION_ROWS = 50_000  # the per-row confusion plot file is sampled above this


@dataclass
class Evaluation:
    metrics: dict[str, float]
    plots: dict[str, pd.DataFrame]
    slices: dict[str, Any]
    predictions: pd.DataFrame
    extra: dict[str, Any] = field(default_factory=dict)


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    if len(frame) <= CURVE_POINTS:
        return frame.reset_index(drop=True)
    idx = np.unique(np.linspace(0, len(frame) - 1, CURVE_POINTS).round().astype(int))
    return frame.iloc[idx].reset_index(drop=True)


def classification_plots(
    y: np.ndarray, output: np.ndarray, labels: np.ndarray, classes: np.ndarray, seed: int = 0
) -> dict[str, pd.DataFrame]:
    plots: dict[str, pd.DataFrame] = {}
    if output.ndim == 1 and len(np.unique(y)) == 2:
        positive = y == classes[1]
        fpr, tpr, _ = skm.roc_curve(positive, output)
        plots["roc"] = _thin(pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(6))
        precision, recall, _ = skm.precision_recall_curve(positive, output)
        pr = pd.DataFrame({"recall": recall, "precision": precision}).iloc[::-1]
        plots["precision_recall"] = _thin(pr.round(6))
    confusion = pd.DataFrame({"actual": y.astype(str), "predicted": labels.astype(str)})
    if len(confusion) > CONFUSION_ROWS:
        confusion = confusion.sample(n=CONFUSION_ROWS, random_state=seed)
    plots["confusion"] = confusion.reset_index(drop=True)
    return plots


def slice_metrics(
    inputs: pd.DataFrame,
    y: np.ndarray,
    output: np.ndarray,
    task: Task,
    classes: np.ndarray | None,
    column: str,
    threshold: float | None,
) -> dict[str, Any]:
    """Metrics per value of one categorical column: where does the model do worst?"""
    slices: dict[str, Any] = {}
    values = inputs[column].astype("string").fillna("<missing>").to_numpy()
    for value in sorted(set(values)):
        mask = values == value
        entry: dict[str, Any] = {"rows": int(mask.sum())}
        entry.update(metrics.score(task, y[mask], output[mask], classes, _cut(threshold)))
        slices[str(value)] = entry
    return {"column": column, "slices": slices}


def importance(
    model: Any,
    inputs: pd.DataFrame,
    y: np.ndarray,
    task: Task,
    params: EvaluateParams,
    seed: int,
    skip: list[str],
) -> pd.DataFrame:
    """Permutation importance of each raw input column on a seeded sample of the test split.

    The numbers are scikit-learn's ``permutation_importance(model, sample, y, scoring=...,
    n_repeats, random_state=seed)`` to the last digit (tests/model/test_importance.py), but
    every permuted copy of the sample is scored in a few large predictions instead of one
    small prediction each (the fixed cost of a pipeline call dominates at 5,000 rows: 4x
    faster), and the ``skip`` columns (the id) are not permuted at all."""
    sample = inputs.sample(n=min(len(inputs), params.importance_rows), random_state=seed)
    y_sample = pd.Series(y, index=inputs.index).loc[sample.index].to_numpy()
    response, score = _scorer(model, task, y_sample)
    columns = [c for c in sample.columns if c not in skip]
    # scikit-learn draws one seed, then permutes every column with the same shuffles
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    orders = _repeat_orders(len(sample), params.importance_repeats, column_seed)
    blocks: list[Block] = [(None, None)] + [(c, order) for c in columns for order in orders]
    outputs = _batched_outputs(response, sample, blocks)
    baseline = score(outputs[0])
    repeats = len(orders)
    scores = np.array(
        [[score(outputs[1 + i * repeats + r]) for r in range(repeats)] for i in range(len(columns))]
    )
    mean = np.mean(baseline - scores, axis=1)
    frame = pd.DataFrame({"feature": columns, "importance": mean})
    return frame.sort_values("importance", ascending=False).round(6).reset_index(drop=True)


def _scorer(
    model: Any, task: Task, y: np.ndarray
) -> tuple[Callable[[pd.DataFrame], np.ndarray], Callable[[np.ndarray], float]]:
    """What scikit-learn's default scorer for the task calls and computes: ROC-AUC on the
    decision function (else P(classes[-1])) for binary, accuracy (also for a binary sample
    with one class), R² for regression."""
    if task == "regression":
        return model.predict, lambda out: float(skm.r2_score(y, out))
    if task == "binary" and len(np.unique(y)) == 2:
        if hasattr(model, "decision_function"):
            return model.decision_function, lambda out: float(skm.roc_auc_score(y, out))
        return (
            lambda X: model.predict_proba(X)[:, -1],
            lambda out: float(skm.roc_auc_score(y, out)),
        )
    return model.predict, lambda out: float(skm.accuracy_score(y, out))


def _repeat_orders(n: int, repeats: int, seed: int) -> list[np.ndarray]:
    """Row order of the permuted column in each repeat: scikit-learn shuffles an index array
    in place and re-indexes the already permuted column, so the orders compose."""
    rng = np.random.RandomState(seed)
    shuffle, order, orders = np.arange(n), np.arange(n), []
    for _ in range(repeats):
        rng.shuffle(shuffle)
        order = order[shuffle]
        orders.append(order)
    return orders


# one stacked copy of the importance sample: (column in a permuted order, that order), or
# (None, None) for the sample as it is
Block = tuple[str | None, np.ndarray | None]


def _batched_outputs(
    response: Callable[[pd.DataFrame], np.ndarray],
    sample: pd.DataFrame,
    blocks: list[Block],
    max_rows: int = 200_000,
) -> list[np.ndarray]:
    """The model's output on each block: the sample with one column in the given order (or
    none: the baseline). Blocks are stacked into predictions of at most ``max_rows`` rows; the
    pipeline works row by row, so each row's output is the one a separate call would give."""
    n = len(sample)
    per_call = max(1, max_rows // n)
    outputs: list[np.ndarray] = []
    for first in range(0, len(blocks), per_call):
        chunk = blocks[first : first + per_call]
        stacked = {}
        for name in sample.columns:
            rows = np.tile(np.arange(n), len(chunk))
            for b, (column, order) in enumerate(chunk):
                if column == name and order is not None:
                    rows[b * n : (b + 1) * n] = order
            stacked[name] = sample[name].take(rows).reset_index(drop=True)
        out = np.asarray(response(pd.DataFrame(stacked)))
        outputs += [out[b * n : (b + 1) * n] for b in range(len(chunk))]
    return outputs


def _cut(threshold: float | None) -> float:
    return 0.5 if threshold is None else threshold


def evaluate(
    model: Any,
    test: pd.DataFrame,
    *,
    meta: ModelMeta,
    params: EvaluateParams,
    seed: int = 42,
) -> Evaluation:
    """Score the inference pipeline on the raw held-out split, labelling with the model's own
    decision threshold (the one the service uses)."""
    inputs = test.drop(columns=[meta.target])
    y = test[meta.target].to_numpy()
    prediction = predict(model, inputs, meta)
    return assemble(
        model, y, prediction, inputs, test, prediction, meta=meta, params=params, seed=seed
    )


def assemble(
    model: Any,
    y: np.ndarray,
    prediction: Prediction,
    columns: pd.DataFrame,
    sample: pd.DataFrame,
    sample_prediction: Prediction,
    *,
    meta: ModelMeta,
    params: EvaluateParams,
    seed: int = 42,
) -> Evaluation:
    """The evaluation from the target and the model's prediction of every held-out row
    (``columns``: the rows' slice column) and, for what needs the raw inputs (permutation
    importance, the predictions file), from ``sample``: held-out rows with their prediction
    (in process, the whole split; on Dask, a seeded sample)."""
    task, target, id_column = meta.task, meta.target, meta.id_column
    output = prediction.output
    cls = np.asarray(meta.classes) if meta.classes is not None else None
    scores = metrics.score(task, y, output, cls, _cut(meta.threshold))

    if task == "regression":
        plots = {"predicted_vs_actual": pd.DataFrame({"actual": y, "predicted": output}).round(6)}
        if len(plots["predicted_vs_actual"]) > CONFUSION_ROWS:
            plots["predicted_vs_actual"] = plots["predicted_vs_actual"].sample(
                n=CONFUSION_ROWS, random_state=seed
            )
    else:
        assert cls is not None
        plots = classification_plots(y, output, prediction.labels, cls, seed)
    skip = [id_column] if id_column else []
    inputs = sample.drop(columns=[target])
    y_sample = sample[target].to_numpy()
    plots["importance"] = importance(model, inputs, y_sample, task, params, seed, skip)

    slices: dict[str, Any] = {}
    if params.slice_column:
        slices = slice_metrics(columns, y, output, task, cls, params.slice_column, meta.threshold)

    predictions = pd.DataFrame(index=sample.index)
    if id_column:
        predictions[id_column] = sample[id_column]
    predictions[target] = y_sample
    predictions = pd.concat(
        [predictions.reset_index(drop=True), sample_prediction.frame(meta.classes)], axis=1
    )
    if task == "binary":  # the positive class's probability only, as before
        assert cls is not None
        predictions = predictions.drop(columns=[f"proba_{cls[0]}"])
    extra: dict[str, Any] = {}
    if task != "regression":
        assert cls is not None
        matrix = skm.confusion_matrix(y, prediction.labels, labels=cls)
        extra["confusion_matrix"] = {"labels": [str(c) for c in cls], "matrix": matrix.tolist()}
        if meta.threshold is not None:
            extra["threshold"] = {"value": meta.threshold, "source": meta.threshold_source}
        note = metrics.roc_auc_note(y, cls, "test rows")
        if note:  # e.g. a time split leaves a rare class out of the held-out rows
            used, left_out = metrics.roc_auc_classes(y, cls)
            extra["roc_auc_classes"] = {
                "used": [str(cls[i]) for i in used],
                "left_out": left_out,
                "note": note,
            }
            log.warning("evaluate: %s", note)
    return Evaluation(scores, plots, slices, predictions, extra)


@dataclass
class OnDask:
    """`evaluate` on the cluster: the evaluation, the sample of held-out rows it used for
    what needs the raw inputs, and the simpler models' report and timings."""

    result: Evaluation
    sample: pd.DataFrame
    simpler: dict[str, Any]
    timings: dict[str, float]


def evaluate_on_dask(model: Any, meta: ModelMeta, params: Params) -> OnDask:
    """`evaluate` with ``dask.enabled``: the held-out split stays on the workers.

    The model predicts every partition on a worker and only the target, its output and the
    slice column come home, so the metrics, curves, confusion matrix and slices are exact
    (every held-out row, the same numbers as in process). What needs the feature table itself
    runs on a seeded sample of ``dask.sample_rows`` rows (``dask.seed``): permutation
    importance (and the feature-value check), the predictions file, the monitoring
    reference, and the simpler models' test rows (reports/baselines.json; they train on at
    most ``evaluate.reference.max_rows`` training rows). slices.json's ``evaluated_on`` says
    which is which."""
    from mlops_template import distributed
    from mlops_template.distributed_evaluate import held_out
    from mlops_template.distributed_evaluate import sample as sample_of
    from mlops_template.model import decide

    keep = [params.evaluate.slice_column] if params.evaluate.slice_column else []
    with distributed.connect(params.dask) as client:
        frame = distributed.read_parquet(paths.TEST_SPLIT, params.dask)
        every = held_out(frame, model, meta, keep, client)
        sample, total = sample_of(frame, params.dask, total=len(every.y))
        simpler, timings = simpler_models_on_dask(params, meta)
    prediction = decide(every.raw, meta)
    sample_prediction = predict(model, sample.drop(columns=[meta.target]), meta)
    result = assemble(
        model,
        every.y,
        prediction,
        every.columns,
        sample,
        sample_prediction,
        meta=meta,
        params=params.evaluate,
        seed=params.train.seed,
    )
    result.extra["evaluated_on"] = evaluated_on(total, len(sample), params)
    log.info(
        "evaluate on Dask: metrics on all %d held-out rows; importance, predictions and the "
        "reference on a seeded sample of %d",
        total,
        len(sample),
    )
    return OnDask(result, sample, simpler, timings)


def evaluated_on(rows: int, sampled: int, params: Params) -> dict[str, Any]:
    """slices.json's note of what `evaluate` on Dask measured on every held-out row and what
    on the seeded sample."""
    return {
        "where": "dask",
        "held_out_rows": rows,
        "exact": "metrics.json, slices, confusion_matrix, plots roc, precision_recall, "
        "confusion: every held-out row",
        "sample": {
            "rows": sampled,
            "of": rows,
            "seed": params.dask.seed,
            "key": "dask.sample_rows",
            "used_for": "plots/importance.csv and the feature-value check in checks.json, "
            f"{paths.PREDICTIONS}, {paths.REFERENCE}, the simpler models' test rows "
            f"({paths.BASELINES})",
        },
    }


def write(result: Evaluation) -> None:
    io.write_json(result.metrics, paths.METRICS)
    io.write_json(result.slices | result.extra, paths.SLICES)
    for name, frame in result.plots.items():
        io.write_csv(frame, paths.PLOTS_DIR / f"{name}.csv")
    io.write_parquet(result.predictions, paths.PREDICTIONS)


def dataset_identity(meta: ModelMeta) -> dict[str, Any]:
    """What the metrics were measured on (reports/dataset.json, committed beside them): the
    gate compares metrics only with a baseline of the same contract, target and task."""
    contract = {"name": meta.contract["name"], "version": meta.contract.get("version")}
    return {"contract": contract, "target": meta.target, "task": meta.task}


def reference_sample(
    test: pd.DataFrame, predictions: pd.DataFrame, target: str, pii: list[str] | None = None
) -> pd.DataFrame:
    """The monitoring reference: raw held-out rows (inputs + label) beside the model's output.

    `mlops monitor` compares current batches with it, so drift is measured against exactly
    the data the reported metrics came from. The contract's ``pii`` columns are left out:
    the reference is a long-lived copy of the data, and monitoring never measures them."""
    outputs = predictions.drop(columns=[c for c in predictions if c in test.columns])
    kept = test.drop(columns=[c for c in pii or [] if c in test.columns])
    return pd.concat([kept.reset_index(drop=True), outputs.reset_index(drop=True)], axis=1)


def enforce_checks(result: Evaluation, params: EvaluateParams) -> None:
    """reports/checks.json (feature value, slice quality and gap); then warn about checks that
    only report and stop with exit status 5 on the others (every report is written first)."""
    outcome = checks.check_evaluation(result.plots["importance"], result.slices, params)
    if "evaluated_on" in result.extra:  # on Dask: importance comes from the seeded sample
        sample = result.extra["evaluated_on"]["sample"]
        outcome["features"]["sample"] = {k: sample[k] for k in ("rows", "of", "seed", "key")}
    io.write_json(outcome, paths.CHECKS)
    stop, warn = checks.failures(outcome)
    for message in warn:
        log.warning("evaluate: %s", message)
    if stop:
        raise GateFailed("evaluate checks failed: " + "; ".join(stop) + f" (see {paths.CHECKS})")


def simpler_models(params: Params, meta: ModelMeta) -> tuple[dict[str, Any], dict[str, float]]:
    """reports/baselines.json: the class prior / mean and (within evaluate.reference) a plain
    HistGradientBoosting, fitted on the training features and scored on the test features."""
    return _measured(
        pd.read_parquet(paths.TRAIN_FEATURES), pd.read_parquet(paths.TEST_FEATURES), params, meta
    )


def simpler_models_on_dask(
    params: Params, meta: ModelMeta
) -> tuple[dict[str, Any], dict[str, float]]:
    """:func:`simpler_models` on seeded samples of the feature splits (inside a
    :func:`distributed.connect`): at most ``evaluate.reference.max_rows`` training rows (every
    row when the reference is fitted at all, as in process) and ``dask.sample_rows`` test
    rows; ``sample`` in the report says so."""
    from mlops_template import distributed
    from mlops_template.distributed_evaluate import sample

    seed = params.dask.seed
    train = distributed.read_parquet(paths.TRAIN_FEATURES, params.dask)
    train_rows = len(train)
    train_sample = distributed.sample(train, params.evaluate.reference.max_rows, seed, train_rows)
    test, test_rows = sample(
        distributed.read_parquet(paths.TEST_FEATURES, params.dask), params.dask
    )
    report, timings = _measured(train_sample, test, params, meta, train_rows)
    report["sample"] = {
        "train": {
            "rows": len(train_sample),
            "of": train_rows,
            "key": "evaluate.reference.max_rows",
        },
        "test": {"rows": len(test), "of": test_rows, "key": "dask.sample_rows"},
        "seed": seed,
        "note": "on Dask the simpler models are measured on seeded samples; the model's "
        "metrics in metrics.json are on every held-out row",
    }
    return report, timings


def _measured(
    train: pd.DataFrame,
    test: pd.DataFrame,
    params: Params,
    meta: ModelMeta,
    train_rows: int | None = None,
) -> tuple[dict[str, Any], dict[str, float]]:
    report, timings = baselines.measure(
        train,
        test,
        target=meta.target,
        task=meta.task,
        classes=meta.classes,
        params=params.evaluate.reference,
        seed=params.train.seed,
        train_rows=train_rows,
    )
    for name in ("prior", "reference"):
        shown = ", ".join(f"{k}={v:.4f}" for k, v in report[name].get("metrics", {}).items())
        log.info("evaluate: %s %s", name, shown or report[name].get("skipped", ""))
    return report, timings


def baseline_metrics(report: dict[str, Any], timings: dict[str, float]) -> dict[str, float]:
    """The simpler models' metrics as MLflow metrics (``baseline_prior_log_loss``, ...)."""
    out = {f"baseline_{k}": v for k, v in timings.items()}
    for name in ("prior", "reference"):
        for key, value in report[name].get("metrics", {}).items():
            if np.isfinite(value):
                out[f"baseline_{name}_{key}"] = value
    return out


def log_to_mlflow(
    result: Evaluation, params: Params, meta: ModelMeta, extra: dict[str, float] | None = None
) -> str:
    """Add test metrics and plots to the training run (or a new run if the store lacks it);
    ``extra``: more metrics to log as they are (the simpler models')."""
    mlflow = tracking.connect(params.tracking.experiment)
    run_id = meta.run_id
    with tracking.guarded("log the evaluation"):
        try:
            mlflow.get_run(run_id) if run_id else None
        except Exception:
            log.warning("training run %s is not in this store: logging to a new run", run_id)
            run_id = None
        with tracking.start_run(mlflow, run_id=run_id) as active:
            mlflow.log_metrics(
                {f"test_{k}": v for k, v in result.metrics.items() if np.isfinite(v)}
                | (extra or {})
            )
            mlflow.set_tag("evaluated", "true")
            mlflow.log_artifacts(str(paths.PLOTS_DIR), artifact_path="plots")
            mlflow.log_artifact(str(paths.SLICES))
            if paths.BASELINES.exists():
                mlflow.log_artifact(str(paths.BASELINES))
            return str(active.info.run_id)


def run(params: Params) -> None:
    """Entry point of the `evaluate` stage (``mlops stage evaluate``)."""
    model, meta = load()
    if params.dask.enabled:
        on_dask = evaluate_on_dask(model, meta, params)
        result, held_out = on_dask.result, on_dask.sample
    else:
        held_out = pd.read_parquet(paths.TEST_SPLIT)
        result = evaluate(
            model, held_out, meta=meta, params=params.evaluate, seed=params.train.seed
        )
    write(result)
    io.write_json(dataset_identity(meta), paths.DATASET)
    pii = load_contract(params.data.contract).pii_columns
    reference = reference_sample(held_out, result.predictions, meta.target, pii)
    io.write_parquet(reference, paths.REFERENCE)
    if params.dask.enabled:
        simpler, timings = on_dask.simpler, on_dask.timings
    else:
        simpler, timings = simpler_models(params, meta)
    io.write_json(simpler, paths.BASELINES)
    run_id = log_to_mlflow(result, params, meta, baseline_metrics(simpler, timings))
    shown = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items())
    log.info("evaluate: %s (MLflow run %s)", shown, run_id)
    enforce_checks(result, params.evaluate)
