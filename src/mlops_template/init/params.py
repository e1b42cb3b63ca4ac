"""Round-trip edits of params.yaml (ruamel.yaml): comments, key order and every key `mlops init`
does not own stay as they are."""

from __future__ import annotations

import io
from typing import Any

import yaml

from mlops_template.config import GateParams, Task
from mlops_template.gate_rules import applies_to
from mlops_template.init.inference import Inference
from mlops_template.metric_directions import HIGHER_IS_BETTER
from mlops_template.sources import Table

CLASSIFICATION_QUALITY = {"roc_auc": 0.05, "f1": 0.1}
REGRESSION_QUALITY = {"r2": 0.05}


def _yaml() -> Any:
    """ruamel.yaml round trip laid out like params.yaml (an unchanged file dumps identically)."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.width = 100
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.preserve_quotes = True
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return rt


def _scalar(value: Any) -> Any:
    """Quote a string PyYAML (the params loader) would read as something else (``yes``, ``1``);
    write others plain (ruamel would otherwise keep the quotes of the value it replaces)."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, PlainScalarString

    if not isinstance(value, str):
        return value
    try:
        same = yaml.safe_load(value) == value
    except yaml.YAMLError:
        same = False
    return PlainScalarString(value) if same else DoubleQuotedScalarString(value)


def _flow(items: list[Any]) -> Any:
    from ruamel.yaml.comments import CommentedSeq

    seq = CommentedSeq([_scalar(v) for v in items])
    seq.fa.set_flow_style()
    return seq


def _section(doc: Any, *keys: str) -> Any:
    """The nested mapping at ``keys``, created (at the end) where missing."""
    from ruamel.yaml.comments import CommentedMap

    node = doc
    for key in keys:
        if not isinstance(node.get(key), dict):
            node[key] = CommentedMap()
        node = node[key]
    return node


def _features_node(inf: Inference) -> dict[str, Any]:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    spec = inf.features()
    dates = CommentedSeq()
    for item in spec["datetime"]:
        entry = CommentedMap()
        entry["column"] = _scalar(item["column"])
        entry["parts"] = _flow(item["parts"])
        dates.append(entry)
    return {key: dates if key == "datetime" else _flow(value) for key, value in spec.items()}


def _own(metric: str, task: Task) -> bool:
    """A built-in metric the task produces (``rmse`` for regression, ``roc_auc`` otherwise)."""
    return metric in HIGHER_IS_BETTER and applies_to(metric, task)


def _for_task(node: Any, task: Task, defaults: dict[str, Any]) -> None:
    """Drop entries for metrics the task never produces (custom metrics stay); add the defaults
    when none of the task's own is left."""
    from ruamel.yaml.comments import CommentedMap

    for metric in list(node):
        if not applies_to(str(metric), task):
            del node[metric]
    if any(_own(str(m), task) for m in node):
        return
    for metric, value in defaults.items():
        if isinstance(value, dict):
            value = CommentedMap(value)
            value.fa.set_flow_style()
        node[metric] = value


# the model card's own words: written as placeholders (shown as "not stated"), never invented;
# what the owners already wrote stays
CARD_PLACEHOLDERS: dict[str, Any] = {
    "intended_use": "",
    "out_of_scope_use": "",
    "owners": [],
    "contact": "",
    "license": "",
    "limitations": [],
}


def _card_placeholders(doc: Any) -> None:
    card = _section(doc, "card")
    for key, empty in CARD_PLACEHOLDERS.items():
        if key not in card:
            card[key] = _flow(empty) if isinstance(empty, list) else empty


def update_params(doc: Any, inf: Inference, source: Table, data_path: str) -> None:
    """Set the data-dependent keys of a round-trip params.yaml mapping, in place (comments and
    every other key stay as they are)."""
    data = _section(doc, "data")
    data["task"] = inf.task
    data["source"] = source.fmt
    if source.fmt == "sql":
        sql = _section(doc, "data", "sql")
        sql["url"], sql["query"] = source.location, source.query
    else:
        data["path"] = _scalar(data_path)
    _section(doc, "data", "split")["method"] = inf.split
    features = _section(doc, "features")
    for key, value in _features_node(inf).items():
        features[key] = value
    _section(doc, "evaluate")["slice_column"] = _scalar(inf.slice_column)
    regression = inf.task == "regression"
    _for_task(_section(doc, "gate", "metrics"), inf.task, default_gates(inf.task))
    quality = REGRESSION_QUALITY if regression else CLASSIFICATION_QUALITY
    _for_task(_section(doc, "monitor", "quality_drop"), inf.task, quality)
    _card_placeholders(doc)
    tune = doc.get("tune")
    if isinstance(tune, dict) and tune.get("metric") and not applies_to(tune["metric"], inf.task):
        tune["metric"] = None


def default_gates(task: Task) -> dict[str, dict[str, float]]:
    """config.py's default ``gate.metrics`` that apply to ``task`` (the one place they are
    written; params.yaml repeats them, tests check)."""
    gates = GateParams().metrics
    return {
        name: gate.model_dump(exclude_none=True)
        for name, gate in gates.items()
        if applies_to(name, task)
    }


def load(text: str) -> Any:
    """params.yaml text as a round-trip mapping (keeps comments and order)."""
    return _yaml().load(text)


def dump(doc: Any) -> str:
    buf = io.StringIO()
    _yaml().dump(doc, buf)
    return buf.getvalue()


TOUCHED = (
    "data.task",
    "data.source",
    "data.path",
    "data.sql",
    "data.split.method",
    "features",
    "evaluate.slice_column",
    "gate.metrics",
    "monitor.quality_drop",
    "tune.metric",
)


def get(tree: Any, dotted: str) -> Any:
    """``tree["a"]["b"]`` for ``"a.b"``; None where a key is missing."""
    for key in dotted.split("."):
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def changed_keys(before: str, after: str) -> list[str]:
    """The params keys `mlops init` sets whose value differs between two params.yaml texts."""
    old, new = yaml.safe_load(before) or {}, yaml.safe_load(after) or {}
    return [key for key in TOUCHED if get(old, key) != get(new, key)]
