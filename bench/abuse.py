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
import subprocess
import sys
import tempfile
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


def _own_home() -> str:
    """A BentoML home of this run's own sharing the store's models and Bentos: a starting
    server empties <home>/prometheus_multiproc_dir, which would reset the metrics of other
    servers using the same home."""
    store = Path(os.environ.get("BENTOML_HOME", Path.home() / "bentoml"))
    home = Path(tempfile.mkdtemp(prefix="abuse-home-"))
    for sub in ("models", "bentos"):
        (home / sub).symlink_to(store / sub, target_is_directory=True)
    return str(home)


@contextmanager
def running(**env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`bentoml serve` of this project in its own process group, until the block ends:
    (its URL, its process)."""
    port = live.free_port()
    cmd = [str(BIN / "bentoml"), "serve", "mlops_template.serving.service:MlopsService"]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    proc = live.launch(cmd, env=quiet_env(OMP_NUM_THREADS="1", BENTOML_HOME=_own_home(), **env))
    url = f"http://127.0.0.1:{port}"
    try:
        live.wait_until_ready(url, proc, timeout_s=120)
        yield url, proc
    except live.NotReady as err:
        raise SystemExit(f"bentoml serve: {err}") from None
    finally:
        live.stop(proc, timeout_s=60)


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
    parser.add_argument(
        "--probe", action="store_true", help="run the adversarial probe instead (its section)"
    )
    parser.add_argument("--probe-connections", type=int, default=200)
    parser.add_argument("--probe-seconds", type=float, default=30.0)
    parser.add_argument("--probe-in-flight", type=int, default=300)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the server on kill too
    if args.probe:
        header = describe(("aiohttp", "requests", "httpx"))
        write_probe(Path(args.output), header, run_probe(args), args)
        return
    body = bodies()
    header = describe(("aiohttp", "requests"))
    results: dict[str, list[Phase]] = {name: [] for name in PHASES}
    with running() if args.url is None else _given(args.url) as (url, _):
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
def _given(url: str) -> Iterator[tuple[str, None]]:
    yield url, None


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


# ------------------------------------------------------------ the adversarial probe

PROBE_HEADER = "## Adversarial probe"
PICKLE_TYPES = ("application/python-pickle", "application/x-pickle", "application/octet-stream")


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _items(item: bytes, n: int) -> bytes:
    return b'{"records": [' + b",".join([item] * n) + b"]}"


def probe_kinds(row: dict[str, Any]) -> list[tuple[str, bytes, dict[str, str], str]]:
    """(kind, body, headers, what is expected: "200" or "4xx") of every request the probe
    sends; bodies over the size limit are the clients' part (:func:`probe_clients`)."""
    ok, bad = "200", "4xx"
    good = _json({"records": [row]})
    raw_row = _json(row).decode()
    twice = raw_row.replace('"amount"', '"amount": 1, "amount"', 1)
    kinds: list[tuple[str, bytes, dict[str, str], str]] = [
        ("valid 1 row", good, JSON, ok),
        ("valid, application/vnd.api+json", good, {"content-type": "application/vnd.api+json"}, ok),
        ("valid, no content-type", good, {}, ok),
        ("malformed JSON", b'{"records": [', JSON, bad),
        ("empty body", b"", JSON, bad),
        ("top-level list", _json([row]), JSON, bad),
        ("top-level string", b'"records"', JSON, bad),
        ("records an object", _json({"records": row}), JSON, bad),
        ("empty list", _json({"records": []}), JSON, bad),
        ("1001 rows", _json({"records": [row] * 1001}), JSON, bad),
        ("100k one-field records (1.5 MB)", _json({"records": [{"amount": 1}] * ROWS}), JSON, bad),
        ("1M zeros (2 MB)", _items(b"0", 1_000_000), JSON, bad),
        ("700k empty lists (2 MB)", _items(b"[]", 700_000), JSON, bad),
        ("500k strings", _items(b'"x"', 500_000), JSON, bad),
        ("100k nested lists", b'{"records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", JSON, bad),
        ("extra top-level key", _json({"records": [row], "debug": True}), JSON, bad),
        ("records twice", f'{{"records": [], "records": [{raw_row}]}}'.encode(), JSON, bad),
        (
            "a field twice",
            b'{"records": [' + twice.encode() + b"]}",
            JSON,
            bad,
        ),
        ("extra field", _json({"records": [row | {"colour": "red"}]}), JSON, bad),
        (
            "missing field",
            _json({"records": [{k: v for k, v in row.items() if k != "amount"}]}),
            JSON,
            bad,
        ),
        ("1 MB key", _json({"records": [row | {"k" * 1_000_000: 1}]}), JSON, bad),
        ("duplicate ids", _json({"records": [row, row]}), JSON, bad),
        ("invalid UTF-8", good.replace(b'{"records"', b'{"rec\xff"'), JSON, bad),
        ("BOM before JSON", b"\xef\xbb\xbf" + good, JSON, bad),
    ]
    loose = [
        ("amount", "38.75"), ("amount", None), ("amount", -5.0), ("amount", True),
        ("is_foreign", "yes"), ("is_foreign", 1), ("transaction_id", True),
        ("transaction_id", 2**63), ("transaction_id", 10**30), ("txn_count_24h", 1.0),
        ("txn_count_24h", 10_001), ("timestamp", 12345), ("timestamp", "12345"),
        ("timestamp", "not a date"), ("timestamp", "0001-01-01T00:00:00+05:00"),
        ("channel", "carrier_pigeon"), ("channel", 1),
    ]  # fmt: skip
    for field, value in loose:
        kinds.append(
            (
                f"{field} = {json.dumps(value)[:30]}",
                _json({"records": [row | {field: value}]}),
                JSON,
                bad,
            )
        )
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = good.replace(
            f'"amount": {json.dumps(row["amount"])}'.encode(), f'"amount": {literal}'.encode()
        )
        kinds.append((f"amount = {literal}", body, JSON, bad))
    huge = good.replace(b'"transaction_id": ', b'"transaction_id": 1' + b"0" * 5000 + b', "x": ')
    kinds.append(("5000-digit integer", huge, JSON, bad))
    for ctype in (
        "text/plain",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded",
        *PICKLE_TYPES,
    ):
        kinds.append((f"content-type {ctype.split(';')[0]}", good, {"content-type": ctype}, bad))
    return kinds


def probe_requests(url: str, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Every kind of request sent to both predict endpoints, one at a time: each answer's
    status, time and error type."""
    results = []
    with requests.Session() as session:
        for kind, body, headers, expected in probe_kinds(row):
            seen = {"kind": kind, "expected": expected}
            for endpoint in ("/predict", "/predict_batched"):
                start = time.perf_counter()
                try:
                    resp = session.post(f"{url}{endpoint}", data=body, headers=headers, timeout=60)
                    status = str(resp.status_code)
                    reason = ""
                    if resp.status_code >= 400:
                        try:
                            reason = str(resp.json()["detail"][0]["type"])
                        except (ValueError, KeyError, IndexError, TypeError):
                            reason = "-"
                except requests.RequestException as err:
                    status, reason = type(err).__name__, ""
                seen[endpoint] = (status, reason, (time.perf_counter() - start) * 1e3)
            results.append(seen)
    return results


def _client_urllib(url: str, body: bytes) -> str:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, headers=JSON, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return str(resp.status)
    except urllib.error.HTTPError as err:
        return str(err.code)


def _client_httpx(url: str, body: bytes) -> str:
    import httpx

    return str(httpx.post(url, content=body, headers=JSON, timeout=60).status_code)


def _client_curl(url: str, body: bytes, *options: str) -> str:
    import shutil
    import tempfile

    if shutil.which("curl") is None:
        return "no curl"
    with tempfile.NamedTemporaryFile(suffix=".json") as file:
        file.write(body)
        file.flush()
        command = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *options]
        command += ["-H", "content-type: application/json", "--data-binary", f"@{file.name}", url]
        out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return out.stdout.strip() if out.returncode == 0 else f"curl exit {out.returncode}"


CLIENTS = {
    "urllib": _client_urllib,
    "requests": lambda url, body: str(
        requests.post(url, data=body, headers=JSON, timeout=60).status_code
    ),
    "httpx": _client_httpx,
    "curl (Expect: 100-continue)": _client_curl,
    "curl (no Expect)": lambda url, body: _client_curl(url, body, "-H", "Expect:"),
}


def probe_clients(url: str, bodies: dict[str, bytes]) -> list[tuple[str, str, str]]:
    """(client, body, what it read) for bodies over the size limit: a status, or the error."""
    out = []
    for name, send in CLIENTS.items():
        for label, body in bodies.items():
            try:
                got = send(f"{url}/predict", body)
            except Exception as err:  # what the client saw is the finding
                got = type(err).__name__
            out.append((name, label, got))
    return out


def _logged_rows(path: Path) -> int:
    from mlops_template.request_log import read_request_log

    return len(read_request_log(path)) if path.exists() else 0


async def _burst(url: str, body: bytes, n: int, on_answer: Any) -> Counter[str]:
    """``n`` requests at once; ``on_answer`` is called after each answer."""
    seen: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=n)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            try:
                async with session.post(url, data=body, headers=JSON) as resp:
                    await resp.read()
                    seen[str(resp.status)] += 1
            except aiohttp.ClientError as err:
                seen[type(err).__name__] += 1
            on_answer()

        await asyncio.gather(*(one() for _ in range(n)))
    return seen


def run_probe(args: argparse.Namespace) -> dict[str, Any]:
    body = bodies()
    row = json.loads(body["normal"])["records"][0]
    log = Path(tempfile.mkdtemp(prefix="abuse-probe-")) / "requests.db"
    result: dict[str, Any] = {"log": str(log)}
    with running(MLOPS_REQUEST_LOG=str(log)) as (url, proc):
        result["served"] = requests.get(f"{url}/readyz", timeout=5).text.strip()
        result["requests"] = probe_requests(url, row)
        over = {"100k records (Content-Length)": body["100k records"]}
        result["clients"] = probe_clients(url, over)
        chunked = (
            body["100k records"][i : i + 65536] for i in range(0, len(body["100k records"]), 65536)
        )
        resp = requests.post(f"{url}/predict", data=chunked, headers=JSON, timeout=60)
        result["chunked"] = str(resp.status_code)
        start = time.perf_counter()
        latencies, errors = asyncio.run(
            _normal(f"{url}/predict", body["normal"], args.probe_connections, args.probe_seconds)
        )
        result["load"] = (len(latencies), errors, time.perf_counter() - start)
        time.sleep(2.0)  # the log's writer thread
        answered = {"n": 0}

        def count() -> None:
            answered["n"] += 1
            if answered["n"] == 20:
                proc.send_signal(signal.SIGTERM)  # the `bentoml serve` process: it drains

        result["sigterm"] = asyncio.run(
            _burst(f"{url}/predict", body["normal"], args.probe_in_flight, count)
        )
        proc.wait(timeout=60)
    result["logged"] = _logged_rows(log)
    return result


def statuses_200(rows: list[dict[str, Any]]) -> int:
    return sum(1 for r in rows for e in ("/predict", "/predict_batched") if r[e][0] == "200")


def write_probe(path: Path, header: str, result: dict[str, Any], args: argparse.Namespace) -> None:
    rows = result["requests"]
    total = sum(1 for r in rows for e in ("/predict", "/predict_batched"))
    statuses: Counter[str] = Counter(
        r[e][0] for r in rows for e in ("/predict", "/predict_batched")
    )
    fives = sum(n for s, n in statuses.items() if s.startswith("5") or not s.isdigit())
    unexpected = [
        (r["kind"], e, r[e][0])
        for r in rows
        for e in ("/predict", "/predict_batched")
        if (r["expected"] == "200") != (r[e][0] == "200")
    ]
    served, errors, seconds = result["load"]
    sigterm: Counter[str] = result["sigterm"]
    valid = served + sigterm.get("200", 0) + statuses_200(rows)
    lines = [
        f"{PROBE_HEADER}\n",
        "`python bench/abuse.py --probe`: a real `bentoml serve` of this project's packaged "
        "model on loopback (serve.workers from params.yaml); every kind of request below sent to "
        "both predict endpoints, bodies over the size limit sent by each client, then "
        f"{args.probe_connections} connections of valid 1-row requests for "
        f"{args.probe_seconds:g} s, then SIGTERM after the first 20 answers of "
        f"{args.probe_in_flight} requests sent at once. Compare a new run with this one: the "
        "counts and statuses should match (times move with the machine's load).\n",
        header,
        f"\nServed: `{result['served']}`.\n",
        "**Counts.** "
        f"{len(rows)} request kinds x 2 endpoints = {total} requests: "
        + ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
        + f"; **{fives} 5xx or connection errors**; answers other than expected "
        f"(200 for the valid kinds, 4xx for the rest): {len(unexpected)}"
        + (f" ({unexpected})" if unexpected else "")
        + ". "
        f"Load held: {served:,} valid requests answered 200 in {seconds:.1f} s over "
        f"{args.probe_connections} connections, {errors} errors. "
        f"SIGTERM with {args.probe_in_flight} requests in flight: "
        + ", ".join(f"{s}: {n}" for s, n in sorted(sigterm.items()))
        + f". Request log rows after the server stopped: {result['logged']:,} "
        f"(valid requests answered 200 in all: {valid:,}).\n",
        "**Clients, body over serve.max_body_bytes** (what each read):\n",
        "| client | body | read |",
        "| --- | --- | --- |",
        *[f"| {c} | {b} | {g} |" for c, b, g in result["clients"]],
        f"| requests | 100k records (chunked) | {result['chunked']} |",
        "\n**Request kinds** (status, error type, ms):\n",
        "| kind | expected | /predict | /predict_batched |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [
            f"{s} {why} ({ms:,.0f} ms)".replace("  ", " ")
            for s, why, ms in (r["/predict"], r["/predict_batched"])
        ]
        lines.append(f"| {r['kind']} | {r['expected']} | {cells[0]} | {cells[1]} |")
    text = path.read_text() if path.exists() else "# Abuse benchmark\n"
    if PROBE_HEADER in text:  # the previous probe's section goes, the others stay
        start = text.index(PROBE_HEADER)
        end = text.find("\n## ", start + 1)
        text = text[:start] + (text[end + 1 :] if end != -1 else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    settle()
    main()
