"""The `package` stage: save the trained pipeline to the BentoML model store, build a Bento,
and record the tags and the model file's hash in reports/package.json (traceability)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from mlops_template import io, paths
from mlops_template.config import Params
from mlops_template.errors import PackageError
from mlops_template.model import ModelMeta, file_sha256, load, python_version
from mlops_template.tracking import git_commit

log = logging.getLogger(__name__)
MODEL_NAME = "mlops-template"


def _data_hash() -> str:
    return file_sha256(paths.TRAIN_SPLIT) if paths.TRAIN_SPLIT.exists() else "unknown"


def onnx_export(model: Any, meta: ModelMeta) -> tuple[bytes | None, dict[str, Any]]:
    """The ONNX runtime path, only if it matches scikit-learn on the test split."""
    import pandas as pd

    from mlops_template.onnx_path import export

    if not paths.TEST_SPLIT.exists():
        log.warning("onnx: %s missing, serving with scikit-learn", paths.TEST_SPLIT)
        return None, {"runtime": "sklearn", "onnx_error": f"{paths.TEST_SPLIT} missing"}
    test = pd.read_parquet(paths.TEST_SPLIT).drop(columns=[meta.target], errors="ignore")
    return export(model, test, meta.task)


def _drop_none(value: Any) -> Any:
    """``value`` without ``None`` entries in dicts, at any depth (BentoML rejects them)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def save_model(model: Any, meta: ModelMeta, metrics: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Save the trained pipeline (+ the checked ONNX graph of its model step) to the BentoML
    store; returns the model tag and the runtime decision."""
    import bentoml

    onnx_bytes, runtime = onnx_export(model, meta)
    metadata = {
        "task": meta.task,
        "classes": meta.classes,
        "input_columns": meta.input_columns,
        "contract": meta.contract,
        "mlflow_run_id": meta.run_id,
        "git_commit": git_commit(),
        "data_sha256": _data_hash(),
        "model_sha256": meta.model_sha256,
        "metrics": metrics,
        "runtime": runtime,
        "model_meta": meta.model_dump_json(),  # what the service predicts with (threshold...)
    }
    # BentoML metadata takes basic types only: leave out what a task lacks (classes, ...).
    metadata = _drop_none(metadata)
    saved = bentoml.sklearn.save_model(
        MODEL_NAME, model, metadata=metadata, custom_objects={"onnx": onnx_bytes}
    )
    return str(saved.tag), runtime


def build_bento() -> str:
    """`bentoml build` from bentofile.yaml, with the image Python set to ours; returns the tag."""
    import tempfile

    import bentoml
    import yaml

    config = yaml.safe_load(Path("bentofile.yaml").read_text())
    # the image's Python: the one that trained the model (models/model.json `python`), so the
    # pickled pipeline is loaded by the Python minor version that wrote it
    config.setdefault("docker", {})["python_version"] = ModelMeta.read().python or python_version()
    with tempfile.TemporaryDirectory() as tmp:
        bentofile = Path(tmp, "bentofile.yaml")
        bentofile.write_text(yaml.safe_dump(config, sort_keys=False))
        bento = bentoml.bentos.build_bentofile(str(bentofile), build_ctx=".")
    return str(bento.tag)


def run(params: Params) -> None:
    if not paths.METRICS.exists():
        raise PackageError(f"{paths.METRICS}: missing (run the evaluate stage first)")
    model, meta = load()
    metrics = json.loads(paths.METRICS.read_text())
    model_tag, runtime = save_model(model, meta, metrics)
    log.info("saved model %s (serving runtime: %s)", model_tag, runtime["runtime"])
    bento_tag = build_bento() if params.package.build_bento else None
    log.info("built bento %s", bento_tag)
    io.write_json(
        {
            "model_tag": model_tag,
            "bento_tag": bento_tag,
            "model_sha256": meta.model_sha256,
            "git_commit": git_commit(),
            "data_sha256": _data_hash(),
            "contract": meta.contract,
            "runtime": runtime,
        },
        paths.PACKAGE,
    )
