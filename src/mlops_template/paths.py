"""Every file the pipeline reads or writes, relative to the project root.

dvc.yaml repeats these strings (DVC cannot import Python); ``tests/unit/test_paths.py``
checks that the two agree, so they cannot drift apart.
"""

from __future__ import annotations

import os
from pathlib import Path

PARAMS = Path("params.yaml")
CONTRACT = Path("contract.yaml")
DVC_YAML = Path("dvc.yaml")
DVC_LOCK = Path("dvc.lock")

SPLIT_DIR = Path("data/split")
TRAIN_SPLIT = SPLIT_DIR / "train.parquet"
TEST_SPLIT = SPLIT_DIR / "test.parquet"

FEATURES_DIR = Path("data/features")
TRAIN_FEATURES = FEATURES_DIR / "train.parquet"
TEST_FEATURES = FEATURES_DIR / "test.parquet"

MODELS_DIR = Path("models")
MODEL = MODELS_DIR / "model.skops"  # skops.io format, not a pickle (model.read_pipeline)
MODEL_META = MODELS_DIR / "model.json"

REPORTS_DIR = Path("reports")
METRICS = REPORTS_DIR / "metrics.json"
# What the metrics were measured on (contract name and version, target, task), committed beside
# them: the gate compares metrics only with a baseline of the same dataset.
DATASET = REPORTS_DIR / "dataset.json"
CV_METRICS = REPORTS_DIR / "cv_metrics.json"
# the class prior / mean and a plain HistGradientBoosting on the same split (the gate reads it)
BASELINES = REPORTS_DIR / "baselines.json"
SLICES = REPORTS_DIR / "slices.json"
# evaluate's declared checks: feature value, slice quality, the gap between slices
CHECKS = REPORTS_DIR / "checks.json"
PLOTS_DIR = REPORTS_DIR / "plots"
PREDICTIONS = Path("data/predictions/test.parquet")
VALIDATION_DIR = REPORTS_DIR / "data_validation"
VALIDATION_FAILURES = VALIDATION_DIR / "failures.csv"
VALIDATION_SUMMARY = VALIDATION_DIR / "summary.txt"
PACKAGE = REPORTS_DIR / "package.json"
# Files of a model in the BentoML store (written by `package`, read by the service): the
# pipeline file exactly as train wrote it (same sha256 as models/model.skops) and, if it passed
# its check, the ONNX graph of the model step.
STORE_MODEL_FILE = "model.skops"
STORE_ONNX_FILE = "model.onnx"
# The model card (written by `package`, stored with the model, served at GET /model-card)
MODEL_CARD = REPORTS_DIR / "model_card.md"
MODEL_CARD_JSON = REPORTS_DIR / "model_card.json"
STORE_CARD_FILE = "model_card.md"
STORE_CARD_JSON_FILE = "model_card.json"
# `make card-diff`: the card against the base branch's, appended to the pull-request report
MODEL_CARD_DIFF = REPORTS_DIR / "model_card_diff.md"


# Environment variables the project reads, named once (docs and workflows use these names).
ENV_PARAMS = "MLOPS_PARAMS"  # the params file the service and the latency gate load
ENV_REQUEST_LOG = "MLOPS_REQUEST_LOG"  # the service's request log (over serve.request_log)
ENV_GATE_BASELINE = "MLOPS_GATE_BASELINE"  # the gate's baseline ref (over gate.baseline_ref)
ENV_GATE_OVERRIDE = "MLOPS_GATE_OVERRIDE"  # accept a failed gate (over gate.override)
ENV_DASK_ADDRESS = "MLOPS_DASK_ADDRESS"  # tuning's Dask scheduler (over tune.dask_address)
# Telemetry off for every tool we run: the variables live in this file only (the Makefile
# exports them; `mlops` applies those the environment does not set, see telemetry_defaults).
TELEMETRY_ENV = Path("telemetry.env")


def telemetry_defaults(path: Path = TELEMETRY_ENV) -> dict[str, str]:
    """``NAME=value`` lines of telemetry.env (comments and blank lines skipped); {} without
    the file (an installed package run outside the project)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def tracking_root() -> Path:
    """Where the default MLflow store lives: DVC_ROOT when DVC runs us (inside
    `dvc exp run --temp` copies it names the real repository, so runs are not written into a
    folder that is deleted afterwards), else the current folder."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


BEST_PARAMS = MODELS_DIR / "best_params.json"
TUNE_DIR = REPORTS_DIR / "tuning"
TUNE_TRIALS = TUNE_DIR / "trials.csv"
TUNE_HISTORY = TUNE_DIR / "history.csv"
TUNE_IMPORTANCE = TUNE_DIR / "importance.csv"

GATE_MD = REPORTS_DIR / "gate.md"
GATE_JSON = REPORTS_DIR / "gate.json"
# {"ok": true} after a passing (or overridden) gate: the gate stage's only DVC output and what
# `package` depends on; unlike gate.md / gate.json (which name the baseline commit) it does not
# change with the baseline, so neither dvc.lock nor the Bento changes with every commit.
GATE_OK = REPORTS_DIR / "gate_ok.json"
# Monitoring: the evaluate stage keeps the held-out split (raw inputs, label, predictions) as
# the reference; `mlops monitor` compares a current batch with it.
REFERENCE = Path("data/reference/reference.parquet")
MONITORING_DIR = REPORTS_DIR / "monitoring"
MONITOR_REPORT = MONITORING_DIR / "report.html"
MONITOR_SUMMARY = MONITORING_DIR / "summary.json"
MONITOR_SUMMARY_MD = MONITORING_DIR / "summary.md"
MONITOR_CONTRACT_FAILURES = MONITORING_DIR / "contract_failures.csv"
# `mlops compare` (champion vs challenger on the request log) and `mlops promote --challenger`
ROLLOUT_DIR = REPORTS_DIR / "rollout"
ROLLOUT_MD = ROLLOUT_DIR / "compare.md"
ROLLOUT_JSON = ROLLOUT_DIR / "compare.json"
