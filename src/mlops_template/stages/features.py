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
    """Entry point of the `features` stage (``mlops stage features``)."""
    for source, target in (
        (paths.TRAIN_SPLIT, paths.TRAIN_FEATURES),
        (paths.TEST_SPLIT, paths.TEST_FEATURES),
    ):
        frame = build_features(pd.read_parquet(source), params.features)
        io.write_parquet(frame, target)
        log.info("features: %s -> %s (%d columns)", source, target, frame.shape[1])
