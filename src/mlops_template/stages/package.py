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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlops_template import io, paths, tracking
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
    """The stored model ``tag`` if it is there and holds exactly models/model.skops (a
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
    log.warning("stored model %s is not models/model.skops: saving it again", tag)
    bentoml.models.delete(tag)
    return None


# the model card's files as stored with the model: store file name -> bytes
CardFiles = dict[str, bytes]
CardWriter = Callable[[str, dict[str, Any]], CardFiles]


def _sha(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest() if data is not None else None


def _same_card(stored: Any, files: CardFiles) -> bool:
    """The stored model carries exactly this card (a call without a card keeps any)."""
    if not files:
        return True
    recorded = stored.info.metadata.get("model_card_sha256")
    if recorded != _sha(files.get(paths.STORE_CARD_FILE)):
        return False
    path = Path(stored.path_of(paths.STORE_CARD_FILE))
    return path.is_file() and file_sha256(path) == recorded


def _stored_onnx(stored: Any) -> bytes | None:
    """The stored model's checked ONNX graph (None if it has none or it does not match)."""
    path = Path(stored.path_of(paths.STORE_ONNX_FILE))
    recorded = stored.info.metadata.get("onnx_sha256")
    if recorded and path.is_file() and file_sha256(path) == recorded:
        return path.read_bytes()
    return None


def save_model(
    model: Any,
    meta: ModelMeta,
    metrics: dict[str, Any],
    name: str,
    card: CardWriter | None = None,
) -> tuple[str, dict[str, Any]]:
    """Save models/model.skops as is (+ the checked ONNX graph of its model step, + the model
    card that ``card(tag, runtime)`` writes) to the BentoML store as ``name:<model_version>``,
    or reuse that tag if it is already stored with the same card; returns the tag and the
    runtime decision."""
    import bentoml

    tag = f"{name}:{model_version(meta)}"
    recipe = feature_recipe(model)
    stored = _stored(tag, meta.model_sha256)
    if stored is not None and recipe is not None and "features_spec" not in stored.info.metadata:
        log.info("model %s was stored without its feature recipe: saving it again", tag)
        bentoml.models.delete(tag)
        stored = None
    onnx_bytes: bytes | None = None
    if stored is not None:
        runtime = dict(stored.info.metadata["runtime"])
        files = card(tag, runtime) if card else {}
        if _same_card(stored, files):
            log.info("model %s is stored already: reused", tag)
            return tag, runtime
        log.info("model %s: its model card changed, saving it again", tag)
        onnx_bytes = _stored_onnx(stored)
        bentoml.models.delete(tag)
    if onnx_bytes is None:
        onnx_bytes, runtime = onnx_export(model, meta)
        files = card(tag, runtime) if card else {}
    metadata = {
        "task": meta.task,
        "classes": meta.classes,
        "input_columns": meta.input_columns,
        "contract": meta.contract,
        "mlflow_run_id": meta.run_id,
        "git_commit": git_commit(),
        "data_sha256": _data_hash(),
        "model_sha256": meta.model_sha256,  # of model.skops, checked before serving loads it
        "onnx_sha256": _sha(onnx_bytes),
        "metrics": metrics,
        "runtime": runtime,
        "model_meta": meta.model_dump_json(),  # what the service predicts with (threshold...)
        # the feature step's recipe: with the ONNX graph, serving never reads the pipeline file
        "features_spec": json.dumps(recipe) if recipe is not None else None,
        # the model card (GET /model-card serves these files after checking their sha256)
        "model_card_sha256": _sha(files.get(paths.STORE_CARD_FILE)),
        "model_card_json_sha256": _sha(files.get(paths.STORE_CARD_JSON_FILE)),
    }
    # BentoML metadata takes basic types only: leave out what a task lacks (classes, ...).
    with bentoml.models.create(tag, labels={"project": name}, metadata=_drop_none(metadata)) as m:
        shutil.copyfile(paths.MODEL, m.path_of(paths.STORE_MODEL_FILE))
        if onnx_bytes:
            Path(m.path_of(paths.STORE_ONNX_FILE)).write_bytes(onnx_bytes)
        for file, data in files.items():
            Path(m.path_of(file)).write_bytes(data)
    return tag, runtime


def write_card(params: Params, tag: str, runtime: dict[str, Any]) -> CardFiles:
    """reports/model_card.md and its JSON twin, for the model stored as ``tag``."""
    from mlops_template.card import facts, render

    card = facts.build(params, model_tag=tag, runtime=runtime, git_commit=git_commit())
    io.write_json(card, paths.MODEL_CARD_JSON)
    io.write_text(render.markdown(card), paths.MODEL_CARD)
    return {
        paths.STORE_CARD_FILE: paths.MODEL_CARD.read_bytes(),
        paths.STORE_CARD_JSON_FILE: paths.MODEL_CARD_JSON.read_bytes(),
    }


def log_card(params: Params, meta: ModelMeta) -> None:
    """The card as artifacts of the training run (skipped, with a warning, when the store
    does not hold that run: a model trained elsewhere)."""
    if not meta.run_id:
        log.warning("model card: models/model.json names no MLflow run, not logged")
        return
    mlflow = tracking.connect(params.tracking.experiment)
    with tracking.guarded("log the model card"):
        try:
            mlflow.get_run(meta.run_id)
        except Exception:
            log.warning("model card: MLflow run %s is not in this store, not logged", meta.run_id)
            return
        with mlflow.start_run(run_id=meta.run_id):
            mlflow.log_artifact(str(paths.MODEL_CARD), artifact_path="model_card")
            mlflow.log_artifact(str(paths.MODEL_CARD_JSON), artifact_path="model_card")


def build_bento(name: str, model_tag: str) -> str:
    """`bentoml build` from bentofile.yaml as Bento ``name``, serving exactly ``model_tag``
    (recorded in the Bento as ``--arg model_tag``), with the image Python set to ours;
    returns the Bento's tag."""
    import tempfile

    import bentoml
    import yaml

    config = yaml.safe_load(Path("bentofile.yaml").read_text())
    # the image's Python: the one that trained the model (models/model.json `python`), so the
    # pipeline is loaded by the Python minor version that wrote it
    config.setdefault("docker", {})["python_version"] = ModelMeta.read().python or python_version()
    config["labels"] = config.get("labels", {}) | {"project": name}
    if paths.MODEL_CARD.exists():  # the card is the Bento's README, and ships beside it
        config["description"] = f"file:./{paths.MODEL_CARD}"
        config["include"] = [
            *config.get("include", []),
            str(paths.MODEL_CARD),
            str(paths.MODEL_CARD_JSON),
        ]
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
    model_tag, runtime = save_model(
        model, meta, metrics, name, card=lambda tag, rt: write_card(params, tag, rt)
    )
    log_card(params, meta)
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
