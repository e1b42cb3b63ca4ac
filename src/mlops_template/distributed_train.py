"""``train.model: lightgbm`` on Dask: the preprocessing fitted on a seeded sample and applied
per partition, then ``lightgbm.dask`` and ``to_local()``: the same scikit-learn pipeline as in
process (docs/scale-out.md)."""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_template.config import DaskParams, Task, TrainParams
from mlops_template.distributed import sample

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
    columns = [f"f{i}" for i in range(len(preprocess.get_feature_names_out()))]

    def transform(part: pd.DataFrame) -> pd.DataFrame:
        values = np.asarray(preprocess.transform(part.drop(columns=[target])), dtype="float64")
        out = pd.DataFrame(values, columns=columns, index=part.index)
        out[target] = part[target]
        return out

    meta = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
    meta[target] = frame._meta[target]
    # one pass over the data: the transformed partitions stay on their workers
    (ready,) = client.persist([frame.map_partitions(transform, meta=meta)])
    X = ready[columns].to_dask_array(lengths=True)
    y_frame = ready[target]
    classes = None
    if task != "regression":
        classes = np.sort(y_frame.dropna().unique().compute().to_numpy())
        y_frame = y_frame.map_partitions(
            lambda s: pd.Series(np.searchsorted(classes, s.to_numpy()), index=s.index),
            meta=(target, "int64"),
        )
    y = y_frame.to_dask_array(lengths=True)
    estimator = lightgbm_dask_estimator(task, train, client)
    with warnings.catch_warnings():  # "n_jobs will be ignored": the workers' threads are used
        warnings.filterwarnings("ignore", message="Parameter n_jobs", category=UserWarning)
        estimator.fit(X, y)
    local = estimator.to_local()
    if classes is not None:
        _relabel(local, classes)
    pipeline.steps[-1] = (pipeline.steps[-1][0], local)
    return pipeline
