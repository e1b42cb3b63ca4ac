"""`copier update` cases that need copier alone (no install): an overlapping edit shown as a
conflict, a renamed package folder pruned, and the template-update workflow's steps run
locally. The template's v1 and v2 are those of tests/template/test_update.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.repo import run
from tests.template.project import (
    MARKERS,
    commit,
    conflicted,
    copier,
    generate,
    project_env,
    rejects,
)
from tests.template.test_update import FIX, FIXED_LINE, V1, _edit, template

pytestmark = [pytest.mark.integration, pytest.mark.template, pytest.mark.timeout(1200)]
__all__ = ["template"]  # the module-scoped fixture, shared


def test_an_overlapping_edit_is_a_conflict_shown_inline(template: Path) -> None:
    project = generate(template, template.parent / "overlap", V1)
    _edit(
        project / "README.md",
        FIXED_LINE,
        "CI (`.ci/run`) runs the Quickstart like our on-call would",
    )
    commit(project, "our wording")

    copier(project, "update", "--trust", "--defaults", "--conflict", "inline")

    assert rejects(project) == []
    assert conflicted(project) == ["README.md"]
    readme = (project / "README.md").read_text()
    ours, theirs = readme.split(MARKERS[0], 1)[1].split(MARKERS[1], 1)[0].split("=======")
    assert "like our on-call would" in ours and "exactly as a newcomer would" in theirs
    # git knows: the file is unmerged until the user resolves it (docs/template.md)
    status = run(project, "git", "status", "--porcelain").stdout
    assert "UU README.md" in status or "AA README.md" in status, status


def test_a_renamed_package_leaves_no_old_folder(template: Path) -> None:
    project = generate(template, template.parent / "rename", V1)
    (project / "src/fraud_scoring/ours.py").write_text("OURS = 1\n")  # the user's own module
    commit(project, "our module")

    copier(project, "update", "--trust", "--defaults", "--data=package_name=fraud_model")

    assert (project / "src/fraud_model/serving/request_guard.py").is_file()
    assert not (project / "src/fraud_scoring/serving").exists()
    # the user's own file is never deleted: it stays, the only file left in the old folder
    leftover = sorted(p.relative_to(project).as_posix() for p in (project / "src").rglob("*.py"))
    assert [p for p in leftover if p.startswith("src/fraud_scoring/")] == [
        "src/fraud_scoring/ours.py"
    ]
    assert "fraud_model.cli:main" in (project / "pyproject.toml").read_text()
    assert not (project / "docs/old-note.md").exists()


# `gh` talks to GitHub, which no test can reach: a stand-in on PATH logs its argv.
FAKE_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$GH_CALLS"
"""


def _workflow_steps(project: Path) -> list[str]:
    workflow = yaml.safe_load((project / ".github/workflows/template-update.yml").read_text())
    steps = [s["run"] for job in workflow["jobs"].values() for s in job["steps"] if "run" in s]
    return [s for s in steps if s != "make install"]  # the venv exists


def _run_workflow(project: Path, tmp: Path) -> list[str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    calls = tmp / "gh.calls"
    calls.unlink(missing_ok=True)
    env = project_env() | {
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "GH_CALLS": str(calls),
        "GH_TOKEN": "stand-in",
    }
    for step in _workflow_steps(project):
        words = step.split()
        assert words[0] == "make"
        subprocess.run(
            [*words[:1], "-o", "install", "RUN=", *words[1:]],
            cwd=project,
            env=env,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return calls.read_text().splitlines() if calls.exists() else []


def test_the_template_update_workflow_opens_one_pull_request(template: Path, tmp_path: Path):
    project = generate(template, template.parent / "workflow", V1)
    origin = tmp_path / "origin.git"
    run(tmp_path, "git", "clone", "-q", "--bare", str(project), str(origin))
    run(project, "git", "remote", "add", "origin", str(origin))

    calls = _run_workflow(project, tmp_path)

    branch = "template-update/v2.0.0"
    assert calls == [
        "auth setup-git",
        f"pr create --base main --head {branch} --title template: update to v2.0.0 "
        f"--body-file {calls[-1].rsplit(' ', 1)[-1]}",
    ]
    pushed = run(origin, "git", "show", f"{branch}:README.md").stdout
    assert FIX in pushed
    # merged: the next run finds nothing newer and opens nothing
    run(project, "git", "switch", "-q", "main")
    run(project, "git", "merge", "-q", "--ff-only", branch)
    assert _run_workflow(project, tmp_path) == []
