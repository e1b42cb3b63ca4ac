"""Batch scoring: `mlops score INPUT --output OUT [--chunk-size N]`.

Reads CSV or Parquet in chunks (memory bounded by the chunk size), validates each chunk
against the data contract, predicts with models/model.joblib and writes every rejected row with
its reason to a side file (``<output stem>.rejected.csv``): nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from mlops_template import io, paths
from mlops_template.contract import Contract, check, load_contract
from mlops_template.errors import DataError

log = logging.getLogger(__name__)


def read_chunks(path: Path, chunk_size: int) -> Iterator[pd.DataFrame]:
    if not path.exists():
        raise DataError(f"{path}: input file not found")
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=chunk_size)


def split_valid(chunk: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(coerced valid rows, rejected rows with a `reason` column)."""
    report = check(chunk, contract, with_target=False)
    if report.ok:
        return report.valid, chunk.iloc[0:0].assign(reason=pd.Series(dtype=str))
    failures = report.failures
    idx = pd.to_numeric(failures["index"], errors="coerce")
    if idx.isna().any():  # frame-level failure (missing column, uncoercible column): reject all
        reason = "; ".join(
            f"{c}: {k}" for c, k in zip(failures["column"], failures["check"], strict=True)
        )
        return chunk.iloc[0:0], chunk.assign(reason=reason)
    reasons = (
        failures.assign(index=idx.astype(int), text=failures["column"] + ": " + failures["check"])
        .groupby("index")["text"]
        .agg("; ".join)
    )
    bad = chunk.loc[chunk.index.isin(reasons.index)].assign(reason=reasons)
    good = chunk.drop(index=bad.index)
    return (split_valid(good, contract)[0] if len(good) else good), bad


def score(input_path: Path, output: Path, chunk_size: int, contract: Contract) -> tuple[int, int]:
    """Score ``input_path`` into ``output``; returns (scored rows, rejected rows)."""
    import joblib
    from rich.progress import Progress

    model = joblib.load(paths.MODEL)
    classes = list(getattr(model, "classes_", []))
    scored, rejected = [], []
    with Progress(transient=True) as progress:
        task = progress.add_task(f"scoring {input_path}", total=None)
        for chunk in read_chunks(input_path, chunk_size):
            good, bad = split_valid(chunk, contract)
            if len(bad):
                rejected.append(bad)
            if len(good):
                out = good.copy()
                if classes:
                    proba = model.predict_proba(good)
                    out["prediction"] = [classes[i] for i in proba.argmax(axis=1)]
                    for j, c in enumerate(classes):
                        out[f"proba_{c}"] = proba[:, j]
                else:
                    out["prediction"] = model.predict(good)
                scored.append(out)
            progress.advance(task, len(chunk))
    result = pd.concat(scored) if scored else pd.DataFrame()
    if output.suffix in (".parquet", ".pq"):
        io.write_parquet(result, output)
    else:
        io.write_csv(result, output)
    side = output.with_name(output.stem + ".rejected.csv")
    io.write_csv(pd.concat(rejected) if rejected else pd.DataFrame(columns=["reason"]), side)
    n_bad = sum(len(b) for b in rejected)
    log.info("scored %d rows -> %s; %d rejected -> %s", len(result), output, n_bad, side)
    return len(result), n_bad


def run_cli(input_path: str, output: str, chunk_size: int, contract_path: str) -> None:
    score(Path(input_path), Path(output), chunk_size, load_contract(contract_path))
