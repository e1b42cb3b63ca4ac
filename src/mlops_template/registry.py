"""Promotion and rollback in the MLflow model registry through the ``champion`` alias.

Every `train` run registers a new version (earlier versions stay registered). Promotion is an
explicit step, never a side effect of `dvc repro`: the main-branch workflow runs
`mlops promote --image <ref>` only after the image was built, smoke-tested and pushed, so the
alias never names a model without a deployable image. Each promotion is appended to the
registered model's ``champion_history`` tag; :func:`rollback` pops it, so rolling back twice
walks back through earlier champions (not merely to version N-1, which may never have shipped).
Each promoted version carries tags ``image`` and ``git_commit``: what to redeploy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_template import paths
from mlops_template.errors import ModelError, RegistryError
from mlops_template.tracking import guarded, tracking_uri

log = logging.getLogger(__name__)

CHAMPION = "champion"
HISTORY_TAG = "champion_history"


@dataclass(frozen=True)
class Champion:
    """The version the ``champion`` alias names after a promotion or rollback."""

    name: str
    version: int
    previous: int | None
    image: str | None
    git_commit: str | None


@contextmanager
def _mlflow(action: str) -> Iterator[Any]:
    """An MlflowClient on the project's store; MLflow failures become TrackingError."""
    from mlflow import MlflowClient

    with guarded(action):
        yield MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


def _history(client: Any, name: str) -> list[int]:
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG, "")
    return [int(v) for v in raw.split(",") if v.strip()]


def _versions(client: Any, name: str) -> list[int]:
    found = client.search_model_versions(f"name = '{name}'")
    return sorted(int(v.version) for v in found)


def current_champion(client: Any, name: str) -> int | None:
    aliases = client.get_registered_model(name).aliases or {}
    version = aliases.get(CHAMPION)
    return None if version is None else int(version)


def _require_version(client: Any, name: str, version: int) -> None:
    known = _versions(client, name)
    if version not in known:
        raise RegistryError(
            f"registered model {name!r} has no version {version} "
            f"(registered: {', '.join(map(str, known)) or 'none'})"
        )


def _require_model(client: Any, name: str) -> None:
    names = [m.name for m in client.search_registered_models(f"name = '{name}'")]
    if name not in names:
        raise RegistryError(
            f"registered model {name!r} not found in {tracking_uri()!r} "
            "(tracking.registered_model in params.yaml; run `dvc repro` first)"
        )


def _describe(client: Any, name: str, version: int, previous: int | None) -> Champion:
    tags = client.get_model_version(name, str(version)).tags or {}
    return Champion(name, version, previous, tags.get("image"), tags.get("git_commit"))


def _run_commit(client: Any, run_id: str | None) -> str | None:
    if not run_id:
        return None
    tags: dict[str, str] = client.get_run(run_id).data.tags
    return tags.get("git_commit")


def _require_run(client: Any, name: str, version: int, mv: Any, run_id: str) -> None:
    """A version number alone can name another model in another store (a developer's SQLite
    file vs the shared server): the version must come from the run that trained our model."""
    if mv.run_id == run_id:
        return
    found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    if found:
        hint = f"version {found[0].version} was registered from that run: promote that one"
    else:
        hint = (
            f"no version of {name!r} in {tracking_uri()!r} comes from that run: the model was "
            f"registered in another store (see mlflow.tracking_uri in {paths.MODEL_META}); "
            "re-train against this store (dvc repro --force train) or pass --version"
        )
    raise RegistryError(
        f"registered model {name!r} version {version} was registered from run {mv.run_id}, "
        f"not from the trained model's run {run_id} ({paths.MODEL_META}); {hint}"
    )


def promote(
    name: str, version: int, image: str | None = None, run_id: str | None = None
) -> Champion:
    """Point ``champion`` at ``version``; record the image to deploy and the history.
    With ``run_id`` (the run that trained the model being shipped) the version must have been
    registered from that run, else RegistryError and nothing changes."""
    with _mlflow(f"promote {name} version {version}") as client:
        _require_model(client, name)
        _require_version(client, name, version)
        mv = client.get_model_version(name, str(version))
        if run_id:
            _require_run(client, name, version, mv, run_id)
        previous = current_champion(client, name)
        commit = _run_commit(client, mv.run_id)
        if commit:
            client.set_model_version_tag(name, str(version), "git_commit", commit)
        if image:
            client.set_model_version_tag(name, str(version), "image", image)
        client.set_registered_model_alias(name, CHAMPION, str(version))
        history = _history(client, name)
        if not history or history[-1] != version:
            history.append(version)
        client.set_registered_model_tag(name, HISTORY_TAG, ",".join(map(str, history)))
        log.info("%s: champion -> version %s (was %s)", name, version, previous)
        return _describe(client, name, version, previous)


def _rollback_target(client: Any, name: str, current: int, history: list[int]) -> int:
    while history and history[-1] == current:
        history.pop()
    if history:
        return history[-1]
    earlier = [v for v in _versions(client, name) if v < current]
    if not earlier:
        raise RegistryError(
            f"registered model {name!r}: champion is version {current} and there is no "
            "earlier version to roll back to"
        )
    history.append(earlier[-1])
    return earlier[-1]


def rollback(name: str) -> Champion:
    """Point ``champion`` at the previous champion (else the highest earlier version)."""
    with _mlflow(f"roll back {name}") as client:
        _require_model(client, name)
        current = current_champion(client, name)
        if current is None:
            raise RegistryError(f"registered model {name!r} has no {CHAMPION!r} alias yet")
        history = _history(client, name)
        target = _rollback_target(client, name, current, history)
        client.set_registered_model_alias(name, CHAMPION, str(target))
        client.set_model_version_tag(name, str(current), "rolled_back", "true")
        client.set_registered_model_tag(name, HISTORY_TAG, ",".join(map(str, history)))
        log.info("%s: champion -> version %s (rolled back from %s)", name, target, current)
        return _describe(client, name, target, current)


def alias_version(name: str, alias: str) -> tuple[int, str]:
    """(version, run id) the registry alias ``alias`` of ``name`` points at."""
    with _mlflow(f"read alias {alias} of {name}") as client:
        _require_model(client, name)
        version = (client.get_registered_model(name).aliases or {}).get(alias)
        if version is None:
            raise RegistryError(f"registered model {name!r} has no {alias!r} alias")
        mv = client.get_model_version(name, str(version))
        return int(version), str(mv.run_id)


def version_of_run(name: str, run_id: str) -> int:
    """The registered version of ``name`` that run ``run_id`` trained."""
    with _mlflow(f"find the version of {name} from run {run_id}") as client:
        _require_model(client, name)
        found = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        if not found:
            raise RegistryError(
                f"registered model {name!r} has no version from run {run_id} in "
                f"{tracking_uri()!r}: was the challenger trained against another store?"
            )
        return max(int(v.version) for v in found)


@dataclass(frozen=True)
class TrainedModel:
    """Where `train` registered the model (models/model.json ``mlflow``)."""

    version: int
    run_id: str | None


def trained_model(meta_path: Path = paths.MODEL_META) -> TrainedModel:
    """The registry version and MLflow run of the trained model (models/model.json)."""
    from mlops_template.model import ModelMeta

    try:
        mlflow = ModelMeta.read(meta_path).mlflow or {}
    except ModelError as err:
        raise RegistryError(str(err)) from None
    try:
        return TrainedModel(int(mlflow["version"]), mlflow.get("run_id") or None)
    except (KeyError, TypeError, ValueError):
        raise RegistryError(
            f"{meta_path}: no mlflow.version (the model was not registered); pass --version"
        ) from None
