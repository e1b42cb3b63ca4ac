"""LightGBM's inputs: one-hot + median imputation (before) vs native categoricals + NaN kept.

``train.model: lightgbm`` used to get the preprocessing of the other models (numeric NaN
imputed with the median, categorical columns imputed and one-hot encoded); now it gets its
numeric columns with NaN kept and its low-cardinality categorical columns as integer codes
that LightGBM splits on as categories (``Estimator.native_missing`` / ``categorical_param``).
This bench fits the three variants on the same features and split and compares held-out
metrics and fit time:

- **before**: median imputation + one-hot (the entry with both flags off);
- **NaN kept**: numeric NaN kept, categorical columns still one-hot;
- **native**: numeric NaN kept and native categoricals (what ships).

``--compare reg_lambda`` instead fits the shipped variant (native) with each
``train.lightgbm.reg_lambda`` of ``--reg-lambdas`` (default 0.0 and 1.0) and writes its table
into the same report between the ``reg_lambda`` markers (and .json to
lightgbm_reg_lambda.json), leaving the rest of it.

Tables: the demo (synthetic card transactions, ``--demo-rows``) and the real public tables of
bench/quality_tables.py (``--tables``), each through `mlops init` + `dvc repro features` in a
fresh clone so the features and the split are the project's own.

    python bench/lightgbm_categorical.py [--tables credit,attrition] [--demo-rows 100000]
        [--compare categorical|reg_lambda] [--reg-lambdas 0,1] [--data QUALITY_TABLES_DIR]

Writes reports/benchmarks/lightgbm_categorical.md (and .json).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from machine import describe, settle  # bench/ is on sys.path when run as a script
from mlops_template import estimators, io
from mlops_template import model as model_now
from mlops_template.config import TrainParams
from quality import BENCH, KEYS, ROOT, peer_env, score
from your_data import copy_project, timed

# comparison -> variant -> (changes to the lightgbm entry, changes to train.lightgbm)
Variants = dict[str, tuple[dict[str, Any], dict[str, Any]]]
COMPARISONS: dict[str, Variants] = {
    "categorical": {
        "before": ({"native_missing": False, "categorical_param": ""}, {}),
        "NaN kept": ({"categorical_param": ""}, {}),
        "native": ({}, {}),
    },
    "reg_lambda": {},  # filled from --reg-lambdas
}


def reg_lambda_variants(values: str) -> Variants:
    """``"0,1"`` -> the native variant with ``train.lightgbm.reg_lambda`` 0.0 and 1.0."""
    return {f"reg_lambda {v:g}": ({}, {"reg_lambda": v}) for v in map(float, values.split(","))}


MARKERS = ("<!-- reg_lambda: start -->", "<!-- reg_lambda: end -->")


@contextmanager
def lightgbm_entry(**changes: Any) -> Iterator[None]:
    """estimators.ESTIMATORS["lightgbm"] with ``changes`` while the block runs."""
    shipped = estimators.ESTIMATORS["lightgbm"]
    estimators.ESTIMATORS["lightgbm"] = dataclasses.replace(shipped, **changes)
    try:
        yield
    finally:
        estimators.ESTIMATORS["lightgbm"] = shipped


def compare(
    variants: Variants, task: str, train: pd.DataFrame, test: pd.DataFrame, target: str
) -> dict[str, Any]:
    """Each variant's held-out metrics and fit seconds on the same split."""
    X, y = train.drop(columns=[target]), train[target]
    roles = model_now.column_roles(X)
    out: dict[str, Any] = {"roles": dataclasses.asdict(roles)}
    for name, (changes, hyper) in variants.items():
        params = TrainParams().model_copy(update={"model": "lightgbm"}).with_overrides(hyper)
        with lightgbm_entry(**changes):
            pipeline = model_now.make_pipeline(task, params, roles)  # type: ignore[arg-type]
        start = time.perf_counter()
        pipeline.fit(X, y)
        seconds = time.perf_counter() - start
        output = model_now.model_output(pipeline, test.drop(columns=[target]), task)  # type: ignore[arg-type]
        classes = None if task == "regression" else pipeline.classes_.tolist()
        out[name] = score(task, test[target].to_numpy(), output, classes) | {"fit_s": seconds}
    return out


def real_table(variants: Variants, name: str, info: dict[str, Any], csv: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        copy_project(project)
        (project / f"{name}.csv").write_bytes(csv.read_bytes())
        target = info["target"]
        timed(project, "mlops", "init", f"{name}.csv", "--target", target, "--force")
        timed(project, "dvc", "repro", "features")
        task = yaml.safe_load((project / "params.yaml").read_text())["data"]["task"]
        train = pd.read_parquet(project / "data/features/train.parquet")
        test = pd.read_parquet(project / "data/features/test.parquet")
    return {"name": name, "task": task, "rows": len(train) + len(test)} | compare(
        variants, task, train, test, target
    )


def demo_table(variants: Variants, rows: int) -> dict[str, Any]:
    from mlops_template.config import parse_params
    from mlops_template.contract import load_contract, validate
    from mlops_template.features import build_features
    from mlops_template.synthetic import generate_transactions

    example = ROOT / "examples/card-transactions"
    params = parse_params(yaml.safe_load((example / "params.yaml").read_text()))
    contract = load_contract(example / "contract.yaml")
    raw = validate(generate_transactions(rows, seed=7), contract)
    frame = build_features(raw, params.features)
    cut = int(rows * 0.8)
    train, test = frame.iloc[:cut], frame.iloc[cut:]
    return {"name": f"demo ({rows:,} rows)", "task": "binary", "rows": rows} | compare(
        variants, "binary", train, test, contract.target
    )


def render(results: list[dict[str, Any]], machine: str) -> str:
    lines = [
        "# LightGBM: one-hot + median imputation vs native categoricals + NaN kept",
        "",
        "Generated by `python bench/lightgbm_categorical.py`. Same features and split for the "
        "three variants (the project's own: `mlops init` + `dvc repro features` on each real "
        "table; an 80/20 cut of the demo's synthetic transactions), `train.lightgbm` defaults "
        "(200 trees, n_jobs=1), one fit each. **before**: median imputation + one-hot (main "
        "before this change); **NaN kept**: numeric NaN kept, one-hot; **native**: NaN kept "
        "and the low-cardinality (<= 32 values) categorical columns as LightGBM categoricals "
        "(what ships). Columns above 32 values are target-encoded in all three.",
        "",
        machine,
        "",
    ]
    return "\n".join(lines + tables(results, COMPARISONS["categorical"], "##"))


def tables(results: list[dict[str, Any]], variants: Variants, level: str) -> list[str]:
    """One markdown table per task: each metric per variant, fit seconds first / last."""
    names = list(variants)
    first, last = names[0], names[-1]
    lines: list[str] = []
    for task in ("binary", "multiclass", "regression"):
        rows = [r for r in results if r["task"] == task]
        if not rows:
            continue
        keys = KEYS[task]
        head = " | ".join(f"{k} {v}" for k in keys for v in names)
        lines += [
            f"{level} {task}",
            "",
            f"| table | rows | categorical cols | {head} | fit s ({first} / {last}) |",
            "| --- | ---: | ---: |" + " ---: |" * (len(keys) * len(names)) + " ---: |",
        ]
        for r in rows:
            cells = [f"{r[v][k]:.4f}" for k in keys for v in names]
            lines.append(
                f"| {r['name']} | {r['rows']:,} | {len(r['roles']['categorical'])} | "
                + " | ".join(cells)
                + f" | {r[first]['fit_s']:.2f} / {r[last]['fit_s']:.2f} |"
            )
        lines.append("")
    return lines


def render_reg_lambda(results: list[dict[str, Any]], variants: Variants, machine: str) -> str:
    values = ", ".join(name.split()[-1] for name in variants)
    lines = [
        MARKERS[0],
        "## reg_lambda (native categoricals)",
        "",
        "Generated by `python bench/lightgbm_categorical.py --compare reg_lambda "
        f"--reg-lambdas {values.replace(' ', '')}`: the shipped variant (native categoricals "
        f"+ NaN kept) with `train.lightgbm.reg_lambda` {values}, the other `train.lightgbm` "
        "defaults, the same features and split as above, one fit each.",
        "",
        machine,
        "",
    ]
    return "\n".join([*lines, *tables(results, variants, "###"), MARKERS[1]])


def splice(report: str, section: str) -> str:
    """``report`` with the text between the markers replaced by ``section`` (or appended)."""
    start, end = report.find(MARKERS[0]), report.find(MARKERS[1])
    if start < 0 or end < 0:
        return report.rstrip("\n") + "\n\n" + section + "\n"
    return report[:start] + section + report[end + len(MARKERS[1]) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", default="", help="comma-separated; default: all")
    parser.add_argument("--demo-rows", type=int, default=100_000)
    parser.add_argument("--compare", choices=list(COMPARISONS), default="categorical")
    parser.add_argument("--reg-lambdas", default="0,1", help="--compare reg_lambda: values")
    parser.add_argument("--data", type=Path, help="bench/quality_tables.py's output, if made")
    parser.add_argument(
        "--peer-env", type=Path, default=Path(tempfile.gettempdir()) / "mlops-quality-peer"
    )
    args = parser.parse_args()
    settle()
    machine = describe(("lightgbm",))
    data = args.data
    if data is None:
        data = Path(tempfile.mkdtemp(prefix="quality-tables-"))
        python = peer_env(args.peer_env)
        subprocess.run([str(python), str(BENCH / "quality_tables.py"), str(data)], check=True)
    index = json.loads((data / "tables.json").read_text())
    names = [n for n in args.tables.split(",") if n] or list(index)
    variants = COMPARISONS[args.compare] or reg_lambda_variants(args.reg_lambdas)
    out = ROOT / "reports/benchmarks"
    stem = "lightgbm_categorical" if args.compare == "categorical" else "lightgbm_reg_lambda"
    results = [demo_table(variants, args.demo_rows)] if args.demo_rows else []
    print(json.dumps(results[-1:], default=str), flush=True)
    for name in names:
        results.append(real_table(variants, name, index[name], data / f"{name}.csv"))
        print(json.dumps(results[-1], default=str), flush=True)
        io.write_json(results, out / f"{stem}.json")
    report = out / "lightgbm_categorical.md"
    if args.compare == "categorical":  # keeps the reg_lambda section of an earlier run
        text, earlier = render(results, machine), report.read_text() if report.exists() else ""
        start, end = earlier.find(MARKERS[0]), earlier.find(MARKERS[1])
        if 0 <= start < end:
            text = splice(text, earlier[start : end + len(MARKERS[1])])
    else:
        text = splice(report.read_text(), render_reg_lambda(results, variants, machine))
    io.write_text(text, report)
    print(text)


if __name__ == "__main__":
    main()
