"""dvc.yaml must list every params key a stage reads, or `dvc repro` reuses outputs made with
other settings (as tests/unit/test_stage_deps.py does for modules).

A stage's keys are derived from the code of the modules it runs (the same import closure):
attribute chains on the loaded params (``params.data.task``; the service's ``_PARAMS``) and on
function arguments annotated with a params section (``evaluate: EvaluateParams`` then
``evaluate.threshold``). A chain ends at the first name that is not a field (a method such as
``model_dump``, a mapping's ``items``): what it was called on is read whole. A section used
whole (passed on, dumped) counts as read whole unless a function of the closure takes that
section's type as an argument: its reads are then the keys. dvc.yaml lists a section whole or
key by key; a listed key covers everything under it.
"""

from __future__ import annotations

import ast
import typing
from functools import cache
from typing import Any

import pytest
from pydantic import BaseModel

from mlops_template.config import Params
from tests.unit.test_stage_deps import _module_file, _module_of, _stages, closure

ROOTS = {"params", "_PARAMS"}  # the loaded Params: stage entries, the service


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The params model a field holds (itself or optional); None for mappings and lists of
    models: their keys are the user's names, read as a whole."""
    if typing.get_origin(annotation) in (dict, list):
        return None
    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


@cache
def sections() -> dict[str, str]:
    """Class name of every params model -> its dotted key (``TrainParams`` -> ``train``)."""
    out: dict[str, str] = {}

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            sub = _model_of(field.annotation)
            if sub is not None and sub.__name__ not in out:
                out[sub.__name__] = f"{prefix}{name}"
                walk(sub, f"{prefix}{name}.")

    walk(Params, "")
    return out


def _section_of(annotation: ast.expr | None) -> str | None:
    """The section key of an annotation naming a params model (``EvaluateParams | None``)."""
    if annotation is None:
        return None
    text = ast.unparse(annotation).strip("'\"")
    names = {part.strip() for part in text.split("|")}
    found = sorted(names & set(sections()))
    return sections()[found[0]] if found else None


def _key(model: type[BaseModel], prefix: str, attrs: list[str]) -> str:
    """The longest chain of fields: ``train.cv.model_dump`` -> ``train.cv``."""
    keys = prefix.split(".") if prefix else []
    for attr in attrs:
        if model is None or attr not in model.model_fields:
            break
        keys.append(attr)
        model = _model_of(model.model_fields[attr].annotation)  # type: ignore[assignment]
    return ".".join(keys)


def _model_at(key: str) -> type[BaseModel]:
    model: Any = Params
    for part in key.split(".") if key else []:
        model = _model_of(model.model_fields[part].annotation)
    return model


@cache
def reads(module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(keys read on the loaded params, keys read on arguments annotated with a section) in
    one module's source."""
    tree = ast.parse(_module_file(module).read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    typed: dict[ast.AST, dict[str, str]] = {}  # function -> argument name -> section key
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            typed[node] = {a.arg: key for a in args if (key := _section_of(a.annotation))}

    def section(name: ast.Name) -> str | None:
        """The section key an argument name stands for in the innermost function declaring it
        (None: not an annotated argument)."""
        scope: ast.AST | None = name
        while scope is not None:
            if scope in typed and name.id in typed[scope]:
                return typed[scope][name.id]
            scope = parents.get(scope)
        return None

    rooted: set[str] = set()
    annotated: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Name):
            continue
        prefix = section(node)
        if prefix is None and node.id not in ROOTS:
            continue
        attrs, current = [], node
        while isinstance(parents.get(current), ast.Attribute):
            current = parents[current]
            attrs.append(current.attr)  # type: ignore[attr-defined]
        key = _key(_model_at(prefix or ""), prefix or "", attrs)
        if key and (prefix is None or attrs):  # an argument passed on: the callee's reads count
            (rooted if prefix is None else annotated).add(key)
    return frozenset(rooted), frozenset(annotated)


def stage_reads(module: str) -> set[str]:
    modules = closure(module)
    if module == "mlops_template.stages.package":  # the Bento serves with the bundled params
        modules |= closure("mlops_template.serving.service")
    rooted: set[str] = set()
    annotated: set[str] = set()
    for m in modules:
        found, typed = reads(m)
        rooted |= found
        annotated |= typed
    # a section handed whole to functions that declare its type: their reads are the keys
    # (reads of a section never taken from params -- a feature spec stored with the model --
    # are not params reads)
    out: set[str] = set()
    for key in rooted:
        inner = {k for k in annotated if k == key or k.startswith(key + ".")}
        out |= inner or {key}
    return out


def _covered(key: str, declared: list[str]) -> bool:
    return any(key == d or key.startswith(d + ".") for d in declared)


@pytest.mark.parametrize(("file", "name", "stage"), _stages(), ids=lambda v: str(v))
def test_stage_lists_every_params_key_it_reads(file: str, name: str, stage: dict) -> None:
    declared = [p for p in stage.get("params", []) if isinstance(p, str)]
    missing = sorted(k for k in stage_reads(_module_of(stage["cmd"])) if not _covered(k, declared))
    assert not missing, f"{file} stage {name!r}: add to params: {missing}"


def test_the_derivation_sees_keys_sections_and_annotated_arguments() -> None:
    """The rules above on the real code: a chain, a method call ending a chain, a section
    read through an annotated argument (train's threshold keys)."""
    train = stage_reads("mlops_template.stages.train")
    assert {"data.task", "data.source", "train.cv.folds"} <= train  # chains
    assert "train" in train  # params.with_overrides(...) on a TrainParams argument: all of it
    # handed whole to train(evaluate=...), which reads three keys
    assert {"evaluate.threshold", "evaluate.threshold_level"} <= train and "evaluate" not in train
    # gate.model_dump() (the fingerprint): all of it, as the keys its typed readers use
    assert {"gate.metrics", "gate.reference.action", "gate.override"} <= stage_reads(
        "mlops_template.stages.gate"
    )
