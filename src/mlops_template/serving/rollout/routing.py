"""Which model answers: the pure part of a rollout, shared by the service and its tests.

Routing is sticky by construction: a row goes to the challenger when a stable hash of its route
key (BLAKE2b of the challenger's tag and the key, not Python's per-process salted ``hash``)
falls below ``serve.challenger_share``. Every worker, restart and replica agrees; raising the
share keeps every key already on the challenger there; a new challenger draws a new sample.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mlops_template.config import Params
from mlops_template.errors import ConfigError, ModelError

CHAMPION, CHALLENGER, SHADOW = "champion", "challenger", "shadow"
ALIAS = "challenger"  # serve.challenger naming the registry alias instead of a tag
HEADER = "header:"
_TAG = re.compile(r"^[a-z0-9][a-z0-9._-]*:[A-Za-z0-9._-]+$")
_SCALE = float(2**64)


def bucket(key: Any, salt: str) -> float:
    """A key's place in [0, 1): the same for the same (salt, key) in every process."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True)
class Rollout:
    """serve.strategy and its knobs, checked against the contract."""

    strategy: Literal["single", "shadow", "canary", "ab"] = "single"
    challenger: str = ""  # the resolved BentoML tag
    share: float = 0.0
    key_kind: Literal["column", "header", ""] = ""
    key: str = ""

    @property
    def splits(self) -> bool:
        return self.strategy in ("canary", "ab")

    def to_challenger(
        self, columns: Mapping[str, Sequence[Any]], headers: Mapping[str, str] | None
    ) -> list[bool]:
        """Per row: does the challenger answer it? A header key routes the whole request; a
        request without that header (or a batched one, which has no headers) stays with the
        champion."""
        rows = len(next(iter(columns.values())))
        if self.key_kind == "header":
            value = (headers or {}).get(self.key)
            return [value is not None and bucket(value, self.challenger) < self.share] * rows
        return [bucket(v, self.challenger) < self.share for v in columns[self.key]]


def route_key(params: Params, inputs: Sequence[str], id_column: str | None) -> tuple[Any, str]:
    """(kind, name) of serve.route_key: ``header:NAME`` or an input column of the contract;
    empty means the contract's id column."""
    raw = params.serve.route_key.strip()
    if raw.lower().startswith(HEADER):
        name = raw[len(HEADER) :].strip().lower()  # HTTP header names are case-insensitive
        if not name:
            raise ConfigError("serve.route_key: 'header:' needs a header name (header:x-user-id)")
        return "header", name
    name = raw or (id_column or "")
    if not name:
        raise ConfigError(
            f"serve.route_key: needed for serve.strategy {params.serve.strategy!r} and the "
            "contract has no id column; name an input column or header:NAME"
        )
    if name not in inputs:
        raise ConfigError(
            f"serve.route_key: {name!r} is not an input column of the contract "
            f"({', '.join(inputs)}); name one, or header:NAME"
        )
    return "column", name


def plan(params: Params, challenger: str, inputs: Sequence[str], id_column: str | None) -> Rollout:
    """The rollout the service runs: ``challenger`` is the resolved tag."""
    serve = params.serve
    if serve.strategy == "single":
        return Rollout()
    if serve.strategy == "shadow":
        return Rollout("shadow", challenger)
    kind, name = route_key(params, inputs, id_column)
    return Rollout(serve.strategy, challenger, serve.challenger_share, kind, name)


def challenger_tag(value: str, registered_model: str) -> str:
    """serve.challenger as a BentoML tag: a tag as given, or the registry alias resolved to
    the stored model packaged from the run of the version it names."""
    if value != ALIAS:
        if not _TAG.match(value):
            raise ConfigError(
                f"serve.challenger: {value!r} is not a BentoML model tag NAME:VERSION "
                f"(bentoml models list) nor the registry alias {ALIAS!r}"
            )
        return value
    return _tag_of_alias(registered_model)


def _tag_of_alias(registered_model: str) -> str:
    try:
        from mlops_template.registry import alias_version
    except ImportError:  # a Bento image: serving packages only, no mlflow
        raise ConfigError(
            f"serve.challenger: the registry alias {ALIAS!r} needs mlflow, which this "
            "environment lacks; give the challenger's BentoML tag NAME:VERSION"
        ) from None
    version, run_id = alias_version(registered_model, ALIAS)
    return stored_tag_of_run(run_id, f"{registered_model!r} version {version} ({ALIAS})")


def stored_tag_of_run(run_id: str, what: str) -> str:
    """The newest model in the BentoML store packaged from MLflow run ``run_id``."""
    import bentoml

    found = [m for m in bentoml.models.list() if m.info.metadata.get("mlflow_run_id") == run_id]
    if not found:
        raise ModelError(
            f"serve.challenger: {what} comes from run {run_id}, and no model in the BentoML "
            "store was packaged from it: package that model first (its run's `dvc repro`)"
        )
    return str(max(found, key=lambda m: m.info.creation_time).tag)


def incompatibility(champion: Any, challenger: Any) -> str:
    """Why a challenger (its ModelMeta) cannot stand in for the champion, or "": the same
    task, classes and input columns, so both pass the same contract and compare."""
    if challenger.task != champion.task:
        return f"task {challenger.task}, the champion's is {champion.task}"
    if [str(c) for c in challenger.classes or []] != [str(c) for c in champion.classes or []]:
        return f"classes {challenger.classes}, the champion's are {champion.classes}"
    missing = sorted(set(champion.input_columns) - set(challenger.input_columns))
    extra = sorted(set(challenger.input_columns) - set(champion.input_columns))
    if missing or extra:
        parts = [f"lacks {', '.join(missing)}" if missing else "", f"adds {', '.join(extra)}"]
        return "input columns differ from the champion's: " + "; ".join(p for p in parts if p)
    return ""


def split(mask: Sequence[bool]) -> tuple[list[int], list[int]]:
    """Row positions answered by the champion and by the challenger."""
    return [i for i, m in enumerate(mask) if not m], [i for i, m in enumerate(mask) if m]


def merge(
    positions: tuple[list[int], list[int]], answers: tuple[list[Any], list[Any]]
) -> list[Any]:
    """The two models' answers back in request order."""
    out: list[Any] = [None] * (len(positions[0]) + len(positions[1]))
    for where, rows in zip(positions, answers, strict=True):
        for i, row in zip(where, rows, strict=True):
            out[i] = row
    return out


ROLES = (CHAMPION, CHALLENGER)  # who answers in canary / ab, in the order of :func:`split`
