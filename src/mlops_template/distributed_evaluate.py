"""The `evaluate` stage on Dask (``dask.enabled``, docs/scale-out.md): the held-out split stays
on the workers.

- :func:`held_out`: the trained pipeline (a plain local model) predicts every partition of
  the test split on a worker; only the target, the model's raw output and the columns the
  slices need come home (rows x a few numbers), so the held-out metrics, curves, confusion
  matrix and slices are computed on every row, exactly as in process.
- :func:`sample`: a seeded sample (``dask.sample_rows`` rows, ``dask.seed``) of a split, in
  this process, for what needs the feature table itself (permutation importance, the
  predictions file, the monitoring reference, the simpler models).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_template import distributed

if TYPE_CHECKING:
    from distributed import Client

    from mlops_template.config import DaskParams
    from mlops_template.model import ModelMeta

log = logging.getLogger(__name__)

OUTPUT = "__output_{}"  # the raw output's columns in what a partition sends home


@dataclass
class HeldOut:
    """What the metrics need of every held-out row: the target, the model's raw output
    (class probabilities, or values) and ``columns`` (the slice column)."""

    y: np.ndarray
    raw: np.ndarray
    columns: pd.DataFrame


def _outputs(part: pd.DataFrame, model: Any, meta: ModelMeta, keep: list[str]) -> pd.DataFrame:
    """One partition's target, kept columns and raw model output (on a worker)."""
    X = distributed.nan_strings(part[meta.input_columns])
    raw = model.predict(X) if meta.task == "regression" else model.predict_proba(X)
    raw = np.asarray(raw, dtype="float64").reshape(len(part), -1)
    out = {c: part[c].to_numpy() for c in [meta.target, *keep]}
    out |= {OUTPUT.format(j): raw[:, j] for j in range(raw.shape[1])}
    return pd.DataFrame(out)


def held_out(frame: Any, model: Any, meta: ModelMeta, keep: list[str], client: Client) -> HeldOut:
    """Predict every partition of ``frame`` (the raw test split, a Dask DataFrame) on the
    workers with ``model`` (sent once to every worker) and bring home what metrics need."""
    import dask as dask_

    shared = client.scatter(model, broadcast=True, hash=False)
    tasks = [dask_.delayed(_outputs)(part, shared, meta, keep) for part in frame.to_delayed()]
    parts = client.gather(client.compute(tasks))
    home = pd.concat(parts, ignore_index=True)
    del parts
    width = sum(c.startswith(OUTPUT.format("")) for c in home.columns)
    raw = home[[OUTPUT.format(j) for j in range(width)]].to_numpy(dtype="float64")
    if meta.task == "regression":
        raw = raw.reshape(-1)
    log.info("evaluate on Dask: %d held-out rows predicted on the workers", len(home))
    return HeldOut(home[meta.target].to_numpy(), raw, home[keep])


def sample(frame: Any, dask: DaskParams, total: int | None = None) -> tuple[pd.DataFrame, int]:
    """A seeded sample of about ``dask.sample_rows`` rows of ``frame`` (all of it when it is
    smaller; :func:`distributed.sample`) in this process, and the frame's row count
    (``total``, when the caller counted them already: counting reads every partition)."""
    total = len(frame) if total is None else total
    picked = distributed.sample(frame, dask.sample_rows, dask.seed, total)
    return picked.reset_index(drop=True), total
