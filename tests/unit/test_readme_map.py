"""README's "Where things are" map names every module and sub-package of src/ exactly once,
under the folder it lives in (a newcomer's map that cannot go stale)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "src/mlops_template/"
NAME = re.compile(r"(?<![\w./])([A-Za-z_]\w*(?:\.py|/))(?![\w*]|\.\w)")


def map_block(readme: str) -> list[str]:
    section = readme.split("## Where things are", 1)[1]
    return section.split("```", 2)[1].splitlines()


def named(lines: list[str]) -> list[str]:
    """Every ``x.py`` / ``x/`` written in the package's part of the map, resolved against the
    folders its indentation puts it in: a folder line opens a folder for the deeper lines
    below it (and for the other names on its own line)."""
    start = next(i for i, line in enumerate(lines) if line.strip() == PACKAGE)
    base = len(lines[start]) - len(lines[start].lstrip())
    stack: list[tuple[int, str]] = [(base, PACKAGE)]
    out: list[str] = []
    for line in lines[start + 1 :]:
        indent = len(line) - len(line.lstrip())
        if line.strip() and indent <= base:
            break
        while len(stack) > 1 and stack[-1][0] >= indent:
            stack.pop()
        names = NAME.findall(line)
        first = line.split()[0] if line.strip() else ""
        folder = stack[-1][1]
        if first.endswith("/") and names and names[0] == first:
            folder += first
            out.append(folder)
            stack.append((indent, folder))
            names = names[1:]
        out += [folder + name for name in names]
    return out


def modules() -> set[str]:
    """Every module (``__init__.py`` aside: its package stands for it) and sub-package."""
    src = ROOT / PACKAGE
    files = {
        f"{PACKAGE}{p.relative_to(src).as_posix()}"
        for p in src.rglob("*.py")
        if p.name != "__init__.py"
    }
    packages = {
        f"{PACKAGE}{p.parent.relative_to(src).as_posix()}/"
        for p in src.rglob("__init__.py")
        if p.parent != src
    }
    return files | packages


def test_the_readme_map_names_every_module_once_in_its_folder() -> None:
    found = named(map_block((ROOT / "README.md").read_text()))
    twice = sorted({n for n in found if found.count(n) > 1})
    assert not twice, f"README map names these more than once: {twice}"
    missing, stale = sorted(modules() - set(found)), sorted(set(found) - modules())
    assert not missing, f"README map: add {missing}"
    assert not stale, f"README map names what src/ does not have: {stale}"


def test_the_reading_follows_folders() -> None:
    lines = [
        PACKAGE,
        "  a.py     one; b.py two",
        "  pkg/     c.py, d.py: its modules",
        "    e.py   under pkg",
        "  f.py     back at the top (not dvc.yaml, not serving/** nor x.py.bak)",
        "tests/",
    ]
    assert named(lines) == [
        f"{PACKAGE}a.py",
        f"{PACKAGE}b.py",
        f"{PACKAGE}pkg/",
        f"{PACKAGE}pkg/c.py",
        f"{PACKAGE}pkg/d.py",
        f"{PACKAGE}pkg/e.py",
        f"{PACKAGE}f.py",
    ]
