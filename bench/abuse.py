"""Abuse benchmark: what two abusive clients cost the normal ones.

A real `bentoml serve` of this project's packaged model on loopback (or ``--url`` of a running
one). Normal clients (closed loop, aiohttp, ``--normal`` connections) post 1-row requests to
/predict while 2 abusive clients (threads of another process, ``requests``) post 100k-record
bodies as fast as the server answers them:

- ``100k records``: 100,000 contract-valid records (about 28 MB), over serve.max_body_bytes:
  413 before the body is read;
- ``100k tiny records``: 100,000 one-field records (1.5 MB), under the size limit: 400 from
  the row count, before any record is validated.

Each round runs the phases back to back (no abusers, then each kind of abuser), so machine
noise hits all alike. Reported: the median normal throughput of each phase over the rounds
and its ratio to the no-abuser phase, p50/p99 latency, the abusers' request rate and answers,
and the load average before every phase (the machine is shared). Writes
reports/benchmarks/abuse.md; ``--append`` adds a section to it instead, e.g. for a server
of another commit started by hand (``--url``).

    python bench/abuse.py [--seconds 8] [--rounds 3] [--normal 4] [--url URL --label TEXT]

Needs the pipeline up to `package` (reports/package.json) first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import signal
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import requests

import live  # bench/ is on sys.path when run as a script
from machine import describe, quiet_env, settle
from mlops_template import paths
from mlops_template.config import load_params

BIN = Path(sys.executable).parent
ROWS = 100_000
PHASES = ("no abusers", "100k records", "100k tiny records")


@dataclass
class Phase:
    name: str
    load: float  # 1-minute load average when the phase started
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    abusive: Counter[str]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


@contextmanager
def running() -> Iterator[str]:
    """`bentoml serve` of this project in its own process group, until the block ends."""
    port = live.free_port()
    cmd = [str(BIN / "bentoml"), "serve", "mlops_template.serving.service:MlopsService"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    try:
        with live.running(cmd, port=port, env=quiet_env(OMP_NUM_THREADS="1")) as url:
            yield url
    except live.NotReady as err:
        raise SystemExit(f"bentoml serve: {err}") from None


def _abuse(url: str, body: bytes, clients: int, events: tuple[Any, Any], answers: Any) -> None:
    """``clients`` threads posting ``body`` back to back until the stop event is set (the
    start event once the first answer came); counts the answers (HTTP status, or the
    exception's name) into the shared ``answers`` dict."""
    started, stop = events

    def client() -> None:
        seen: Counter[str] = Counter()
        with requests.Session() as session:
            while not stop.is_set():
                try:
                    resp = session.post(url, data=body, headers=JSON, timeout=30)
                    seen[str(resp.status_code)] += 1
                except requests.RequestException as err:
                    seen[type(err).__name__] += 1
                started.set()
        with lock:
            for key, n in seen.items():
                answers[key] = answers.get(key, 0) + n

    lock = threading.Lock()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


JSON = {"content-type": "application/json"}


async def _normal(url: str, body: bytes, concurrency: int, seconds: float) -> tuple[list, int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                async with session.post(url, data=body, headers=JSON) as resp:
                    await resp.read()
                if resp.status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors


def run_phase(
    name: str, url: str, normal: bytes, abusive: bytes | None, args: argparse.Namespace
) -> Phase:
    load = os.getloadavg()[0]
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager()
    started, stop, answers = manager.Event(), manager.Event(), manager.dict()
    abusers = None
    if abusive is not None:
        target = (f"{url}/predict", abusive, args.abusers, (started, stop), answers)
        abusers = ctx.Process(target=_abuse, args=target)
        abusers.start()
        started.wait(timeout=60)  # the abusers are at it before the normal clients start
    start = time.perf_counter()
    latencies, errors = asyncio.run(_normal(f"{url}/predict", normal, args.normal, args.seconds))
    elapsed = time.perf_counter() - start
    stop.set()
    if abusers is not None:
        abusers.join(timeout=60)
    seen = Counter(dict(answers))
    manager.shutdown()
    ms = np.array(latencies) * 1e3 if latencies else np.array([np.nan])
    p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
    return Phase(name, load, len(latencies), errors, elapsed, float(p50), float(p99), seen)


def bodies() -> dict[str, bytes]:
    meta = json.loads(paths.MODEL_META.read_text())
    test = pd.read_parquet(paths.TEST_SPLIT).drop(columns=[meta["target"]]).head(1)
    row = json.loads(test.to_json(orient="records", date_format="iso"))
    return {
        "normal": json.dumps({"records": row}).encode(),
        "100k records": json.dumps({"records": row * ROWS}).encode(),
        "100k tiny records": json.dumps({"records": [{"amount": 1}] * ROWS}).encode(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--normal", type=int, default=4, help="normal connections")
    parser.add_argument("--abusers", type=int, default=2)
    parser.add_argument("--url", help="a running server (default: start `bentoml serve`)")
    parser.add_argument("--label", default="this commit", help="section title")
    parser.add_argument("--append", action="store_true", help="add a section to --output")
    parser.add_argument("--output", default=str(paths.REPORTS_DIR / "benchmarks/abuse.md"))
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the server on kill too
    body = bodies()
    header = describe(("aiohttp", "requests"))
    results: dict[str, list[Phase]] = {name: [] for name in PHASES}
    with running() if args.url is None else _given(args.url) as url:
        served = requests.get(f"{url}/readyz", timeout=5).text
        asyncio.run(_normal(f"{url}/predict", body["normal"], 2, 2.0))  # warm-up
        for r in range(args.rounds):
            for name in PHASES:
                abusive = None if name == "no abusers" else body[name]
                results[name].append(run_phase(name, url, body["normal"], abusive, args))
            print(f"round {r + 1}/{args.rounds} done", flush=True)
    sizes = {name: len(body[name]) for name in PHASES[1:]}
    write(Path(args.output), header, results, sizes, served, args)


@contextmanager
def _given(url: str) -> Iterator[str]:
    yield url


def _median(phases: list[Phase], key: str) -> float:
    return float(statistics.median(getattr(p, key) for p in phases))


def write(
    path: Path,
    header: str,
    results: dict[str, list[Phase]],
    sizes: dict[str, int],
    served: str,
    args: argparse.Namespace,
) -> None:
    serve = load_params().serve
    base = _median(results["no abusers"], "rps")
    intro = "\n\n".join(__doc__.split("\n\n")[1:4])
    lines = [] if args.append else ["# Abuse benchmark\n", intro + "\n"]
    limits = (
        f"serve.workers={serve.workers}, serve.max_rows={serve.max_rows}, body limit "
        f"{serve.body_limit:,} bytes, serve.refusals_per_second={serve.refusals_per_second:g}"
        if args.url is None
        else f"started by hand at {args.url}"
    )
    lines += [
        f"## {args.label}\n",
        header,
        f"\nServed: `{served.strip() or '(readyz: 200)'}`; {limits}. {args.normal} normal "
        f"connections (closed loop, 1-row /predict) for {args.seconds:g} s "
        f"per phase; {args.abusers} abusive clients posting back to back; {args.rounds} rounds, "
        "phases in turn within a round; medians over the rounds. Client and server share the "
        "machine's cores.\n",
        "| phase | abusive body | normal req/s (median) | vs no abusers | p50 ms | p99 ms "
        "| abusive req/s | abusive answers | load avg at start (per round) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, phases in results.items():
        rps = _median(phases, "rps")
        answers: Counter[str] = sum((p.abusive for p in phases), Counter())
        abusive_rps = sum(answers.values()) / sum(p.seconds for p in phases)
        size = f"{sizes[name] / 1e6:.1f} MB" if name in sizes else "-"
        loads = " / ".join(f"{p.load:.1f}" for p in phases)
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(answers.items())) or "-"
        lines.append(
            f"| {name} | {size} | {rps:,.0f} | {rps / base - 1:+.0%} | "
            f"{_median(phases, 'p50_ms'):.1f} | {_median(phases, 'p99_ms'):.1f} | "
            f"{abusive_rps:.1f} | {shown} | {loads} |"
        )
    rounds = [
        f"{name}: " + ", ".join(f"{p.rps:,.0f}" for p in phases) for name, phases in results.items()
    ]
    lines.append("\nPer round (normal req/s): " + "; ".join(rounds) + ".")
    path.parent.mkdir(parents=True, exist_ok=True)
    before = path.read_text() + "\n" if args.append and path.exists() else ""
    path.write_text(before + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    settle()
    main()
