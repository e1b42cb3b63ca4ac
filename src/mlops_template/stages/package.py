"""The `package` stage: save the trained pipeline to the BentoML model store under this
project's name, build a Bento that serves exactly that model, keep only this project's last
``package.keep`` models and Bentos, and record the tags and the model file's hash in
reports/package.json (traceability; the service serves the tag recorded there).

Names and versions: models and Bentos are named ``package.model_name``, by default the project
folder's name, so two projects sharing one BentoML store (``~/bentoml``) never prune or shadow
each other. A model's version is a hash of models/model.json (which holds the model file's
sha256, threshold, classes and contract; not the MLflow run): packaging an unchanged model
again reuses its tag instead of adding a copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from mlops_template import io, paths
from mlops_template.config import Params
from mlops_template.errors import PackageError
from mlops_template.features import feature_recipe
from mlops_template.model import ModelMeta, file_sha256, load, python_version
from mlops_template.tracking import git_commit

log = logging.getLogger(__name__)
FALLBACK_NAME = "mlops-model"


def store_name(text: str) -> str:
    """``text`` as a BentoML tag name: lowercase letters, digits, ``-_.``, at most 63."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return name[:63].rstrip("-._") or FALLBACK_NAME


def project_name(params: Params) -> str:
    """This project's name in the BentoML store: ``package.model_name``, else the project
    folder's name (the repository's under `dvc exp run --temp`)."""
    return params.package.model_name or store_name(paths.tracking_root().name)


def model_version(meta: ModelMeta) -> str:
    """Same model file and description -> same version; the MLflow run is left out, so a
    retrain that writes identical bytes is the same model."""
    described = meta.model_dump(mode="json", exclude={"mlflow"})
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:20]


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


def _stored(tag: str, model_sha256: str) -> Any | None:
    """The stored model ``tag`` if it is there and holds exactly models/model.joblib (a
    damaged copy is deleted, to be saved again)."""
    import bentoml
    from bentoml.exceptions import BentoMLException

    try:
        stored = bentoml.models.get(tag)
    except BentoMLException:
        return None
    path = Path(stored.path_of(paths.STORE_MODEL_FILE))
    recorded = stored.info.metadata.get("model_sha256")
    if recorded == model_sha256 and path.is_file() and file_sha256(path) == model_sha256:
        return stored
    log.warning("stored model %s is not models/model.joblib: saving it again", tag)
    bentoml.models.delete(tag)
    return None


def save_model(
    model: Any, meta: ModelMeta, metrics: dict[str, Any], name: str
) -> tuple[str, dict[str, Any]]:
    """Save models/model.joblib as is (+ the checked ONNX graph of its model step) to the
    BentoML store as ``name:<model_version>``, or reuse that tag if it is already stored;
    returns the tag and the runtime decision."""
    import bentoml

    tag = f"{name}:{model_version(meta)}"
    recipe = feature_recipe(model)
    stored = _stored(tag, meta.model_sha256)
    if stored is not None and recipe is not None and "features_spec" not in stored.info.metadata:
        log.info("model %s was stored without its feature recipe: saving it again", tag)
        bentoml.models.delete(tag)
        stored = None
    if stored is not None:
        log.info("model %s is stored already: reused", tag)
        return tag, dict(stored.info.metadata["runtime"])
    onnx_bytes, runtime = onnx_export(model, meta)
    metadata = {
        "task": meta.task,
        "classes": meta.classes,
        "input_columns": meta.input_columns,
        "contract": meta.contract,
        "mlflow_run_id": meta.run_id,
        "git_commit": git_commit(),
        "data_sha256": _data_hash(),
        "model_sha256": meta.model_sha256,  # of model.joblib, checked before serving loads it
        "onnx_sha256": hashlib.sha256(onnx_bytes).hexdigest() if onnx_bytes else None,
        "metrics": metrics,
        "runtime": runtime,
        "model_meta": meta.model_dump_json(),  # what the service predicts with (threshold...)
        # the feature step's recipe: with the ONNX graph, serving needs no unpickling at all
        "features_spec": json.dumps(recipe) if recipe is not None else None,
    }
    # BentoML metadata takes basic types only: leave out what a task lacks (classes, ...).
    with bentoml.models.create(tag, labels={"project": name}, metadata=_drop_none(metadata)) as m:
        shutil.copyfile(paths.MODEL, m.path_of(paths.STORE_MODEL_FILE))
        if onnx_bytes:
            Path(m.path_of(paths.STORE_ONNX_FILE)).write_bytes(onnx_bytes)
    return tag, runtime


def build_bento(name: str, model_tag: str) -> str:
    """`bentoml build` from bentofile.yaml as Bento ``name``, serving exactly ``model_tag``
    (recorded in the Bento as ``--arg model_tag``), with the image Python set to ours;
    returns the Bento's tag."""
    import tempfile

    import bentoml
    import yaml

    config = yaml.safe_load(Path("bentofile.yaml").read_text())
    # the image's Python: the one that trained the model (models/model.json `python`), so the
    # pickled pipeline is loaded by the Python minor version that wrote it
    config.setdefault("docker", {})["python_version"] = ModelMeta.read().python or python_version()
    config["labels"] = config.get("labels", {}) | {"project": name}
    with tempfile.TemporaryDirectory() as tmp:
        bentofile = Path(tmp, "bentofile.yaml")
        bentofile.write_text(yaml.safe_dump(config, sort_keys=False))
        bento = bentoml.bentos.build_bentofile(
            str(bentofile), build_ctx=".", name=name, args={"model_tag": model_tag}
        )
    return str(bento.tag)


def _newest_first(items: list[Any]) -> list[Any]:
    return sorted(items, key=lambda item: item.creation_time, reverse=True)


def prune(name: str, keep: int, model_tag: str) -> list[str]:
    """Keep this project's newest ``keep`` Bentos and ``keep`` models (``model_tag`` and the
    newest others), and every model a kept Bento serves; delete the rest. Only items named
    ``name`` are touched: another project's never are. Returns the deleted tags."""
    import bentoml
    from bentoml.exceptions import NotFound

    def listed(store: Any) -> list[Any]:
        try:
            return _newest_first(store.list(name))
        except NotFound:
            return []

    bentos = listed(bentoml.bentos)
    others = [m for m in listed(bentoml.models) if str(m.tag) != model_tag]
    needed = {model_tag} | {str(m.tag) for m in others[: keep - 1]}
    needed |= {str(m.tag) for b in bentos[:keep] for m in b.info.all_models}
    deleted = []
    for bento in bentos[keep:]:
        bentoml.bentos.delete(bento.tag)
        deleted.append(str(bento.tag))
    for model in others:
        if str(model.tag) not in needed:
            bentoml.models.delete(model.tag)
            deleted.append(str(model.tag))
    return deleted


def run(params: Params) -> None:
    if not paths.METRICS.exists():
        raise PackageError(f"{paths.METRICS}: missing (run the evaluate stage first)")
    model, meta = load()
    metrics = json.loads(paths.METRICS.read_text())
    name = project_name(params)
    model_tag, runtime = save_model(model, meta, metrics, name)
    log.info("model %s (serving runtime: %s)", model_tag, runtime["runtime"])
    bento_tag = build_bento(name, model_tag) if params.package.build_bento else None
    log.info("built bento %s", bento_tag)
    deleted = prune(name, params.package.keep, model_tag)
    log.info("store: kept the last %d of %s, deleted %s", params.package.keep, name, deleted or 0)
    io.write_json(
        {
            "model_tag": model_tag,
            "bento_tag": bento_tag,
            "model_sha256": meta.model_sha256,
            "data_sha256": _data_hash(),
            "contract": meta.contract,
            "runtime": runtime,
        },
        paths.PACKAGE,
    )
