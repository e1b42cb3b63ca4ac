"""What a benchmark ran on: every report in reports/benchmarks/ starts with this table."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib import metadata

import psutil

PACKAGES = ("scikit-learn", "pandas", "numpy", "pyarrow", "pandera", "dvc", "mlflow", "bentoml")


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
