"""`mlops score` and `mlops monitor` on Dask: one onnxruntime session per partition, partitioned
Parquet predictions; PSI per column counted on the workers over every row."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.config import DaskParams
from mlops_template.distributed import (
    _read_file,
    connect,
    nan_strings,
    read_dataset,
    replace_path,
)

log = logging.getLogger(__name__)


PSI_BINS = 10


PSI_FLOOR = 1e-4  # share given to an empty bin, so PSI stays finite


def _score_partition(
    part: pd.DataFrame,
    number: int,
    *,
    model: Any,
    onnx_bytes: bytes | None,
    meta: Any,
    contract: Any,
    out: str,
    rejected_out: str,
) -> tuple[int, int]:
    """Validate, featurize and predict one partition (an onnxruntime session of its own, or
    the pickled pipeline when ONNX did not pass its parity check); write its predictions."""
    from mlops_template.model import decide
    from mlops_template.onnx_path import OnnxModel, split_pipeline
    from mlops_template.score import split_valid

    good, bad = split_valid(part.reset_index(drop=True), contract)
    name = f"part-{number:05d}"
    if len(bad):
        bad.to_csv(f"{rejected_out}/{name}.csv", index=False)
    if not len(good):
        return 0, len(bad)
    X = nan_strings(good[meta.input_columns])
    if onnx_bytes is not None:
        session = OnnxModel(onnx_bytes)
        features = split_pipeline(model)[0].transform(X)
        regression = meta.task == "regression"
        raw = session.predict(features) if regression else session.predict_proba(features)
    else:
        raw = model.predict(X) if meta.task == "regression" else model.predict_proba(X)
    prediction = decide(raw, meta).frame(meta.classes)
    scored = pd.concat([good.reset_index(drop=True), prediction], axis=1)
    scored.to_parquet(f"{out}/{name}.parquet", index=False)
    return len(scored), len(bad)


def score(input_path: str, output: Any, contract: Any, dask: DaskParams) -> tuple[int, int]:
    """`mlops score` on the cluster: every partition (file) of ``input_path`` is validated and
    predicted on a worker with an ONNX session of its own; predictions are written as a
    partitioned Parquet folder ``output``, rejected rows with their reason as CSV parts in
    ``<output stem>.rejected/``. Returns (scored rows, rejected rows)."""
    import shutil
    import tempfile
    from pathlib import Path

    import dask as dask_

    from mlops_template.model import load
    from mlops_template.onnx_path import export

    model, meta = load()
    frame, files = read_dataset(input_path)
    head = _read_file(files[0]).head(1000)
    valid_head = head[[c for c in meta.input_columns if c in head.columns]]
    onnx_bytes, record = export(model, valid_head, meta.task, tolerance=1e-5)
    log.info("score on Dask: %s runtime (%s)", record["runtime"], record.get("onnx_max_abs_diff"))
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    side = output.with_name(output.stem + ".rejected")
    tmp_out = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent)).resolve()
    tmp_side = Path(tempfile.mkdtemp(prefix=f".{side.name}.", dir=output.parent)).resolve()
    try:
        with connect(dask):
            tasks = [
                dask_.delayed(_score_partition)(
                    part,
                    number,
                    model=model,
                    onnx_bytes=onnx_bytes,
                    meta=meta,
                    contract=contract,
                    out=str(tmp_out),
                    rejected_out=str(tmp_side),
                )
                for number, part in enumerate(frame.to_delayed())
            ]
            counts = dask_.compute(*tasks)
        replace_path(tmp_out, output)
        replace_path(tmp_side, side)
    finally:
        shutil.rmtree(tmp_out, ignore_errors=True)
        shutil.rmtree(tmp_side, ignore_errors=True)
    scored, rejected = sum(c[0] for c in counts), sum(c[1] for c in counts)
    log.info("scored %d rows -> %s; %d rejected -> %s", scored, output, rejected, side)
    return scored, rejected


def _counts(
    part: pd.DataFrame, edges: dict[str, np.ndarray], levels: dict[str, list[Any]]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for column, cuts in edges.items():
        values = pd.to_numeric(part[column], errors="coerce").to_numpy(dtype="float64")
        values = values[~np.isnan(values)]
        out[column] = np.bincount(
            np.searchsorted(cuts, values, side="right"), minlength=len(cuts) + 1
        )
    for column, known in levels.items():
        counts = part[column].astype("string").value_counts(dropna=True)
        row = [int(counts.get(v, 0)) for v in known]
        out[column] = np.array([*row, int(counts.sum()) - sum(row)])  # last: values unseen
    return out


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(expected / max(expected.sum(), 1), PSI_FLOOR)
    a = np.maximum(actual / max(actual.sum(), 1), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def drift_psi(
    reference: pd.DataFrame, location: str, columns: list[str], dask: DaskParams
) -> dict[str, Any]:
    """Population stability index per column of the whole current dataset against the
    reference, counted on the workers partition by partition: numeric columns in the
    reference's deciles, categorical ones per reference value (plus one bin for unseen
    values). Exact counts over every row; no row leaves its worker."""
    import dask as dask_

    edges: dict[str, np.ndarray] = {}
    levels: dict[str, list[Any]] = {}
    for column in columns:
        series = reference[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            qs = np.nanquantile(
                series.to_numpy(dtype="float64"), np.linspace(0, 1, PSI_BINS + 1)[1:-1]
            )
            edges[column] = np.unique(qs)
        else:
            levels[column] = sorted(series.dropna().astype("string").unique().tolist())
    expected = _counts(reference, edges, levels)
    frame, _ = read_dataset(location)
    with connect(dask):
        parts = dask_.compute(
            *[dask_.delayed(_counts)(p, edges, levels) for p in frame.to_delayed()]
        )
    result = {}
    for column in columns:
        actual = np.sum([p[column] for p in parts], axis=0)
        result[column] = {
            "psi": round(_psi(expected[column], actual), 6),
            "rows": int(actual.sum()),
        }
    return {"method": "psi", "bins": PSI_BINS, "columns": result}


def sample_dataset(
    location: str, rows: int, seed: int, dask: DaskParams
) -> tuple[pd.DataFrame, int]:
    """A seeded sample of about ``rows`` rows of a partitioned dataset (what the Evidently
    report runs on) and the dataset's row count, computed on the cluster."""
    frame, _ = read_dataset(location)
    with connect(dask):
        total = len(frame)
        if total <= rows:
            return frame.compute().reset_index(drop=True), total
        picked = frame.sample(frac=rows / total, random_state=seed).compute()
    return picked.reset_index(drop=True), total
