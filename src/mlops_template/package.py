"""The `package` stage: save the trained pipeline to the BentoML model store, build a Bento,
and record the tags and the model file's hash in reports/package.json (traceability)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from mlops_template import io, paths
from mlops_template.config import Params
from mlops_template.errors import PackageError
from mlops_template.tracking import git_commit

log = logging.getLogger(__name__)
MODEL_NAME = "mlops-template"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_hash() -> str:
    return file_sha256(paths.TRAIN_SPLIT) if paths.TRAIN_SPLIT.exists() else "unknown"


def save_model(meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    """Save models/model.joblib to the BentoML store; returns the model tag."""
    import bentoml
    import joblib

    model = joblib.load(paths.MODEL)
    metadata = {
        "task": meta["task"],
        "classes": meta.get("classes"),
        "input_columns": meta["input_columns"],
        "contract": meta.get("contract"),
        "mlflow_run_id": (meta.get("mlflow") or {}).get("run_id"),
        "git_commit": git_commit(),
        "data_sha256": _data_hash(),
        "model_sha256": file_sha256(paths.MODEL),
        "metrics": {k: v for k, v in metrics.items() if v is not None},
    }
    # BentoML metadata takes basic types only: leave out what a task lacks (classes, ...).
    metadata = {k: v for k, v in metadata.items() if v is not None}
    saved = bentoml.sklearn.save_model(MODEL_NAME, model, metadata=metadata)
    return str(saved.tag)


def build_bento() -> str:
    """`bentoml build` from bentofile.yaml; returns the Bento tag."""
    import bentoml

    bento = bentoml.bentos.build_bentofile("bentofile.yaml", build_ctx=".")
    return str(bento.tag)


def run(params: Params) -> None:
    for required in (paths.MODEL, paths.MODEL_META, paths.METRICS):
        if not Path(required).exists():
            raise PackageError(f"{required}: missing (run the train and evaluate stages first)")
    meta = json.loads(paths.MODEL_META.read_text())
    metrics = json.loads(paths.METRICS.read_text())
    model_tag = save_model(meta, metrics)
    log.info("saved model %s", model_tag)
    bento_tag = build_bento() if params.package.build_bento else None
    log.info("built bento %s", bento_tag)
    io.write_json(
        {
            "model_tag": model_tag,
            "bento_tag": bento_tag,
            "model_sha256": file_sha256(paths.MODEL),
            "git_commit": git_commit(),
            "data_sha256": _data_hash(),
            "contract": meta.get("contract"),
        },
        paths.PACKAGE,
    )
