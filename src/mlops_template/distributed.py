"""The Dask side of the pipeline (``dask.enabled: true``, docs/scale-out.md).

Only stages that run on the cluster import this module, and it imports ``dask`` /
``distributed`` / ``lightgbm.dask`` inside its functions: an in-process run never loads them.

- :func:`connect`: a client of ``dask.address`` (env ``MLOPS_DASK_ADDRESS``), or of a
  ``LocalCluster`` sized by ``dask.workers`` / ``dask.threads_per_worker`` / ``dask.memory_limit``;
- :func:`require_dask_model`: the in-process models say so in one line (exit 2);
- :func:`fit_lightgbm`: the preprocessing fitted on a seeded sample, applied per partition,
  then ``lightgbm.dask`` and ``to_local()``: the same scikit-learn pipeline as in process.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_template.config import DASK_MODELS, DaskParams, Task, TrainParams
from mlops_template.errors import ClusterError, ConfigError, DataError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

DASK_ENV = "MLOPS_DASK_ADDRESS"
CONNECT_TIMEOUT = "10s"


def address(dask: DaskParams) -> str:
    """The scheduler to use: env ``MLOPS_DASK_ADDRESS``, else ``dask.address`` ("" = local)."""
    return os.environ.get(DASK_ENV) or dask.address


def require_dask_model(model: str) -> None:
    """``train.model`` must be one that trains on a cluster when ``dask.enabled`` is true."""
    if model not in DASK_MODELS:
        raise ConfigError(
            f"train.model: {model!r} trains in one process only; with dask.enabled: true "
            f"choose {' or '.join(DASK_MODELS)} (or set dask.enabled: false)"
        )


@contextmanager
def connect(dask: DaskParams) -> Iterator[Client]:
    """A client of the configured scheduler, or of a fresh loopback ``LocalCluster`` that is
    closed on exit. An unreachable scheduler is one line naming its address (exit 11)."""
    from distributed import Client

    where = address(dask)
    if where:
        try:
            client = Client(where, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as err:
            raise ClusterError(
                f"dask.address: cannot reach the Dask scheduler at {where} within "
                f"{CONNECT_TIMEOUT} ({type(err).__name__}); start it or fix the address"
            ) from None
        workers = len(client.scheduler_info()["workers"])
        log.info("dask: scheduler %s, %d workers", where, workers)
        try:
            yield client
        finally:
            client.close()
        return
    with local_cluster(dask) as cluster, Client(cluster) as client:
        yield client


@contextmanager
def local_cluster(dask: DaskParams) -> Iterator[Any]:
    """A ``LocalCluster`` on loopback: ``dask.workers`` processes of ``dask.threads_per_worker``
    threads and ``dask.memory_limit`` each, no dashboard."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=dask.workers,
        threads_per_worker=dask.threads_per_worker,
        memory_limit=dask.memory_limit,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        log.info(
            "dask: LocalCluster of %d workers x %d threads, %s each",
            dask.workers,
            dask.threads_per_worker,
            dask.memory_limit,
        )
        yield cluster


# --------------------------------------------------------------------------- lightgbm


def lightgbm_dask_estimator(task: Task, train: TrainParams, client: Client) -> Any:
    """``DaskLGBMClassifier`` / ``DaskLGBMRegressor`` with the in-process hyper-parameters."""
    from lightgbm.dask import DaskLGBMClassifier, DaskLGBMRegressor

    from mlops_template.model import lightgbm_kwargs

    kwargs = lightgbm_kwargs(task, train.lightgbm.model_dump(), train.seed)
    kwargs.pop("n_jobs", None)  # lightgbm.dask: the worker's threads
    if task == "regression":
        return DaskLGBMRegressor(client=client, **kwargs)
    return DaskLGBMClassifier(client=client, **kwargs)


def read_parquet(path: Any, dask: DaskParams) -> Any:
    """A Dask DataFrame of a Parquet file, folder, glob or fsspec URL. A single file (a split
    written in process) is cut into partitions of about ``dask.partition_rows`` rows."""
    import dask.dataframe as dd

    try:
        frame = dd.read_parquet(str(path))
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: cannot read as Parquet ({type(err).__name__}: {err})") from None
    if frame.npartitions == 1:
        rows = len(frame)
        if rows > dask.partition_rows:
            frame = frame.repartition(npartitions=-(-rows // dask.partition_rows))
    return frame


def sample(frame: Any, rows: int, seed: int) -> pd.DataFrame:
    """A seeded sample of about ``rows`` rows of a Dask DataFrame, in this process."""
    total = len(frame)
    if total <= rows:
        return frame.compute()
    return frame.sample(frac=rows / total, random_state=seed).compute()


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

    The preprocessing (imputers, one-hot and target encoders) is fitted on a seeded sample of
    ``dask.sample_rows`` rows, then applied to each partition on the workers; LightGBM trains
    on all rows across the workers (each worker on its own partitions); ``to_local()`` makes
    the estimator a plain ``LGBMClassifier`` / ``LGBMRegressor``, so the result is pickled,
    exported to ONNX and served exactly like the in-process model. Classes are coded 0..k-1
    here, from the labels of the whole split, so every worker agrees on them."""
    head = sample(frame, dask.sample_rows, dask.seed)
    preprocess = pipeline.steps[0][1].fit(head.drop(columns=[target]), head[target])
    columns = len(preprocess.get_feature_names_out())

    def transform(part: pd.DataFrame) -> np.ndarray:
        return np.asarray(preprocess.transform(part.drop(columns=[target])), dtype="float64")

    X = frame.map_partitions(
        lambda part: pd.DataFrame(transform(part), index=part.index),
        meta=pd.DataFrame({i: pd.Series(dtype="float64") for i in range(columns)}),
    ).to_dask_array(lengths=True)
    y_frame = frame[target]
    classes = None
    if task != "regression":
        classes = np.sort(y_frame.dropna().unique().compute().to_numpy())
        y_frame = y_frame.map_partitions(
            lambda s: pd.Series(np.searchsorted(classes, s.to_numpy()), index=s.index),
            meta=(target, "int64"),
        )
    y = y_frame.to_dask_array(lengths=True)
    X, y = client.persist([X, y])
    estimator = lightgbm_dask_estimator(task, train, client)
    with warnings.catch_warnings():  # "n_jobs will be ignored": the workers' threads are used
        warnings.filterwarnings("ignore", message="Parameter n_jobs", category=UserWarning)
        estimator.fit(X, y)
    local = estimator.to_local()
    if classes is not None:
        _relabel(local, classes)
    pipeline.steps[-1] = (pipeline.steps[-1][0], local)
    return pipeline


def worker_memory(client: Client) -> dict[str, dict[str, float]]:
    """Per worker: its memory limit and the process memory the scheduler last heard of (MiB)."""
    info = client.scheduler_info()["workers"]
    mib = 1 << 20
    return {
        name: {
            "limit_mib": w["memory_limit"] / mib,
            "memory_mib": w["metrics"]["memory"] / mib,
        }
        for name, w in info.items()
    }
