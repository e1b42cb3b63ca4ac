"""Batch scoring: `mlops score INPUT --output OUT [--chunk-size N]`.

Reads CSV or Parquet (a local path or fsspec URL, through :mod:`mlops_template.sources`) in
chunks (memory bounded by the chunk size), validates each chunk against the data contract,
predicts with models/model.skops and writes every rejected row with its reason to a side file
(``<output stem>.rejected.csv``): nothing is dropped silently.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_template import io, sources
from mlops_template.contract import Contract, check, load_contract
from mlops_template.errors import ConfigError, DataError
from mlops_template.model import ModelMeta, load, predict

log = logging.getLogger(__name__)


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


class _ChunkWriter:
    """Appends chunks to a Parquet or CSV file (one open file, nothing kept in memory).

    Parquet needs one schema: later chunks are cast to the first chunk's schema."""

    def __init__(self, path: Path, parquet: bool) -> None:
        self.path = path
        self.parquet = parquet
        self.rows = 0
        self._parquet: Any = None
        self._csv: Any = None

    def write(self, frame: pd.DataFrame) -> None:
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self._parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self._parquet = pq.ParquetWriter(self.path, table.schema)
            else:
                table = pa.Table.from_pandas(frame, preserve_index=False).cast(self._parquet.schema)
            self._parquet.write_table(table)
        else:
            if self._csv is None:
                self._csv = open(self.path, "w", newline="")  # noqa: SIM115 (closed in close())
                frame.to_csv(self._csv, index=False)
            else:
                frame.to_csv(self._csv, index=False, header=False)
        self.rows += len(frame)

    def close(self, empty: pd.DataFrame) -> None:
        if self._parquet is None and self._csv is None:
            self.write(empty)  # no rows at all: still write a file with the columns
        if self._parquet is not None:
            self._parquet.close()
        if self._csv is not None:
            self._csv.close()


def _predict(model: Any, good: pd.DataFrame, meta: ModelMeta) -> pd.DataFrame:
    prediction = predict(model, good, meta).frame(meta.classes)
    return pd.concat([good.reset_index(drop=True), prediction], axis=1)


def score(
    input_path: str | Path, output: Path, chunk_size: int, contract: Contract
) -> tuple[int, int]:
    """Score ``input_path`` into ``output``; returns (scored rows, rejected rows).

    Each chunk is validated, predicted and appended to temporary files that replace ``output``
    and the side file only at the end, so memory is bounded by the chunk size and a failed run
    leaves no half-written output."""
    from rich.progress import Progress

    source = sources.table(input_path, name="mlops score")
    model, meta = load()
    side = output.with_name(output.stem + ".rejected.csv")
    with io.atomic_path(output) as out_tmp, io.atomic_path(side) as side_tmp:
        scored = _ChunkWriter(out_tmp, parquet=output.suffix in (".parquet", ".pq"))
        rejected = _ChunkWriter(side_tmp, parquet=False)
        try:
            with Progress(transient=True) as progress:
                task = progress.add_task(f"scoring {input_path}", total=None)
                for chunk in sources.chunks(source, chunk_rows=chunk_size):
                    good, bad = split_valid(chunk, contract)
                    if len(bad):
                        rejected.write(bad)
                    if len(good):
                        scored.write(_predict(model, good, meta))
                    progress.advance(task, len(chunk))
        finally:
            scored.close(pd.DataFrame())
            rejected.close(pd.DataFrame(columns=["reason"]))
    log.info("scored %d rows -> %s; %d rejected -> %s", scored.rows, output, rejected.rows, side)
    return scored.rows, rejected.rows


def run_cli(input_path: str, output: str, chunk_size: int, contract_path: str) -> None:
    """``mlops score``: exit 2 for an output folder that does not exist (a typo must not
    create folders), exit 3 when the contract rejected every row (nothing was scored)."""
    out = Path(output)
    if not out.parent.is_dir():
        raise ConfigError(
            f"--output {output}: folder {out.parent} does not exist (create it first)"
        )
    scored, rejected = score(input_path, out, chunk_size, load_contract(contract_path))
    if scored == 0 and rejected:
        side = out.with_name(out.stem + ".rejected.csv")
        raise DataError(
            f"{input_path}: the contract rejected all {rejected} rows, none scored "
            f"(reasons in {side})"
        )
