"""The Dask side of the pipeline (``dask.enabled: true``, docs/scale-out.md): the cluster and
partitioned Parquet. What runs on it lives beside: distributed_data.py (the data stage),
distributed_train.py (lightgbm.dask), distributed_batch.py (`mlops score` and `mlops monitor`).

Only stages that run on the cluster import these modules, and they import ``dask`` /
``distributed`` / ``lightgbm.dask`` inside their functions: an in-process run never loads them.

- :func:`connect`: a client of ``dask.address`` (env ``MLOPS_DASK_ADDRESS``), or of a
  ``LocalCluster`` sized by ``dask.workers`` / ``dask.threads_per_worker`` / ``dask.memory_limit``;
- :func:`require_dask_model`: the in-process models say so in one line (exit 2);
- :func:`read_dataset`: one partition per Parquet file of a folder, glob or fsspec URL.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_template import paths
from mlops_template.config import DASK_MODELS, DaskParams
from mlops_template.errors import ClusterError, ConfigError, DataError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = "10s"

# The memory thresholds of the workers a LocalCluster starts (fractions of dask.memory_limit).
# No spilling: lightgbm.dask's futures hold sockets, which cannot be pickled to disk (a worker
# above the default target of 60 % failed with PickleError), and every stage here holds only
# what its current partitions need, so spilling would not help. Pause at 90 % (default 80 %)
# because a paused worker never starts its LightGBM part and the others wait for it; the
# nanny still restarts a worker at 95 % (Dask's default).
WORKER_MEMORY: dict[str, Any] = {
    "distributed.worker.memory.target": False,
    "distributed.worker.memory.spill": False,
    "distributed.worker.memory.pause": 0.90,
    "distributed.worker.memory.terminate": 0.95,
    # Memory a worker frees goes back to the system: Arrow's default pool (mimalloc) and
    # glibc's heap kept ~250-370 MiB of one 84 MiB Parquet read after it was freed (measured);
    # with the system allocator and every block above 64 KiB its own mapping, ~20 MiB.
    "distributed.nanny.pre-spawn-environ.ARROW_DEFAULT_MEMORY_POOL": "system",
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 65536,
}


def address(dask: DaskParams) -> str:
    """The scheduler to use: env ``MLOPS_DASK_ADDRESS``, else ``dask.address`` ("" = local)."""
    return os.environ.get(paths.ENV_DASK_ADDRESS) or dask.address


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
    import dask as dask_
    from distributed import LocalCluster

    # the nannies hand this configuration to their worker processes
    with (
        dask_.config.set(WORKER_MEMORY),
        LocalCluster(
            n_workers=dask.workers,
            threads_per_worker=dask.threads_per_worker,
            memory_limit=dask.memory_limit,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
    ):
        log.info(
            "dask: LocalCluster of %d workers x %d threads, %s each",
            dask.workers,
            dask.threads_per_worker,
            dask.memory_limit,
        )
        yield cluster


def read_parquet(path: Any, dask: DaskParams) -> Any:
    """A Dask DataFrame of a Parquet file or partitioned folder (glob, fsspec URL): one
    partition per file (dask's own reader may merge small files, which changes the partition
    count between graph and compute: lightgbm.dask's ``lengths`` then disagree). A single file
    (a split written in process) is cut into partitions of about ``dask.partition_rows``."""
    frame, _ = read_dataset(str(path))
    if frame.npartitions == 1:
        rows = len(frame)
        if rows > dask.partition_rows:
            frame = frame.repartition(npartitions=-(-rows // dask.partition_rows))
    return frame


def sample(frame: Any, rows: int, seed: int, total: int | None = None) -> pd.DataFrame:
    """A seeded sample of about ``rows`` rows of a Dask DataFrame, in this process.
    ``total``: the frame's row count, when the caller knows it (counting reads every
    partition)."""
    total = len(frame) if total is None else total
    if total <= rows:
        return nan_strings(frame.compute())
    return nan_strings(frame.sample(frac=rows / total, random_state=seed).compute())


def nan_strings(part: pd.DataFrame) -> pd.DataFrame:
    """Dask's string columns (pyarrow, ``pd.NA`` for missing) as the in-process pipeline gets
    them (pandas' "str", NaN): scikit-learn's imputers and encoders refuse ``pd.NA``. Every
    partition or sample a model sees on the cluster goes through it."""
    strings = {
        c: "str"
        for c, dtype in part.dtypes.items()
        if isinstance(dtype, pd.StringDtype) and dtype.na_value is pd.NA
    }
    return part.astype(strings) if strings else part


def dataset_files(location: str, name: str = "data.path") -> list[str]:
    """The Parquet files of a dataset: a folder (every ``*.parquet`` below it), a glob, or a
    single file; local or any fsspec URL. Sorted, so partition numbers are stable."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(location)
    if any(ch in root for ch in "*?["):
        found = fs.glob(root)
    elif fs.isdir(root):
        found = [p for p in fs.find(root) if p.endswith(".parquet")]
    else:
        found = [root] if fs.exists(root) else []
    if not found:
        raise DataError(f"{name}: no Parquet files at {location}")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    return [prefix + p for p in sorted(found)]


def _read_file(path: str) -> pd.DataFrame:
    import fsspec

    with fsspec.open(path, "rb") as fh:
        return pd.read_parquet(fh)


def _empty_like(path: str) -> pd.DataFrame:
    """The columns and dtypes of a Parquet file (what ``read_parquet(path).head(0)`` gives),
    from its first row: this process never reads a partition of a dataset it hands to the
    workers."""
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(path, "rb") as fh, pq.ParquetFile(fh) as pf:
        first = next(pf.iter_batches(batch_size=1), None)
        table = pf.schema_arrow.empty_table() if first is None else first
        return table.to_pandas().head(0)


def read_dataset(location: str) -> tuple[Any, list[str]]:
    """A Dask DataFrame with one partition per Parquet file of ``location`` (so a contract
    violation can name its file), and the files."""
    import dask.dataframe as dd

    files = dataset_files(location)
    meta = _empty_like(files[0])
    return dd.from_map(_read_file, files, meta=meta, enforce_metadata=False), files


def replace_path(source: Any, target: Any) -> None:
    """Move a finished folder over ``target`` (a file or a folder of an earlier run)."""
    import shutil
    from pathlib import Path

    target = Path(target)
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    os.replace(source, target)


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


def _peak_rss() -> int:
    """This process's peak resident memory (bytes; the kernel's high-water mark, VmHWM,
    since the process started or :func:`_reset_peak_rss`)."""
    import resource
    import sys

    if sys.platform == "linux":
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _reset_peak_rss() -> None:
    """Start this process's peak resident memory afresh (Linux: /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def reset_worker_peaks(client: Client) -> None:
    """Start every worker's peak resident memory afresh (Linux only), so the next
    :func:`worker_peaks` measures what ran since."""
    client.run(_reset_peak_rss)


def worker_peaks(client: Client) -> dict[str, int]:
    """Per worker address: the peak resident memory of its process since it started (bytes).
    The kernel's high-water mark, so no short spike is missed (Dask's monitor samples every
    0.5 s); the same measure as ``memory_limit`` (RSS)."""
    return client.run(_peak_rss)
