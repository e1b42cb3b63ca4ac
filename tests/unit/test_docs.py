"""README.md and docs/ stay short, true and runnable as written (in the activated venv, with no
uv on PATH): links resolve, every command names a tool of the venv, a make target or an
`mlops` subcommand that exists. docs/monitoring.md's demo is also run for real
(tests/integration/test_monitor.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_template.cli import build_parser

# a generated project's quick check (the template's CI runs these: docs/template.md)
pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
VENV_BIN = Path(sys.executable).parent
SHELL_WORDS = {"source", "cp", "curl", "export", "kubectl", "git", "docker", "echo", "cd"}


def _commands(page: Path) -> list[str]:
    """Command lines of the page's ```bash blocks (comments and continuation lines dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", page.read_text(), re.S)
    lines = [line.split(" #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith(("#", "$", "-", "|"))]


def _make_targets() -> set[str]:
    out = subprocess.run(
        ["make", "-pRrq", "-f", "Makefile", ":"], cwd=ROOT, capture_output=True, text=True
    ).stdout
    return set(re.findall(r"^([a-zA-Z][\w-]*):", out, re.M))


def test_readme_fits_on_a_screen_or_few() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_name_real_tools_targets_and_subcommands(page: Path) -> None:
    targets = _make_targets()
    subcommands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    for line in _commands(page):
        assert "uv run" not in line, f"{page.name}: {line!r} (commands run in the activated venv)"
        for command in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
            words = [w for w in command.split() if "=" not in w or w.startswith("-")]
            if not words or words[0] in SHELL_WORDS:
                continue
            tool = words[0]
            if tool == "make":
                named = [w for w in words[1:] if not w.startswith("-")]
                assert set(named) <= targets, f"{page.name}: {line!r}: no such make target"
            elif tool == "mlops":
                sub = next((w for w in words[1:] if not w.startswith("-")), None)
                assert sub is None or sub in subcommands, f"{page.name}: {line!r}: no mlops {sub}"
            else:
                assert (VENV_BIN / tool).exists(), f"{page.name}: {line!r}: {tool} not in .venv"
