"""Rollout benchmark: what a shadow or a canary costs the client, against the same service
serving one model.

Three `bentoml serve` processes of this service run at once, 1 worker each, on the same
champion: ``single``, ``shadow`` (the challenger predicts every request off the response
path) and ``canary`` (the challenger answers ``--share`` of the route keys). The challenger
defaults to the champion's own tag, loaded a second time: the shadow then does exactly the
champion's work again, the worst case for a challenger of the same kind. A closed-loop aiohttp
client sends 1-row and 100-row requests, each with fresh transaction ids (so the canary really
splits), rounds interleaving the servers step by step. Reported: p50 / p99 and throughput per
server, their ratio to single in the same run, errors, and what the shadow logged.
Writes reports/benchmarks/rollout.md.

    python bench/rollout.py [--seconds 3] [--rounds 5] [--concurrency 1 4]

Needs a packaged model (reports/package.json) and the test split.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from machine import describe, settle  # bench/ is on sys.path when run as a script
from mlops_template import io, paths
from serving import BIN, Server, Step, _free_port, _median_step, _records, load, running

GOALS = {"shadow": 1.20, "canary": 1.05}  # most p50 of 1-row requests, relative to single


def _params(tmp: Path, name: str, serve: dict[str, Any]) -> Path:
    raw = yaml.safe_load(paths.PARAMS.read_text())
    raw["serve"] |= {"workers": 1, "request_log": str(tmp / f"{name}.db")} | serve
    out = tmp / f"params-{name}.yaml"
    out.write_text(yaml.safe_dump(raw))
    return out


def servers(tmp: Path, champion: str, challenger: str, share: float) -> list[tuple[Server, int]]:
    from machine import quiet_env

    variants = {
        "single": {"strategy": "single"},
        "shadow": {"strategy": "shadow", "challenger": challenger},
        "canary": {"strategy": "canary", "challenger": challenger, "challenger_share": share},
    }
    out = []
    for name, serve in variants.items():
        port = _free_port()
        cmd = [str(BIN / "bentoml"), "serve", "mlops_template.serving.service:MlopsService"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--arg", f"model_tag={champion}"]
        env = quiet_env(OMP_NUM_THREADS="1", MLOPS_PARAMS=str(_params(tmp, name, serve)))
        out.append((Server(name, cmd, "/readyz", "/predict", "records", env), port))
    return out


def bodies(frame: pd.DataFrame, rows: int, count: int, id_column: str) -> list[bytes]:
    """``count`` request bodies of ``rows`` rows each, every row with a fresh id."""
    records = _records(frame.head(rows))
    out, next_id = [], 10_000_000
    for _ in range(count):
        batch = []
        for record in records:
            batch.append(record | {id_column: next_id})
            next_id += 1
        out.append(json.dumps({"records": batch}).encode())
    return out


def logged(path: Path) -> dict[str, int]:
    from mlops_template.request_log import read_request_log

    if not path.exists():
        return {}
    frame = read_request_log(path, roles=None)
    return {str(k): int(v) for k, v in frame["role"].value_counts().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--challenger", help="a stored model tag (default: the champion's)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    champion = json.loads(paths.PACKAGE.read_text())["model_tag"]
    challenger = args.challenger or champion
    meta = json.loads(paths.MODEL_META.read_text())
    test = pd.read_parquet(paths.TEST_SPLIT).drop(columns=[meta["target"]])
    id_column = meta.get("id_column") or "transaction_id"
    payloads = {n: bodies(test, n, 500, id_column) for n in (1, 100)}
    steps: dict[tuple[str, int, int], list[Step]] = {}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        targets = []
        for server, port in servers(Path(tmp), champion, challenger, args.share):
            url = stack.enter_context(running(server, port))
            targets.append((server.name, url + "/predict"))
        for _, url in targets:  # warm-up
            asyncio.run(load(url, payloads[1][:50], 1, 1.0))
        for r in range(args.rounds):
            for n, bodies_ in payloads.items():
                for c in args.concurrency:
                    for name, url in targets:
                        step = asyncio.run(load(url, bodies_, c, args.seconds))
                        steps.setdefault((name, n, c), []).append(step)
            print(f"round {r + 1}/{args.rounds} done", flush=True)
        time.sleep(2)  # the request logs are written on background threads
        logs = {name: logged(Path(tmp) / f"{name}.db") for name, _ in targets}
    report({k: _median_step(v) for k, v in steps.items()}, logs, champion, challenger, args)


def report(
    steps: dict[tuple[str, int, int], Step],
    logs: dict[str, dict[str, int]],
    champion: str,
    challenger: str,
    args: argparse.Namespace,
) -> None:
    lines = ["# Rollout benchmark\n", describe(("onnxruntime", "orjson", "aiohttp"))]
    same = " (the champion itself, loaded twice)" if challenger == champion else ""
    lines += [
        f"\nChampion `{champion}`, challenger `{challenger}`{same}. Three servers up at once, "
        f"1 worker each, OMP_NUM_THREADS=1: single, shadow, canary "
        f"(challenger_share {args.share}). Closed-loop aiohttp client on the same machine, "
        f"fresh transaction ids in every request, {args.rounds} rounds interleaving the "
        f"servers step by step, {args.seconds:g} s per step, connections {args.concurrency}; "
        "each number is the median-throughput round of its step.\n",
        "| rows/request | connections | strategy | req/s | p50 ms | p99 ms | p50 vs single "
        "| req/s vs single | errors |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = sorted({k[0] for k in steps}, key=["single", "shadow", "canary"].index)
    for n in (1, 100):
        for c in args.concurrency:
            base = steps[("single", n, c)]
            for name in names:
                s = steps[(name, n, c)]
                lines.append(
                    f"| {n} | {c} | {name} | {s.rps:,.0f} | {s.p50_ms:.2f} | {s.p99_ms:.2f} | "
                    f"{s.p50_ms / base.p50_ms:.2f}x | {s.rps / base.rps:.2f}x | {s.errors} |"
                )
    lines += ["", "## Goals (1-row requests, 1 connection)\n"]
    base = steps[("single", 1, args.concurrency[0])]
    for name, goal in GOALS.items():
        s = steps[(name, 1, args.concurrency[0])]
        ratio = s.p50_ms / base.p50_ms
        errors = sum(steps[(name, n, c)].errors for n in (1, 100) for c in args.concurrency)
        verdict = "met" if ratio <= goal and errors == 0 else "**not met**"
        lines.append(
            f"- {name}: p50 {ratio:.2f}x single (goal ≤ {goal:.2f}x), {errors} errors: {verdict}"
        )
    lines += ["", "## What the servers logged (rows by role)\n"]
    for name, counts in logs.items():
        lines.append(f"- {name}: {json.dumps(counts, sort_keys=True)}")
    shadow = logs.get("shadow", {})
    if shadow.get("champion"):
        lines.append(
            f"\nShadow coverage: {shadow.get('shadow', 0) / shadow['champion']:.1%} of the "
            "champion's rows were also predicted by the challenger (the rest were dropped by "
            "its bounded queue while the client kept the worker busy)."
        )
    out = paths.REPORTS_DIR / "benchmarks/rollout.md"
    io.write_text("\n".join(lines) + "\n", out)
    print("\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    settle()
    main()
