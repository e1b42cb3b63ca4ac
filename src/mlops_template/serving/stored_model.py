"""The packaged model as the service loads it: a model of the BentoML store, its files
checked against the sha256 recorded at packaging before anything is read, then its feature
step and model step (ONNX, or the scikit-learn pipeline) ready to predict. Also where the
service may write when BentoML serves it from inside the store (:func:`request_log_path`).

Nothing is unpickled: with ONNX the feature step is rebuilt from the recipe (data, not code)
stored in the model's metadata; the scikit-learn pipeline is read from its skops file
(:func:`mlops_template.model.read_pipeline`: only the trusted types are built).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import NotFound

from mlops_template import paths
from mlops_template.config import FeaturesParams
from mlops_template.errors import ConfigError, ModelError
from mlops_template.features import feature_columns, feature_recipe, feature_transformer
from mlops_template.model import ModelMeta, decide, file_sha256, read_pipeline
from mlops_template.onnx_path import OnnxModel, split_pipeline


class NonFiniteOutput(ModelError):
    """The model returned NaN or infinity: never answered as a prediction."""


def verified_file(stored: Any, name: str, key: str) -> Path:
    """A file of the stored model, after its sha256 matched the one recorded at packaging
    (metadata ``key``): a truncated or swapped copy is never read."""
    path = Path(stored.path_of(name)).resolve()  # errors name the real file
    expected = str(stored.info.metadata.get(key, ""))
    if not path.is_file():
        raise ModelError(f"{path}: missing from the stored model {stored.tag}")
    actual = file_sha256(path)
    if actual != expected:
        raise ModelError(
            f"{path}: sha256 {actual[:12]}… is not the {expected[:12] or 'none'}… recorded when "
            f"{stored.tag} was packaged: the stored copy is corrupt or changed "
            "(delete it and re-run the package stage)"
        )
    return path


def _model_yaml(tag: str) -> Path:
    from bentoml._internal.configuration.containers import BentoMLContainer

    name, _, version = tag.partition(":")
    return Path(BentoMLContainer.model_store_dir.get(), name, version, "model.yaml").resolve()


def stored_model(tag: str) -> Any:
    """The BentoML store's model ``tag``; NotFound when it is not there, ModelError naming its
    ``model.yaml`` when that cannot be read (truncated, edited: BentoML logs the YAML error
    and raises a 123-line traceback otherwise). The YAML is parsed here first, so BentoML's
    own log lines never come."""
    import yaml

    path = _model_yaml(tag)
    try:
        if path.is_file():
            yaml.safe_load(path.read_text())
        return bentoml.models.get(tag)
    except NotFound:
        raise
    except Exception as err:
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ModelError(
            f"{path}: not a readable BentoML model description ({type(err).__name__}: "
            f"{first}); delete {path.parent} and re-run the package stage"
        ) from None


def check_stored(tag: str, missing: str = "no model tag given") -> Any:
    """The stored model ``tag`` with every file it serves from checked; ``missing``: the
    error when there is no tag."""
    if not tag:
        raise ModelError(missing)
    try:
        stored = stored_model(tag)
    except NotFound:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise ModelError(f"model {tag}: not in the BentoML store ({home})") from None
    verified_file(stored, paths.STORE_MODEL_FILE, "model_sha256")
    if "onnx_sha256" in stored.info.metadata:
        verified_file(stored, paths.STORE_ONNX_FILE, "onnx_sha256")
    return stored


def _pipeline(stored: Any) -> Any:
    """The pipeline of a checked stored model (skops: only trusted types are built); one error
    naming the file if it does not load although its hash matched (written by another library
    version, say, or holding a type outside the trusted list)."""
    return read_pipeline(Path(stored.path_of(paths.STORE_MODEL_FILE)).resolve())


def trained_at(meta: ModelMeta, stored: Any) -> datetime:
    """When the model was trained (``mlflow.trained_at`` of models/model.json), else when it
    was packaged (the BentoML model's creation time): the model age /readyz reports."""
    when = meta.trained_at or stored.info.creation_time
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass
class LoadedModel:
    """One stored model ready to predict: its feature step, model step (ONNX or scikit-learn)
    and description; ``spec``: the feature recipe when numpy arrays can skip pandas (ONNX and
    the project's feature function)."""

    features: Any
    core: Any
    meta: ModelMeta
    runtime: str
    version: str
    trained_at: datetime
    spec: FeaturesParams | None = None

    @classmethod
    def load(cls, tag: str, runtime: str = "auto") -> LoadedModel:
        """``runtime``: serve.runtime (``auto`` takes ONNX when the package stage stored it)."""
        stored = check_stored(tag)
        metadata = stored.info.metadata
        meta = ModelMeta.model_validate_json(metadata["model_meta"])
        if "onnx_sha256" not in metadata or runtime != "auto":
            features, core = split_pipeline(_pipeline(stored))
            return cls(features, core, meta, "sklearn", str(stored.tag), trained_at(meta, stored))
        onnx = OnnxModel(Path(stored.path_of(paths.STORE_ONNX_FILE)).read_bytes())
        spec: FeaturesParams | None
        if metadata.get("features_spec"):  # the recipe is data, not code: the pipeline is not read
            spec = FeaturesParams.model_validate_json(metadata["features_spec"])
            features = feature_transformer(spec)
        else:  # packaged before the recipe was stored
            features = split_pipeline(_pipeline(stored))[0]
            recipe = feature_recipe(features)
            spec = FeaturesParams.model_validate(recipe) if recipe is not None else None
        when = trained_at(meta, stored)
        return cls(features, onnx, meta, "onnx", str(stored.tag), when, spec)

    def predict(self, X: pd.DataFrame | dict[str, Any]) -> list[dict[str, Any]]:
        """Predictions of a DataFrame, or (``spec`` set) of typed numpy arrays; raises
        NonFiniteOutput when the model returns NaN or infinity."""
        if isinstance(X, dict):
            assert self.spec is not None
            features: Any = feature_columns(X, self.spec)
        else:
            features = self.features.transform(X)
        if self.meta.task == "regression":
            raw = self.core.predict(features)
        else:
            raw = self.core.predict_proba(features)
        raw = np.asarray(raw, dtype="float64")
        finite = np.isfinite(raw).reshape(len(raw), -1).all(axis=1)
        if not finite.all():
            bad = int((~finite).sum())
            message = f"model {self.version} returned NaN or infinity for {bad} of {len(raw)} rows"
            raise NonFiniteOutput(message)
        return decide(raw, self.meta).records(self.meta.classes, self.version)


def request_log_path(configured: str, env: Mapping[str, str] = os.environ) -> Path:
    """Where served rows are logged: ``MLOPS_REQUEST_LOG``, else ``configured``
    (serve.request_log). A relative path is taken from the working directory, except in a
    Bento of the BentoML store, where BentoML moves to serve ``bentoml serve <bento tag>``:
    then from the folder the command was started in (the shell's ``PWD``). Nothing is ever
    written into the store; without a folder outside it, one line asks for MLOPS_REQUEST_LOG."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    chosen = Path(env.get(paths.ENV_REQUEST_LOG) or configured)
    store = Path(BentoMLContainer.bento_store_dir.get()).resolve()
    where = (chosen if chosen.is_absolute() else Path.cwd() / chosen).resolve()
    if not where.is_relative_to(store):
        return chosen
    started = Path(env.get("PWD") or store).resolve()
    if chosen.is_absolute() or started.is_relative_to(store):
        raise ConfigError(
            f"request log {where}: inside the BentoML store ({store}); set MLOPS_REQUEST_LOG "
            "to a path outside it, or start `bentoml serve` from another folder"
        )
    return started / chosen
