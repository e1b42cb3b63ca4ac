"""``train.model: lightgbm`` on Dask: the preprocessing fitted on a seeded sample and applied
per partition, then ``lightgbm.dask`` and ``to_local()``: the same scikit-learn pipeline as in
process (docs/scale-out.md)."""

from __future__ import annotations

import functools
import logging
import operator
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_template.config import DaskParams, Task, TrainParams
from mlops_template.distributed import nan_strings, sample
from mlops_template.errors import ClusterError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)


def lightgbm_dask_estimator(task: Task, train: TrainParams, client: Client) -> Any:
    """``DaskLGBMClassifier`` / ``DaskLGBMRegressor`` with the in-process hyper-parameters."""
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    from mlops_template.model import lightgbm_kwargs

    kwargs = lightgbm_kwargs(task, train.estimator_params(), train.seed)
    kwargs.pop("n_jobs", None)  # lightgbm.dask: the worker's threads
    if task == "regression":
        return DaskLGBMRegressor(client=client, **kwargs)
    return DaskLGBMClassifier(client=client, **kwargs)


def _categorical(pipeline: Any, train: TrainParams) -> dict[str, Any]:
    """The positions of the categorical codes that model.make_pipeline gave the in-process
    estimator (none: {}), for the Dask one: both split on the same columns as categories."""
    from mlops_template.estimators import ESTIMATORS

    key = ESTIMATORS[train.model].categorical_param
    value = pipeline.steps[-1][1].get_params().get(key) if key else None
    return {key: value} if value else {}


def _relabel(model: Any, classes: np.ndarray) -> None:
    """Give a classifier trained on class codes 0..k-1 the original labels (what
    ``LGBMClassifier.fit`` records when given them): ``classes_`` and ``predict`` then return
    labels, exactly as the in-process model does."""
    from lightgbm.compat import _LGBMLabelEncoder

    encoder = _LGBMLabelEncoder().fit(classes)
    model._le = encoder
    model._classes = encoder.classes_
    model._n_classes = len(encoder.classes_)
    model._class_map = dict(zip(encoder.classes_, encoder.transform(encoder.classes_), strict=True))


def _prepare(
    part: pd.DataFrame, preprocess: Any, target: str, encoded: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """One partition as LightGBM's input: the transformed features (float64, C order; the
    target-encoded columns out of fold, when ``encoded``) and the raw target."""
    X = preprocess.transform(nan_strings(part.drop(columns=[target])))
    X = np.ascontiguousarray(X, dtype="float64")  # a copy only when needed
    if encoded is not None:
        encoded.out_of_fold.apply(part, X, encoded.positions)
    return X, part[target].to_numpy()


@dataclass
class _Encoded:
    """The high-cardinality columns' out-of-fold encodings and their positions in the
    preprocessed matrix."""

    out_of_fold: Any
    positions: dict[str, list[int]]


def _target_encode(
    frame: Any, preprocess: Any, target: str, task: Task, seed: int
) -> _Encoded | None:
    """The high-cardinality columns' target encoding from a Dask group-by over the whole
    split (distributed_encoding): the pipeline's encoder gets every row's statistics, the
    training rows their out-of-fold ones; None when there are no such columns."""
    from mlops_template import distributed_encoding

    if "high_cardinality" not in preprocess.named_transformers_:
        return None
    columns = [str(c) for c in preprocess.named_transformers_["high_cardinality"].feature_names_in_]
    encoder = preprocess.named_transformers_["high_cardinality"].named_steps["encode"]
    classes = getattr(encoder, "classes_", None)
    out_of_fold = distributed_encoding.fit(
        frame,
        encoder,
        columns=columns,
        target=target,
        task=task,
        classes=None if classes is None else np.asarray(classes),
        seed=seed,
    )
    where = preprocess.output_indices_["high_cardinality"]
    width = (where.stop - where.start) // len(columns)  # one per class for multiclass
    positions = {
        c: list(range(where.start + i * width, where.start + (i + 1) * width))
        for i, c in enumerate(columns)
    }
    return _Encoded(out_of_fold, positions)


def _labels(y: np.ndarray) -> np.ndarray:
    return pd.Series(y).dropna().unique()


def _code(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.searchsorted(classes, y).astype("int64")


def _place(frame: Any, prepare: Any, client: Client) -> tuple[list[Any], list[Any], list[str]]:
    """Read and transform every partition on a worker chosen round-robin (so every worker
    holds its share before LightGBM starts, and the shares differ by at most one partition);
    returns the futures of the feature matrices and of the targets, and their workers. Only
    the transformed arrays stay in memory: lightgbm.dask then slices them without a copy."""
    import dask as dask_
    from distributed import wait

    workers = sorted(client.scheduler_info()["workers"])
    X_parts, y_parts, where = [], [], []
    for i, part in enumerate(frame.to_delayed()):
        worker = workers[i % len(workers)]
        pair = client.compute(dask_.delayed(prepare)(part), workers=[worker])
        X_parts.append(client.submit(operator.itemgetter(0), pair, workers=[worker], pure=False))
        y_parts.append(client.submit(operator.itemgetter(1), pair, workers=[worker], pure=False))
        where.append(worker)
        del pair  # the pair is released once both halves are taken
    wait(X_parts + y_parts)
    return X_parts, y_parts, where


WATCH_S = 2.0  # how often the workers are checked while LightGBM trains


def _worker_states(client: Client) -> dict[str, str]:
    return client.run_on_scheduler(
        lambda dask_scheduler: {a: w.status.name for a, w in dask_scheduler.workers.items()}
    )


def _fit_watched(
    estimator: Any, X: Any, y: Any, client: Client, workers: set[str], dask: DaskParams
) -> None:
    """``estimator.fit(X, y)`` while this thread watches the workers that hold the data.
    lightgbm.dask ties each worker's part to that worker: if one dies (LightGBM itself
    crashes a worker whose peers never connected) its part can run nowhere and the fit would
    wait for ever; if one stays paused (memory) its part never starts. Either is one
    ClusterError (exit 11): a lost worker at once, a paused one after
    ``dask.socket_timeout_minutes``."""
    import threading

    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            estimator.fit(X, y)
        except BaseException as err:  # handed to the caller's thread
            outcome["error"] = err

    thread = threading.Thread(target=run, name="lightgbm-dask-fit", daemon=True)
    thread.start()
    paused_since: dict[str, float] = {}
    while True:
        thread.join(WATCH_S)
        if not thread.is_alive():
            break
        states = _worker_states(client)
        lost = sorted(workers - set(states))
        if lost:
            raise ClusterError(
                f"train on Dask: worker {', '.join(lost)} was lost while LightGBM trained (out "
                "of memory, or LightGBM's network failed); give the workers more memory "
                "(dask.memory_limit) or more workers"
            )
        now = time.monotonic()
        for worker in workers:
            if states.get(worker) == "paused":
                paused_since.setdefault(worker, now)
            else:
                paused_since.pop(worker, None)
        stuck = sorted(
            w for w, t in paused_since.items() if now - t > 60 * dask.socket_timeout_minutes
        )
        if stuck:
            raise ClusterError(
                f"train on Dask: worker {', '.join(stuck)} stayed paused (memory above its pause "
                f"threshold) for dask.socket_timeout_minutes ({dask.socket_timeout_minutes}); "
                "give the workers more memory (dask.memory_limit) or more workers"
            )
    if "error" in outcome:
        raise outcome["error"]


def fit_lightgbm(
    frame: Any,
    *,
    pipeline: Any,
    target: str,
    task: Task,
    train: TrainParams,
    dask: DaskParams,
    client: Client,
) -> Any:
    """``pipeline`` [preprocess, LGBM estimator] (as :func:`model.make_pipeline` builds it)
    fitted on a Dask DataFrame of features that never sits in this process.

    The preprocessing (the categorical columns' codes, the target encoders) is fitted on a
    seeded sample of ``dask.sample_rows`` rows (a category the sample lacks is coded as
    missing, as an unseen one is at serving), then applied to each partition on the workers,
    which keep the transformed arrays (one partition after another on each worker in turn);
    LightGBM trains on all rows across the workers (each worker on the partitions it holds; a
    worker that does not join LightGBM's network within ``dask.socket_timeout_minutes``
    fails the fit); ``to_local()`` makes the estimator a plain ``LGBMClassifier`` /
    ``LGBMRegressor``, so the result is saved, exported to ONNX and served exactly like the
    in-process model. Classes are coded 0..k-1 here, from the labels of the whole split, so
    every worker agrees on them."""
    import dask as dask_
    import dask.array as da
    from lightgbm.basic import LightGBMError

    head = sample(frame, dask.sample_rows, dask.seed)
    preprocess = pipeline.steps[0][1].fit(head.drop(columns=[target]), head[target])
    encoded = _target_encode(frame, preprocess, target, task, dask.seed)
    width = len(preprocess.get_feature_names_out())
    prepare = functools.partial(_prepare, preprocess=preprocess, target=target, encoded=encoded)
    X_parts, y_parts, where = _place(frame, prepare, client)
    rows = client.gather(
        [client.submit(len, y, workers=[w]) for y, w in zip(y_parts, where, strict=True)]
    )
    kept = [i for i, n in enumerate(rows) if n]  # an empty partition gives LightGBM nothing
    classes = None
    if task != "regression":
        labels = client.gather([client.submit(_labels, y_parts[i]) for i in kept])
        classes = np.sort(pd.Series(np.concatenate(labels)).unique())
        y_parts = [
            client.submit(_code, y, classes, workers=[w], pure=False)
            for y, w in zip(y_parts, where, strict=True)
        ]
    X = da.concatenate(
        [
            da.from_delayed(dask_.delayed(X_parts[i]), shape=(rows[i], width), dtype="float64")
            for i in kept
        ]
    )
    y = da.concatenate(
        [
            da.from_delayed(
                dask_.delayed(y_parts[i]),
                shape=(rows[i],),
                dtype="int64" if classes is not None else "float64",
            )
            for i in kept
        ]
    )
    estimator = lightgbm_dask_estimator(task, train, client)
    estimator.set_params(time_out=dask.socket_timeout_minutes, **_categorical(pipeline, train))
    log.info(
        "train on Dask: %d rows x %d features in %d partitions on %d workers",
        sum(rows),
        width,
        len(kept),
        len({where[i] for i in kept}),
    )
    with warnings.catch_warnings():  # "n_jobs will be ignored": the workers' threads are used
        warnings.filterwarnings("ignore", message="Parameter n_jobs", category=UserWarning)
        try:
            _fit_watched(estimator, X, y, client, {where[i] for i in kept}, dask)
        except LightGBMError as err:
            raise ClusterError(
                f"train on Dask: LightGBM's workers failed to train together ({err}): a worker "
                "was lost, or did not join LightGBM's network within "
                f"dask.socket_timeout_minutes ({dask.socket_timeout_minutes}); give the workers "
                "more memory (dask.memory_limit) or more workers"
            ) from None
    del X, y, X_parts, y_parts
    local = estimator.to_local()
    if classes is not None:
        _relabel(local, classes)
    pipeline.steps[-1] = (pipeline.steps[-1][0], local)
    return pipeline
