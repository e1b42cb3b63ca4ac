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

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("scikit-learn", "pandas", "numpy", "pyarrow", "pandera", "dvc", "mlflow", "bentoml")


def quiet_env(**extra: str) -> dict[str, str]:
    """os.environ with telemetry off (the project's one list: telemetry.env) and ``extra``."""
    lines = (ROOT / "telemetry.env").read_text().splitlines()
    off = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return dict(os.environ) | off | extra


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
    rows = [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("cpu", f"{cpu_model()} ({os.cpu_count()} logical cores)"),
        ("memory", f"{psutil.virtual_memory().total / 2**30:.1f} GiB"),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("os", platform.platform()),
        ("python", platform.python_version()),
        ("packages", versions),
    ]
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
