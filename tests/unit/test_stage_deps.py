"""dvc.yaml must list every project module a stage runs, or DVC reuses stale outputs.

A stage's modules are derived from the code: the module of its `mlops stage` / `mlops monitor`
command and everything it imports from the package, at any depth (imports inside functions
included). A stage that loads the trained pipeline also runs features.py (the model file names
the feature function). No import cycle between project modules, either.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml
from pathspec import PathSpec

from mlops_template.cli import STAGES

# a generated project's quick check (the template's CI runs these: docs/template.md)
pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src/mlops_template"
# the dispatcher every stage command goes through, not stage behaviour
NOT_STAGE_CODE = {"mlops_template.cli", "mlops_template.__main__", "mlops_template"}


def _module_file(name: str) -> Path:
    rel = Path(*name.split(".")[1:])
    package = PACKAGE / rel / "__init__.py"
    return package if package.exists() else (PACKAGE / rel).with_suffix(".py")


@cache
def direct_imports(name: str) -> frozenset[str]:
    """Project modules ``name`` imports anywhere in its source."""
    path = _module_file(name)
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mlops_template.")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if not base.startswith("mlops_template"):
                continue
            for alias in node.names:  # `from pkg import module` or `from module import name`
                sub = f"{base}.{alias.name}"
                found.add(sub if _module_file(sub).exists() else base)
    return frozenset(found - NOT_STAGE_CODE - {name})


def closure(name: str) -> set[str]:
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(direct_imports(current))
    return seen


def expected_deps(module: str) -> set[str]:
    modules = closure(module)
    if "mlops_template.model" in modules:
        modules.add("mlops_template.features")
    files = {str(_module_file(m).relative_to(ROOT)) for m in modules}
    if module == "mlops_template.stages.package":  # it builds the Bento: the code the Bento serves
        files |= {f for f in bento_files() if not f.endswith("__init__.py")}
    return files


def bento_files() -> set[str]:
    """The project's source files that bentofile.yaml's include patterns select (gitwildmatch,
    as BentoML matches them)."""
    include = yaml.safe_load((ROOT / "bentofile.yaml").read_text())["include"]
    spec = PathSpec.from_lines("gitwildmatch", include)
    return {
        str(p.relative_to(ROOT))
        for p in PACKAGE.rglob("*.py")
        if spec.match_file(p.relative_to(ROOT))
    }


def _stages() -> list[tuple[str, str, dict]]:
    """(dvc.yaml file, stage name, stage) for every stage that runs a project command."""
    out = []
    for path in (ROOT / "dvc.yaml", ROOT / "monitoring/dvc.yaml"):
        for name, stage in yaml.safe_load(path.read_text())["stages"].items():
            out.append((str(path.relative_to(ROOT)), name, stage))
    return out


def _module_of(cmd: str) -> str:
    words = cmd.split()
    if words[:2] == ["mlops", "stage"]:
        return STAGES[words[2]]
    assert words[:2] == ["mlops", "monitor"], cmd
    return "mlops_template.monitor"


@pytest.mark.parametrize(("file", "name", "stage"), _stages(), ids=lambda v: str(v))
def test_stage_lists_every_module_it_runs(file: str, name: str, stage: dict) -> None:
    declared = [d for d in stage.get("deps", []) if d.startswith("src/")]
    expected = expected_deps(_module_of(stage["cmd"]))
    missing = {f for f in expected if not any(f == d or f.startswith(d + "/") for d in declared)}
    assert not missing, f"{file} stage {name!r}: add to deps: {sorted(missing)}"


def test_stages_are_declared_in_run_order() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = {
        next(iter(o)) if isinstance(o, dict) else o: name
        for name, stage in stages.items()
        for o in stage.get("outs", []) + stage.get("metrics", [])
    }
    order = list(stages)
    for name, stage in stages.items():
        for dep in stage.get("deps", []):
            if dep in outs:
                assert order.index(outs[dep]) < order.index(name), f"{name} before {outs[dep]}"


def test_no_import_cycle_between_project_modules() -> None:
    modules = {
        "mlops_template." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    } - NOT_STAGE_CODE
    for module in sorted(modules):
        for other in direct_imports(module):
            assert module not in closure(other), f"import cycle: {module} <-> {other}"


@pytest.mark.parametrize(("file", "name", "stage"), _stages(), ids=lambda v: str(v))
def test_stage_code_deps_exist(file: str, name: str, stage: dict) -> None:
    """A module that was moved or split (monitor.py -> monitor/) leaves no dep behind."""
    gone = [d for d in stage.get("deps", []) if d.startswith("src/") and not (ROOT / d).exists()]
    assert not gone, f"{file} stage {name!r}: deps on code that no longer exists: {gone}"


def test_the_bento_includes_every_module_the_service_imports() -> None:
    """A module the service imports but the Bento leaves out imports fine here and fails
    only inside the image (`cannot import name ...`)."""
    include = bento_files()
    # serve.challenger: challenger (the registry alias) needs mlflow, which the Bento leaves
    # out on purpose; routing imports the registry under `except ImportError` and says so
    optional = {"mlops_template.registry"}
    modules, todo = {"mlops_template"}, ["mlops_template.serving.service"]
    while todo:
        current = todo.pop()
        if current not in modules and current not in optional:
            modules.add(current)
            todo.extend(direct_imports(current))
    packages = {m.rpartition(".")[0] for m in modules if m.count(".") > 1}
    needed = {str(_module_file(m).relative_to(ROOT)) for m in modules | packages}
    assert not needed - include, f"bentofile.yaml include: add {sorted(needed - include)}"


WINGS = ("stages", "serving", "monitor", "init")


def _wing(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in WINGS else None


def test_a_wing_imports_only_the_shared_floor() -> None:
    """What two wings both need moves down to the shared modules (gate_rules.py for the gate
    stage and `mlops compare`): a wing never imports another wing."""
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        module = ".".join(("mlops_template", *(parts[:-1] if parts[-1] == "__init__" else parts)))
        if (wing := _wing(module)) is None:
            continue
        crossing = {m for m in direct_imports(module) if _wing(m) not in (None, wing)}
        assert not crossing, f"{module} imports another wing: {sorted(crossing)}"
