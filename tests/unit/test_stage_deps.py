"""Each stage of dvc.yaml and monitoring/dvc.yaml lists as deps every project module its entry
point imports, directly or through another project module, so that a code change re-runs the
stages it can affect (and `dvc status` says so)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from mlops_template.cli import STAGES

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
COMMANDS = {"mlops monitor": "mlops_template.monitor"}  # user commands that are stages too
ALSO = {"dvc.yaml:package": ["mlops_template.service"]}  # the Bento it builds runs the service


def _file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists() and candidate != SRC / "mlops_template/__init__.py":
            return candidate
    return None


def _imported(path: Path) -> set[Path]:
    """Project modules named by the file's imports (top-level or inside functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlops_template"):
            names |= {node.module or ""} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {f for f in map(_file, names) if f is not None}


def _closure(module: str) -> set[str]:
    """Every project file the module can run: imports followed through, a package whole."""
    start = _file(module)
    assert start is not None, module
    todo, seen = [start], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += _imported(path)
        if path.name == "__init__.py":
            todo += path.parent.glob("*.py")
    return {str(p.relative_to(ROOT)) for p in seen}


def _stages() -> list[tuple[str, dict]]:
    found = []
    for name in ("dvc.yaml", "monitoring/dvc.yaml"):
        for stage, body in yaml.safe_load((ROOT / name).read_text())["stages"].items():
            found.append((f"{name}:{stage}", body))
    return found


def _code(stage: str, cmd: str) -> set[str]:
    """The project files a stage runs: its entry module's closure (and the service's)."""
    entry = STAGES[cmd.split()[-1]] if cmd.startswith("mlops stage ") else COMMANDS[cmd]
    return set().union(*(_closure(m) for m in [entry, *ALSO.get(stage, [])]))


@pytest.mark.parametrize(("stage", "body"), _stages(), ids=[s for s, _ in _stages()])
def test_stage_lists_every_module_it_imports(stage: str, body: dict) -> None:
    missing = _code(stage, body["cmd"]) - set(body["deps"])
    assert not missing, f"{stage}: add to deps: {sorted(missing)}"
    gone = [d for d in body["deps"] if not (ROOT / d).exists() and d.startswith("src/")]
    assert not gone, f"{stage}: deps on code that does not exist: {gone}"


def test_the_closure_follows_imports_into_packages() -> None:
    monitor = _closure("mlops_template.monitor")
    assert {
        "src/mlops_template/monitor/drift.py",
        "src/mlops_template/sources.py",
        "src/mlops_template/request_log.py",
        "src/mlops_template/train.py",  # through evaluate.load_model
    } <= monitor
    assert "src/mlops_template/sources.py" in _closure("mlops_template.data")
    assert not any(p.endswith("cli.py") for p in monitor)
