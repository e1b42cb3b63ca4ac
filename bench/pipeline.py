"""Benchmark the whole pipeline at several synthetic row counts.

For each size, a copy of the project runs every stage in its own process (as `dvc repro`
does) and we record wall time, rows/s and peak RSS per stage (from the kernel's rusage of
that process), plus how much of the wall time is model fitting (CV + final fit, reported by
the train stage). Writes reports/benchmarks/pipeline.md.

    python bench/pipeline.py                      # 100k, 1M, 10M rows
    python bench/pipeline.py --rows 100000 1000000
    python bench/pipeline.py --baseline-src /tmp/main/src   # also time another checkout's code

With ``--baseline-src`` every size runs twice in a row, once with that source tree (for example
``git archive main src | tar -x -C /tmp/main``) and once with this one, so the ratios come
from one run on one machine state. Every size waits for a quiet machine first (machine.settle)
and its row states the load it started at.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))  # bench/ is scripts, not a package
from machine import describe, quiet_env, settle

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["data", "features", "train", "evaluate"]
COPY = ["params.yaml", "contract.yaml", "dvc.yaml", ".dvc", ".dvcignore"]
FIXED_ROWS = 1_000  # the pipeline on a table this small is (almost) all fixed cost


def stage_env(src: Path | None) -> dict[str, str]:
    """Telemetry off, this venv first on PATH; ``src`` (another checkout's src/) first on the
    import path when given."""
    env = quiet_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env.pop("PYTHONPATH", None)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    return env


def run_stage(cwd: Path, stage: str, src: Path | None = None) -> tuple[float, float]:
    """Run `mlops stage <stage>`; return (wall seconds, peak RSS in GiB) of that process."""
    env = stage_env(src)
    start = time.perf_counter()
    with open(cwd / f"{stage}.log", "w") as log:
        proc = subprocess.Popen(
            ["mlops", "stage", stage], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=log
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"stage {stage} failed:\n{(cwd / f'{stage}.log').read_text()[-3000:]}")
    return wall, usage.ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def bench_size(rows: int, workdir: Path, src: Path | None = None) -> dict:
    for name in COPY:
        path = ROOT / name
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, workdir / name)
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["data"]["synthetic"]["n_rows"] = rows
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result: dict = {"rows": rows, "stages": {}, "code": "baseline" if src else "this"}
    result["load"] = os.getloadavg()[0]
    # A project's MLflow store exists after its first run; creating it (schema migrations,
    # about 4 s) is a one-time cost, timed on its own and not counted in the stages.
    experiment = params["tracking"]["experiment"]
    create = f"from mlops_template import tracking; tracking.connect({experiment!r})"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", create],
        cwd=workdir,
        env=stage_env(src),
        check=True,
        capture_output=True,
    )
    result["store_seconds"] = time.perf_counter() - start
    for stage in STAGES:
        wall, rss = run_stage(workdir, stage, src)
        result["stages"][stage] = {"seconds": wall, "peak_rss_gib": rss}
        print(
            f"{rows:>10,} rows  {result['code']:<8} {stage:<9} {wall:8.1f} s  {rss:6.2f} GiB",
            flush=True,
        )
    result["fit_seconds"] = fit_seconds(workdir)
    result["total_seconds"] = sum(s["seconds"] for s in result["stages"].values())
    result["peak_rss_gib"] = max(s["peak_rss_gib"] for s in result["stages"].values())
    return result


def fit_seconds(workdir: Path) -> float:
    """CV + final fit seconds of the run's training, from the MLflow run it logged them to.

    Read from the SQLite store directly: MLflow's set_tracking_uri would export
    MLFLOW_TRACKING_URI into this process's environment, and from there into the stages of
    the next size, which would then log into this (deleted) folder."""
    import sqlite3

    run_id = json.loads((workdir / "models/model.json").read_text())["mlflow"]["run_id"]
    with closing(sqlite3.connect(workdir / "mlflow.db")) as db:
        rows = db.execute(
            "select key, value from metrics where run_uuid = ? "
            "and key in ('cv_seconds', 'fit_seconds')",
            (run_id,),
        ).fetchall()
    metrics = dict(rows)
    return float(metrics["cv_seconds"] + metrics["fit_seconds"])


def render(results: list[dict], machine: str, baseline: str | None = None) -> str:
    lines = [
        "# Pipeline benchmark",
        "",
        "Every stage of `dvc repro` in its own process on the synthetic data (default params),",
        "generated by `python bench/pipeline.py`. Peak RSS is the kernel's maximum",
        "resident set of the stage's process. *Fitting* is cross-validation plus the final fit",
        "(timed inside the train stage); *other* is everything else (ingest, validation,",
        "features, evaluation, tracking, process start-up). Creating the MLflow store, a",
        "one-time cost of a project's first run, is timed separately (*store (s)*).",
        "*load* is the 1-minute load average when the size started.",
        "*fixed (s)* is what the same code spends besides fitting on a "
        f"{FIXED_ROWS:,}-row table (process start-up, imports, opening the MLflow store,",
        "logging): the part of *other* that does not grow with the rows; *fixed share* is its",
        "share of the size's total.",
    ]
    if baseline:
        lines += [
            "",
            f"*code*: `baseline` is the source tree `{baseline}`, `this` the checkout's own; each",
            "size ran both, one after the other.",
        ]
    lines += [
        "",
        machine,
        "| rows | code | "
        + " | ".join(f"{s} (s)" for s in STAGES)
        + " | total (s) | rows/s | µs/row | peak RSS (GiB) | fit (s) | other (s)"
        + " | fitting share | other share | fixed (s) | fixed share | store (s) | load |",
        "| ---: | --- " + "| ---: " * (len(STAGES) + 12) + "|",
    ]
    fixed = {
        r["code"]: r["total_seconds"] - r["fit_seconds"] for r in results if r["rows"] == FIXED_ROWS
    }
    for r in results:
        total, fit = r["total_seconds"], r["fit_seconds"]
        stages = " | ".join(f"{r['stages'][s]['seconds']:.1f}" for s in STAGES)
        lines.append(
            f"| {r['rows']:,} | {r['code']} | {stages} | {total:.1f} | {r['rows'] / total:,.0f} "
            f"| {total / r['rows'] * 1e6:.1f} | {r['peak_rss_gib']:.2f} | {fit:.1f} "
            f"| {total - fit:.1f} | {fit / total:.0%} | {1 - fit / total:.0%} "
            f"| {fixed[r['code']]:.1f} | {fixed[r['code']] / total:.0%} "
            f"| {r['store_seconds']:.1f} | {r['load']:.2f} |"
        )
    mine = {r["rows"]: r for r in results if r["code"] == "this" and r["rows"] != FIXED_ROWS}
    if baseline:
        lines += [
            "",
            "| rows | total: this / baseline | other: this / baseline |",
            "| ---: | ---: | ---: |",
        ]
        for r in results:
            if r["code"] == "baseline" and r["rows"] in mine:
                m = mine[r["rows"]]
                other = (m["total_seconds"] - m["fit_seconds"]) / (
                    r["total_seconds"] - r["fit_seconds"]
                )
                lines.append(
                    f"| {r['rows']:,} | {m['total_seconds'] / r['total_seconds']:.2f}x "
                    f"| {other:.2f}x |"
                )
    if 1_000_000 in mine and 10_000_000 in mine:
        per_row = [mine[n]["total_seconds"] / n for n in (1_000_000, 10_000_000)]
        lines += ["", f"Time per row at 10M / at 1M: **{per_row[1] / per_row[0]:.2f}x**."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--out", default=str(ROOT / "reports/benchmarks/pipeline.md"))
    parser.add_argument("--baseline-src", type=Path, help="another checkout's src/ to time too")
    args = parser.parse_args()
    codes: list[Path | None] = [args.baseline_src.resolve(), None] if args.baseline_src else [None]
    settle()
    machine = describe()  # with the load at the start
    results = []
    for rows in [FIXED_ROWS, *args.rows]:
        for src in codes:
            settle()  # each size starts on a machine as quiet as it gets (load per row)
            with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
                results.append(bench_size(rows, Path(tmp), src))
    baseline = str(args.baseline_src) if args.baseline_src else None
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    report = render(results, machine, baseline)
    Path(args.out).write_text(report)
    print(report)


if __name__ == "__main__":
    main()
