"""The `features` stage: the feature function of :mod:`mlops_template.features` applied to
both splits (serving applies the same function to each request)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from mlops_template import io, paths
from mlops_template.config import FeaturesParams, Params
from mlops_template.features import build_features

log = logging.getLogger(__name__)


def features_partitioned(source: Path, target: Path, spec: FeaturesParams) -> int:
    """The feature function applied to each partition of a partitioned split, written as a
    partitioned Parquet folder (the same file names)."""
    import shutil
    import tempfile

    import dask

    from mlops_template.distributed import _read_file, dataset_files, replace_path

    files = dataset_files(str(source), name=str(source))
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent)).resolve()

    def one(path: str) -> int:
        frame = build_features(_read_file(path), spec)
        frame.to_parquet(tmp / Path(path).name, index=False)
        return int(frame.shape[1])

    try:
        widths = dask.compute(*[dask.delayed(one)(f) for f in files])
        replace_path(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return int(widths[0]) if widths else 0


def run(params: Params) -> None:
    """Entry point of the `features` stage (``mlops stage features``). Splits the data stage
    wrote as partitioned folders (on Dask) get partitioned features, partition by partition."""
    pairs = (
        (paths.TRAIN_SPLIT, paths.TRAIN_FEATURES),
        (paths.TEST_SPLIT, paths.TEST_FEATURES),
    )
    if params.dask.enabled and paths.TRAIN_SPLIT.is_dir():
        from mlops_template.distributed import connect

        with connect(params.dask):
            for source, target in pairs:
                width = features_partitioned(source, target, params.features)
                log.info("features on Dask: %s -> %s (%d columns)", source, target, width)
        return
    for source, target in pairs:
        frame = build_features(pd.read_parquet(source), params.features)
        io.write_parquet(frame, target)
        log.info("features: %s -> %s (%d columns)", source, target, frame.shape[1])
