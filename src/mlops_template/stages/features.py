"""The `features` stage: the feature function of :mod:`mlops_template.features` applied to
both splits (serving applies the same function to each request)."""

from __future__ import annotations

import logging

import pandas as pd

from mlops_template import io, paths
from mlops_template.config import Params
from mlops_template.features import build_features

log = logging.getLogger(__name__)


def run(params: Params) -> None:
    """Entry point of the `features` stage (``mlops stage features``). Splits the data stage
    wrote as partitioned folders (on Dask) get partitioned features, partition by partition."""
    pairs = (
        (paths.TRAIN_SPLIT, paths.TRAIN_FEATURES),
        (paths.TEST_SPLIT, paths.TEST_FEATURES),
    )
    if params.dask.enabled and paths.TRAIN_SPLIT.is_dir():
        from mlops_template import distributed

        with distributed.connect(params.dask):
            for source, target in pairs:
                width = distributed.features_partitioned(source, target, params.features)
                log.info("features on Dask: %s -> %s (%d columns)", source, target, width)
        return
    for source, target in pairs:
        frame = build_features(pd.read_parquet(source), params.features)
        io.write_parquet(frame, target)
        log.info("features: %s -> %s (%d columns)", source, target, frame.shape[1])
