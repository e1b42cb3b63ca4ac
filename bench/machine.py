"""What a benchmark ran on: every report in reports/benchmarks/ starts with this table."""

from __future__ import annotations

import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

from mlops_template import paths

ROOT = Path(__file__).resolve().parents[1]
QUIET_LOAD = 1.0  # a 1-minute load average above this at start: numbers are noisy
PACKAGES = ("scikit-learn", "pandas", "numpy", "pyarrow", "pandera", "dvc", "mlflow", "bentoml")


def quiet_env(**extra: str) -> dict[str, str]:
    """os.environ with telemetry off (the project's one list: telemetry.env) and ``extra``."""
    return dict(os.environ) | paths.telemetry_defaults(ROOT / paths.TELEMETRY_ENV) | extra


_start_load: tuple[float, ...] | None = None


def settle(timeout_s: float | None = None, poll_s: float = 10.0) -> tuple[float, ...]:
    """Wait until the 1-minute load average is below QUIET_LOAD (at most ``timeout_s``,
    default $BENCH_SETTLE_S or 600 s), then remember the load average as this run's start
    (``describe`` reports it and flags a busy start). Call it first in a benchmark's main."""
    global _start_load
    if timeout_s is None:
        timeout_s = float(os.environ.get("BENCH_SETTLE_S", "600"))
    deadline = time.monotonic() + timeout_s
    while os.getloadavg()[0] > QUIET_LOAD and time.monotonic() < deadline:
        print(f"waiting for a quiet machine: load {os.getloadavg()[0]:.2f}", flush=True)
        time.sleep(poll_s)
    _start_load = os.getloadavg()
    return _start_load


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe(extra_packages: tuple[str, ...] = ()) -> str:
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in PACKAGES + extra_packages)
    load = _start_load or os.getloadavg()
    rows = [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("cpu", f"{cpu_model()} ({os.cpu_count()} logical cores)"),
        ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("load average at start", " ".join(f"{x:.2f}" for x in load)),
        ("os", platform.platform()),
        ("python", platform.python_version()),
        ("packages", versions),
    ]
    if load[0] > QUIET_LOAD:
        rows.append(("warning", f"busy machine at start (load > {QUIET_LOAD}): re-run when quiet"))
    return "| machine | |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"


def _spin(n: int) -> float:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += i
    return time.perf_counter() - start


def parallel_ceiling(workers: int = 2, n: int = 20_000_000, repeats: int = 3) -> float:
    """Median throughput of ``workers`` busy processes relative to one: the most any
    ``workers``-way parallel speed-up can reach on this machine right now (shared vCPUs are
    often slower than one free core)."""
    ratios = []
    with ProcessPoolExecutor(workers) as pool:
        for _ in range(repeats):
            one = _spin(n)
            start = time.perf_counter()
            list(pool.map(_spin, [n] * workers))
            ratios.append(workers * one / (time.perf_counter() - start))
    return statistics.median(ratios)
