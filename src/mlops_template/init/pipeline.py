"""The `data` stage's dependency on the data file, kept in step with data.path in dvc.yaml.

DVC cannot template an optional path (the built-in generator has none), so `mlops init` writes
the file itself: replacing the data (`dvc add` again) then re-runs the `data` stage, as
replacing any other dependency does. Round trip (ruamel.yaml): comments and every other line of
dvc.yaml stay as they are.
"""

from __future__ import annotations

from typing import Any

from mlops_template.errors import ConfigError
from mlops_template.init.params import dump, load

STAGE = "data"


def _deps(doc: Any, where: str) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    try:
        stage = doc["stages"][STAGE]
    except (KeyError, TypeError):
        raise ConfigError(f"{where}: no stage {STAGE!r} (expected stages.{STAGE})") from None
    if stage.get("deps") is None:
        stage["deps"] = CommentedSeq()
    return stage["deps"]


def with_data_dep(text: str, *, old: str, new: str, where: str = "dvc.yaml") -> str:
    """dvc.yaml ``text`` with the `data` stage depending on the local file ``new`` instead of
    ``old`` (either may be "": no file, e.g. the built-in generator, a URL or a query)."""
    doc = load(text)
    deps = _deps(doc, where)
    if old and old != new and old in deps:
        deps.remove(old)
    if new and new not in deps:
        deps.append(new)
    return dump(doc)
