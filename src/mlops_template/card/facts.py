"""The model card's content, as one JSON-ready dict, from what the stages already wrote: nothing
is typed twice. Identity from models/model.json and the split file DVC hashes; use and owners
from params.yaml ``card`` (empty: "not stated"); the datasheet from the contract and the split
files; performance from reports/metrics.json (with bootstrap intervals over the held-out
predictions), cv_metrics.json, slices.json and checks.json; what drives the model from the
permutation importances; the gate, ONNX parity, monitoring rules; limitations derived from
those numbers plus the owners' own.

The values of ``pii`` columns are never read into the card: such a column is named, typed and
counted (missing share), nothing more.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_template import metrics, paths
from mlops_template.config import BootstrapParams, CardParams, Params
from mlops_template.contract import Contract, load_contract
from mlops_template.model import ModelMeta

CARD_VERSION = 1
NOT_STATED = "not stated"
NOT_RECORDED = "not recorded"
LIBRARIES = ("scikit-learn", "numpy", "pandas", "onnxruntime", "skl2onnx", "mlflow", "bentoml")
HF_TASK = {"binary": "tabular-classification", "multiclass": "tabular-classification"}


def _json(path: Path) -> dict[str, Any]:
    """A report the stages wrote, or {} when that stage did not produce it."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_md5(path: Path) -> str:
    """The file's md5: the hash DVC 3 records for it in dvc.lock."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "md5").hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _stated(text: str | list[str]) -> str | list[str]:
    return text if text else NOT_STATED


# --------------------------------------------------------------------------- identity


def identity(meta: ModelMeta, model_tag: str, git_commit: str) -> dict[str, Any]:
    run = meta.mlflow or {}
    data = paths.TRAIN_SPLIT
    return {
        "model_tag": model_tag or NOT_RECORDED,
        "model": meta.model,
        "task": meta.task,
        "target": meta.target,
        "hyperparameters": meta.hyperparameters,
        "mlflow": {
            "run_id": run.get("run_id") or NOT_RECORDED,
            "registered_model": run.get("registered_model") or NOT_RECORDED,
            "version": str(run.get("version") or NOT_RECORDED),
        },
        "trained_at": run.get("trained_at") or NOT_RECORDED,
        "git_commit": git_commit,
        "training_data": {
            "path": str(data),
            "md5": file_md5(data) if data.exists() else NOT_RECORDED,
        },
        "model_sha256": meta.model_sha256,
        "contract": {"name": meta.contract.get("name"), "version": meta.contract.get("version")},
        "python": meta.python or NOT_RECORDED,
        "libraries": {name: _version(name) for name in LIBRARIES},
    }


def use(card: CardParams) -> dict[str, Any]:
    return {
        "intended_use": _stated(card.intended_use.strip()),
        "out_of_scope_use": _stated(card.out_of_scope_use.strip()),
        "owners": _stated(card.owners),
        "contact": _stated(card.contact.strip()),
        "license": _stated(card.license.strip()),
    }


# --------------------------------------------------------------------------- datasheet


def _source(params: Params) -> dict[str, Any]:
    data = params.data
    if data.source == "synthetic":
        s = data.synthetic
        where = f"built-in synthetic card transactions ({s.n_rows} rows, seed {s.seed})"
    elif data.source == "sql":
        where = _masked_url(data.sql.url)
    else:
        where = data.path
    return {"kind": data.source, "location": where}


def _masked_url(url: str) -> str:
    """A SQLAlchemy URL without its password (a card is shared widely)."""
    try:
        import sqlalchemy

        return str(sqlalchemy.make_url(url).render_as_string(hide_password=True))
    except Exception:
        return "a SQL database (URL not shown)"


def _roles(name: str, contract: Contract, dropped: set[str]) -> list[str]:
    spec = contract.columns[name]
    roles = [r for r in ("target", "id", "timestamp") if getattr(contract, r) == name]
    if spec.pii:
        roles.append("pii")
    if name != contract.target:
        roles.append("dropped" if name in dropped or spec.pii else "feature")
    return roles


def _observed(values: pd.Series, dtype: str) -> dict[str, Any]:
    present = values.dropna()
    if present.empty:
        return {}
    if dtype in ("int", "float"):
        return {"min": float(present.min()), "max": float(present.max())}
    if dtype == "datetime":
        stamps = pd.to_datetime(present)
        return {"min": stamps.min().isoformat(), "max": stamps.max().isoformat()}
    if dtype == "bool":
        return {"true_share": round(float(present.astype(bool).mean()), 6)}
    return {"distinct": int(present.nunique())}


def column_facts(
    name: str, contract: Contract, frames: list[pd.DataFrame], dropped: set[str]
) -> dict[str, Any]:
    """One column of the datasheet; a pii column's values are never looked at."""
    spec = contract.columns[name]
    present = [f[name] for f in frames if name in f.columns]
    rows = sum(len(v) for v in present)
    missing = sum(int(v.isna().sum()) for v in present)
    entry: dict[str, Any] = {
        "name": name,
        "roles": _roles(name, contract, dropped),
        "dtype": spec.dtype,
        "nullable": spec.nullable,
        "description": spec.description or NOT_STATED,
        "missing_share": round(missing / rows, 6) if rows else None,
    }
    if spec.pii:
        entry["values"] = "withheld (pii)"
        return entry
    declared = {k: getattr(spec, k) for k in ("min", "max", "categories")}
    entry["declared"] = {k: v for k, v in declared.items() if v is not None}
    if present:
        entry["observed"] = _observed(pd.concat(present, ignore_index=True), spec.dtype)
    return entry


def _rows(path: Path) -> int | None:
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _split_columns(path: Path, contract: Contract) -> pd.DataFrame:
    """The non-pii contract columns of a split file (pii ones only as missing flags)."""
    if not path.exists():
        return pd.DataFrame()
    frame = pd.read_parquet(path, columns=None)
    for name in contract.pii_columns:  # only whether a value is there, never the value
        if name in frame.columns:
            frame[name] = frame[name].isna().map({True: None, False: "<pii>"})
    return frame


def datasheet(params: Params, contract: Contract) -> dict[str, Any]:
    split = params.data.split
    frames = [_split_columns(p, contract) for p in (paths.TRAIN_SPLIT, paths.TEST_SPLIT)]
    dropped = set(params.features.drop)
    columns = [column_facts(name, contract, frames, dropped) for name in contract.columns]
    return {
        "source": _source(params),
        "contract": {"name": contract.name, "version": contract.version},
        "rows": {"train": _rows(paths.TRAIN_SPLIT), "test": _rows(paths.TEST_SPLIT)},
        "split": {"method": split.method, "test_size": split.test_size, "seed": split.seed},
        "columns": columns,
        "pii_columns": contract.pii_columns,
    }


# --------------------------------------------------------------------------- performance


def _outputs(predictions: pd.DataFrame, meta: ModelMeta) -> np.ndarray:
    """The model output evaluate scored, back from data/predictions/test.parquet."""
    if meta.task == "regression":
        return predictions["prediction"].to_numpy(dtype="float64")
    classes = meta.classes or []
    if meta.task == "binary":
        return predictions[f"proba_{classes[1]}"].to_numpy(dtype="float64")
    return predictions[[f"proba_{c}" for c in classes]].to_numpy(dtype="float64")


def bootstrap(
    y: np.ndarray, output: np.ndarray, meta: ModelMeta, boot: BootstrapParams
) -> dict[str, dict[str, float]]:
    """Percentile intervals of each held-out metric over ``boot.resamples`` resamples of
    the test rows (seeded: the same predictions give the same intervals)."""
    classes = np.asarray(meta.classes) if meta.classes is not None else None
    cut = 0.5 if meta.threshold is None else meta.threshold
    rng = np.random.default_rng(boot.seed)
    draws: dict[str, list[float]] = {}
    for _ in range(boot.resamples):
        rows = rng.integers(0, len(y), len(y))
        for name, value in metrics.score(meta.task, y[rows], output[rows], classes, cut).items():
            draws.setdefault(name, []).append(value)
    tail = (1 - boot.confidence) / 2 * 100
    out = {}
    for name, values in draws.items():
        finite = np.asarray([v for v in values if math.isfinite(v)])
        if len(finite):
            low, high = np.percentile(finite, [tail, 100 - tail])
            out[name] = {"low": round(float(low), 6), "high": round(float(high), 6)}
    return out


def held_out(meta: ModelMeta, boot: BootstrapParams) -> dict[str, Any]:
    scores = _json(paths.METRICS)
    intervals: dict[str, dict[str, float]] = {}
    if paths.PREDICTIONS.exists() and scores:
        predictions = pd.read_parquet(paths.PREDICTIONS)
        y = predictions[meta.target].to_numpy()
        intervals = bootstrap(y, _outputs(predictions, meta), meta, boot)
    table = {
        name: {"value": value} | ({"ci": intervals[name]} if name in intervals else {})
        for name, value in scores.items()
    }
    return {
        "metrics": table,
        "bootstrap": {"resamples": boot.resamples, "confidence": boot.confidence},
    }


def cross_validation(params: Params) -> dict[str, Any]:
    cv = _json(paths.CV_METRICS)
    names = sorted({k[3:].rsplit("_", 1)[0] for k in cv if k.startswith("cv_")})
    table = {
        n: {"mean": cv.get(f"cv_{n}_mean"), "std": cv.get(f"cv_{n}_std")}
        for n in names
        if f"cv_{n}_mean" in cv
    }
    return {"folds": params.train.cv.folds, "max_rows": params.train.cv.max_rows, "metrics": table}


def threshold(meta: ModelMeta) -> dict[str, Any] | None:
    if meta.threshold is None:
        return None
    return {"value": meta.threshold, "chosen_by": meta.threshold_source or NOT_RECORDED}


def slices(params: Params) -> dict[str, Any]:
    """Per-slice metrics (slices.json) with the declared floors and gaps (checks.json)."""
    found, checked = _json(paths.SLICES), _json(paths.CHECKS).get("slices", {})
    if not found.get("slices"):
        return {"column": params.evaluate.slice_column or None, "slices": {}, "checks": {}}
    checks = {}
    for metric, c in (checked.get("metrics") or {}).items():
        below = c.get("below_floor") or {}
        gap_held = c.get("max_gap") is None or c.get("gap") is None or c["gap"] <= c["max_gap"]
        checks[metric] = {
            "floor": c.get("floor"),
            "below_floor": below,
            "floor_held": not below,
            "max_gap": c.get("max_gap"),
            "gap": c.get("gap"),
            "gap_held": gap_held,
            "worst": c.get("worst"),
            "best": c.get("best"),
            "skipped": c.get("skipped") or [],
        }
    return {
        "column": found.get("column"),
        "min_rows": params.evaluate.slice_min_rows,
        "slices": found["slices"],
        "checks": checks,
    }


def class_counts(meta: ModelMeta) -> dict[str, int]:
    """Held-out rows per class (classification)."""
    if meta.task == "regression" or not paths.PREDICTIONS.exists():
        return {}
    y = pd.read_parquet(paths.PREDICTIONS, columns=[meta.target])[meta.target]
    counts = y.astype(str).value_counts()
    return {str(c): int(counts.get(str(c), 0)) for c in meta.classes or []}


def performance(params: Params, meta: ModelMeta) -> dict[str, Any]:
    return {
        "held_out": held_out(meta, params.card.bootstrap),
        "cross_validation": cross_validation(params),
        "threshold": threshold(meta),
        "classes": class_counts(meta),
        "confusion_matrix": _json(paths.SLICES).get("confusion_matrix"),
        "slices": slices(params),
    }


# --------------------------------------------------------------------------- the rest


def importances(path: Path = paths.PLOTS_DIR / "importance.csv") -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return [
            {"feature": r["feature"], "importance": float(r["importance"])}
            for r in csv.DictReader(fh)
        ]


def drivers(params: Params) -> dict[str, Any]:
    checked = _json(paths.CHECKS).get("features", {})
    return {
        "permutation_importance": importances(),
        "rows": params.evaluate.importance_rows,
        "repeats": params.evaluate.importance_repeats,
        "floor": checked.get("floor"),
        "adding_nothing": checked.get("below") or {},
    }


def gate(params: Params) -> dict[str, Any]:
    """The gate's decision as packaging sees it: package runs only after reports/gate_ok.json
    (a pass, or a failure an override accepted). The comparison itself names a moving baseline
    commit, so it stays in reports/gate.md and the pull-request report, not in the card."""
    passed = _json(paths.GATE_OK).get("ok") is True
    rules = {m: g.model_dump(exclude_none=True) for m, g in params.gate.metrics.items()}
    return {
        "decision": "passed" if passed else "not run",
        "baseline_ref": params.gate.baseline_ref,
        "rules": rules,
    }


def onnx(runtime: dict[str, Any]) -> dict[str, Any]:
    keys = ("runtime", "onnx_checked_rows", "onnx_max_abs_diff", "onnx_tolerance", "onnx_error")
    return {k: runtime[k] for k in keys if k in runtime}


def monitoring(params: Params, rows: int | None) -> dict[str, Any]:
    m = params.monitor
    return {
        "reference": {
            "path": str(paths.REFERENCE),
            "rows": rows,
            "what": "the held-out split with the model's outputs (pii columns left out)",
        },
        "num_method": m.num_method,
        "cat_method": m.cat_method,
        "column_threshold": m.column_threshold,
        "drift_share": m.drift_share,
        "prediction_drift": m.prediction_drift,
        "quality_drop": dict(m.quality_drop),
        "max_model_age_days": m.max_model_age_days,
    }


# --------------------------------------------------------------------------- limitations


def _slice_limits(perf: dict[str, Any]) -> list[str]:
    found = perf["slices"]
    column, out = found.get("column"), []
    for metric, c in found.get("checks", {}).items():
        for name, value in c["below_floor"].items():
            out.append(f"{metric} on {column}={name} is {value}, below its floor {c['floor']}.")
        if not c["gap_held"]:
            out.append(
                f"{metric} varies across {column} by {c['gap']} (worst {c['worst']['slice']}, "
                f"best {c['best']['slice']}), more than the allowed gap {c['max_gap']}."
            )
    small = {
        n: s["rows"] for n, s in found.get("slices", {}).items() if s["rows"] < found["min_rows"]
    }
    for name, rows in small.items():
        out.append(
            f"The slice {column}={name} has only {rows} held-out rows (fewer than "
            f"evaluate.slice_min_rows={found['min_rows']}): its metrics are not judged."
        )
    return out


def derived_limitations(
    card: dict[str, Any], params: Params, contract: Contract, meta: ModelMeta
) -> list[str]:
    """Statements that follow from the numbers and the configuration, nothing else."""
    perf = card["performance"]
    out = _slice_limits(perf)
    for cls, rows in perf["classes"].items():
        if rows < params.evaluate.slice_min_rows:
            out.append(
                f"Class {cls} has only {rows} held-out rows (fewer than "
                f"{params.evaluate.slice_min_rows}): its metrics are uncertain."
            )
    for feature, value in card["drivers"]["adding_nothing"].items():
        out.append(
            f"{feature} adds nothing measurable (permutation importance {value}, "
            f"floor {card['drivers']['floor']})."
        )
    stamp = contract.timestamp
    if stamp and stamp in meta.input_columns and stamp not in params.features.drop:
        out.append(
            f"The timestamp {stamp} is a model input: the model can learn when a row "
            "happened, and future rows lie outside the range it saw."
        )
    if stamp and params.data.split.method != "time":
        out.append(
            f"The held-out rows are not later than the training rows (split: "
            f"{params.data.split.method}): metrics may overstate performance on future data."
        )
    if card["onnx"].get("runtime") == "sklearn" and "onnx_error" in card["onnx"]:
        out.append(f"Served with scikit-learn, not ONNX: {card['onnx']['onnx_error']}.")
    return out


# --------------------------------------------------------------------------- the card


def hf_metadata(card: dict[str, Any]) -> dict[str, Any]:
    """Hugging Face model-card metadata (the YAML front matter): library, tags, datasets,
    metrics, license (only if stated) and ``model-index`` with the held-out results."""
    ident, data = card["identity"], card["data"]
    task = HF_TASK.get(ident["task"], "tabular-regression")
    dataset = data["contract"]["name"]
    results = [
        {"type": name, "value": m["value"], "name": f"{name} (held-out)"}
        for name, m in card["performance"]["held_out"]["metrics"].items()
        if isinstance(m["value"], int | float) and math.isfinite(m["value"])
    ]
    meta: dict[str, Any] = {
        "library_name": "sklearn",
        "tags": [task, "sklearn", ident["model"], "mlops-template"],
        "pipeline_tag": task,
        "datasets": [dataset],
        "metrics": [r["type"] for r in results],
    }
    if card["use"]["license"] != NOT_STATED:
        meta["license"] = card["use"]["license"]
    meta["model-index"] = [
        {
            "name": ident["model_tag"],
            "results": [
                {
                    "task": {"type": task, "name": f"{ident['task']} {task}"},
                    "dataset": {
                        "type": dataset,
                        "name": f"{dataset} v{data['contract']['version']}",
                        "split": "test",
                    },
                    "metrics": results,
                }
            ],
        }
    ]
    return meta


def build(
    params: Params, *, model_tag: str, runtime: dict[str, Any], git_commit: str
) -> dict[str, Any]:
    """The whole card as a JSON-ready dict (reports/model_card.json)."""
    meta = ModelMeta.read()
    contract = load_contract(params.data.contract)
    data = datasheet(params, contract)
    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "identity": identity(meta, model_tag, git_commit),
        "use": use(params.card),
        "data": data,
        "performance": performance(params, meta),
        "drivers": drivers(params),
        "gate": gate(params),
        "onnx": onnx(runtime),
        "monitoring": monitoring(params, data["rows"]["test"]),
    }
    card["limitations"] = {
        "derived": derived_limitations(card, params, contract, meta),
        "stated": _stated(list(params.card.limitations)),
    }
    card["metadata"] = hf_metadata(card)
    return card
