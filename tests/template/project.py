"""Helpers for the template's own tests: a tagged throw-away copy of this repository as the
template, `copier copy` / `copier update` run as a user runs them, and a scan for our names.

The template copy holds the working tree's files (tracked and new, not ignored), so the tests
see uncommitted changes too; its versions are git tags made in the copy, never here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.repo import ROOT, env, run, working_files

COPIER = str(Path(sys.executable).parent / "copier")
# Our names: none may be left in a generated project where the user's name belongs.
OUR_NAMES = re.compile(r"mlops[_-]template|MlopsService")
# Where they stay on purpose: the answers file names the template's URL (`_src_path`).
NAMES_KEPT_IN = {".copier-answers.yml"}
MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")  # copier's inline conflicts
ANSWERS = {"project_name": "Fraud scoring", "package_name": "fraud_scoring"}


def template_copy(dest: Path, tag: str | None = "v1.0.0") -> Path:
    """This repository's files in a new git repo at ``dest``, committed and tagged ``tag``
    (None: left uncommitted, for the caller to add to)."""
    files = working_files()
    # a clone: the template's history comes along (adopting an old clone looks it up)
    run(dest.parent, "git", "clone", "-q", "--no-tags", str(ROOT), str(dest))
    run(dest, "git", "checkout", "-q", "-B", "main")
    run(dest, "git", "rm", "-rqf", ".")
    for rel in files:
        src = ROOT / rel
        if src.is_file() and not src.is_symlink():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    if tag:
        commit(dest, "template", tag=tag)
    return dest


def commit(repo: Path, message: str, tag: str | None = None) -> None:
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-q", "--allow-empty", "-m", message)
    if tag:
        run(repo, "git", "tag", tag)


def copier(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(cwd, COPIER, *args, check=check, timeout=300)


def generate(template: Path, dest: Path, *extra: str, **answers: object) -> Path:
    """`copier copy --trust --defaults` with ``answers`` as --data, then a first git commit."""
    data = [f"--data={key}={value}" for key, value in {**ANSWERS, **answers}.items()]
    copier(
        template.parent, "copy", "--trust", "--defaults", *data, *extra, str(template), str(dest)
    )
    run(dest, "git", "init", "-q", "-b", "main")
    commit(dest, "generated")
    return dest


def names_left(project: Path) -> list[str]:
    """``path:line: text`` for every mention of our names outside ``NAMES_KEPT_IN``, and every
    path that holds one."""
    found = []
    for path in sorted(project.rglob("*")):
        rel = path.relative_to(project)
        if rel.parts[0] in {".git", ".venv"}:
            continue
        if OUR_NAMES.search(rel.name):
            found.append(f"{rel}: path")
        if not path.is_file():
            continue
        if rel.as_posix() in NAMES_KEPT_IN:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if OUR_NAMES.search(line):
                found.append(f"{rel}:{number}: {line.strip()}")
    return found


def project_env() -> dict[str, str]:
    """For `make` in a generated project: no .pyc compile at install (minutes on 2 cores)."""
    return env() | {"UV_COMPILE_BYTECODE": "0"}


def conflicted(project: Path) -> list[str]:
    """Files with a conflict marker line, and files git holds unmerged."""
    tracked = working_files(project)
    marked = {
        rel
        for rel in tracked
        if (project / rel).is_file()
        and any(
            line in MARKERS for line in (project / rel).read_text(errors="replace").splitlines()
        )
    }
    unmerged = run(project, "git", "diff", "--name-only", "--diff-filter=U").stdout.split()
    return sorted(marked | set(unmerged))


def rejects(project: Path) -> list[Path]:
    return [p for p in project.rglob("*.rej") if ".venv" not in p.parts]
