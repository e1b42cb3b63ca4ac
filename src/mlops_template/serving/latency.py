"""The serving latency gate: the packaged model's 1-row in-process latency against a baseline.

``python -m mlops_template.serving.latency [--baseline REF]`` (``make latency-gate``, after the
package stage) loads the service exactly as a worker does (the stored model, hash-checked; ONNX when
packaged with it) and times its response path (``MlopsService._serve``: typed columns, features,
model, decision, request log enqueue) on one row of the test split, interleaved call by call with a
fixed reference workload (numpy + Python, no model). On a shared machine both slow down alike, so
the gated number is their ratio (``serve_1row_ratio``), not the microseconds. It writes
``reports/latency.json`` (a DVC metrics file: ``dvc metrics diff`` shows it) and fails, with one
line, when the ratio grew by more than ``serve.latency_max_increase_rel`` over the committed
``reports/latency.json`` of ``gate.baseline_ref`` (none there: passes, saying so)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mlops_template import io, paths
from mlops_template.errors import GateFailed

log = logging.getLogger(__name__)

LATENCY = paths.REPORTS_DIR / "latency.json"
CALLS = 1_000  # timed calls of each (the medians are gated)
_RNG = np.random.default_rng(0)
_REF_DATA = _RNG.random(2_000)


def reference() -> float:
    """A fixed workload of the same kind as serving (small numpy ops + Python dicts)."""
    total = 0.0
    for _ in range(20):
        x = np.sort(_REF_DATA[:200])
        total += float(np.log1p(x).sum())
        total += len({str(i): i for i in range(20)})
    return total


def timed_pair(serve: Callable[[], Any], calls: int = CALLS) -> tuple[float, float]:
    """Median µs of ``serve`` and of :func:`reference`, called alternately ``calls`` times."""
    ours, ref = [], []
    for _ in range(calls):
        start = time.perf_counter()
        serve()
        middle = time.perf_counter()
        reference()
        ours.append(middle - start)
        ref.append(time.perf_counter() - middle)
    return statistics.median(ours) * 1e6, statistics.median(ref) * 1e6


def measure(calls: int = CALLS) -> dict[str, float]:
    """The served path on one test-split row, as a worker runs it (its request log in a
    temporary folder)."""
    import pandas as pd

    os.environ[paths.ENV_REQUEST_LOG] = str(Path(tempfile.mkdtemp()) / "requests.jsonl")
    from mlops_template.serving import service

    worker: Any = service.MlopsService.inner()  # type: ignore[attr-defined]
    if service.HEALTH.failure:
        raise GateFailed(f"latency: the service cannot serve: {service.HEALTH.failure}")
    row = pd.read_parquet(paths.TEST_SPLIT).head(1)
    record = json.loads(row.to_json(orient="records", date_format="iso"))[0]
    records = [service.Record.model_validate({k: record[k] for k in service._INPUTS})]
    columns = worker._columns(records)
    for _ in range(50):  # warm-up
        worker._serve(columns)
    p50, ref = timed_pair(lambda: worker._serve(columns), calls)
    worker.log.close()
    return {
        "serve_1row_p50_us": round(p50, 1),
        "reference_p50_us": round(ref, 1),
        "serve_1row_ratio": round(p50 / ref, 4),
        "runtime": worker.champion.runtime,
    }


def baseline(ref: str, path: Path = LATENCY) -> dict[str, Any] | None:
    """The committed ``path`` at git ``ref``, None when that commit has none."""
    done = subprocess.run(
        ["git", "show", f"{ref}:{path.as_posix()}"], capture_output=True, text=True, check=False
    )
    return json.loads(done.stdout) if done.returncode == 0 else None


def compare(current: dict[str, Any], base: dict[str, Any] | None, max_increase: float) -> str:
    """One line: the decision. Raises GateFailed when the ratio grew past the tolerance."""
    if base is None or "serve_1row_ratio" not in base:
        return "latency gate: no baseline latency recorded: passes"
    if base.get("runtime") != current["runtime"]:
        return f"latency gate: baseline runtime {base.get('runtime')} differs: passes"
    growth = current["serve_1row_ratio"] / base["serve_1row_ratio"] - 1
    line = (
        f"serve_1row_ratio {current['serve_1row_ratio']:.4g} vs {base['serve_1row_ratio']:.4g} "
        f"({growth:+.0%}; allowed +{max_increase:.0%}, serve.latency_max_increase_rel)"
    )
    if growth > max_increase:
        raise GateFailed(f"latency gate failed: {line}")
    return f"latency gate passed: {line}"


def main(argv: list[str] | None = None) -> int:
    from mlops_template.config import load_params

    parser = argparse.ArgumentParser(prog="python -m mlops_template.serving.latency")
    parser.add_argument("--baseline", default=None, help="git ref (default gate.baseline_ref)")
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    params = load_params(os.environ.get(paths.ENV_PARAMS, str(paths.PARAMS)))
    ref = args.baseline or params.gate.baseline_ref
    try:
        current = measure(args.calls)
        base = baseline(ref)
        io.write_json(current, LATENCY)
        log.info("%s: %s", LATENCY, current)
        print(compare(current, base, params.serve.latency_max_increase_rel))
    except GateFailed as err:
        print(f"error: {err}", file=sys.stderr)
        return 5
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
