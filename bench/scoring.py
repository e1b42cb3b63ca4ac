"""Batch scoring memory: `mlops score` on large Parquet files; peak RSS from os.wait4.

Builds N-row inputs by tiling the test split (fresh transaction ids), scores them with the real
CLI in a child process and reports its peak resident memory, so "memory bounded by the chunk
size" is checked at 1M and 10M rows. Writes reports/benchmarks/scoring.md.

    python bench/scoring.py [--rows 1000000 10000000] [--chunk-size 100000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from machine import describe, settle  # bench/ is on sys.path when run as a script
from mlops_template import io, paths

MLOPS = str(Path(sys.executable).parent / "mlops")


def make_input(rows: int, target: Path) -> None:
    """Tile the test split into ``rows`` rows, writing one row group per tile (bounded)."""
    base = pd.read_parquet(paths.TEST_SPLIT).drop(columns=["is_fraud"])
    writer: pq.ParquetWriter | None = None
    done = 0
    while done < rows:
        part = base.head(rows - done).copy()
        part["transaction_id"] = range(done + 1, done + 1 + len(part))
        table = pa.Table.from_pandas(part, preserve_index=False)
        writer = writer or pq.ParquetWriter(target, table.schema)
        writer.write_table(table.cast(writer.schema))
        done += len(part)
    assert writer is not None
    writer.close()


def score(source: Path, chunk_size: int) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `mlops score` in a child process."""
    out = source.with_name(source.stem + ".scored.parquet")
    start = time.perf_counter()
    proc = subprocess.Popen(
        [MLOPS, "score", str(source), "--output", str(out), "--chunk-size", str(chunk_size)],
        env=os.environ | {"OMP_NUM_THREADS": "1"},
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"mlops score failed on {source}")
    scored = pq.ParquetFile(out).metadata.num_rows
    print(f"{source.name}: {scored} rows scored in {elapsed:.0f} s", flush=True)
    return elapsed, usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--chunk-size", type=int, default=100_000)
    args = parser.parse_args()
    lines = [
        "# Batch scoring memory (`mlops score`)\n",
        describe(),
        f"\nChunk size {args.chunk_size:,} rows; input = the test split tiled to N rows "
        "(Parquet); peak RSS of the `mlops score` process from `os.wait4`.\n",
        "| rows | input MiB | wall s | rows/s | peak RSS MiB |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            source = Path(tmp) / f"input_{rows}.parquet"
            make_input(rows, source)
            wall, rss = score(source, args.chunk_size)
            size = source.stat().st_size / 2**20
            lines.append(f"| {rows:,} | {size:.0f} | {wall:.0f} | {rows / wall:,.0f} | {rss:.0f} |")
            for f in Path(tmp).iterdir():
                f.unlink()
    io.write_text("\n".join(lines) + "\n", "reports/benchmarks/scoring.md")
    print("\n".join(lines))


if __name__ == "__main__":
    settle()
    main()
