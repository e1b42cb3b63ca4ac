"""`copier update` on a project a user has changed: a template v1 and a v2 "fix" tagged in a
throw-away copy of this repository, projects generated from v1, the user's commits, then the
update as a user (or the template-update workflow) runs it.

v2 changes files the user also touched (README.md: another paragraph; params.yaml and
contract.yaml, which stay the user's), files they did not (request_guard.py) and removes one
(docs/old-note.md). Only one project is installed (its own venv, its own tests and `make
repro`); the others need copier alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from tests.repo import run
from tests.template.project import commit, copier, generate, project_env, template_copy

pytestmark = pytest.mark.integration

USER_LINE = "- **A data source**: `sources.py` (every reader of user data goes through it)."
USER_EDIT = USER_LINE + " Ours: the nightly warehouse export."
FIXED_LINE = "CI (`.ci/run`) runs the Quickstart as a newcomer would"
FIX = "CI (`.ci/run`) runs the Quickstart exactly as a newcomer would"
GUARD = "src/mlops_template/serving/request_guard.py"
GUARD_FIX = 'TEMPLATE_FIX = "v2: a security fix in the request guard"\n'
V1 = "--vcs-ref=v1.0.0"
MARKERS = ("<<<<<<< before updating", ">>>>>>> after updating")
SMOKE = ["-p", "no:xdist", "-q", "-m", "smoke"]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{path.name}: {old!r} not found"
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1.0.0 (with docs/old-note.md) and v2.0.0 (the fix, the note removed)."""
    root = tmp_path_factory.mktemp("template") / "mlops-template"
    root.mkdir()
    template_copy(root, tag=None)
    (root / "docs/old-note.md").write_text("A page that v2 of the template removes.\n")
    commit(root, "v1", tag="v1.0.0")
    _edit(root / "README.md", FIXED_LINE, FIX)
    with (root / GUARD).open("a") as guard:
        guard.write("\n" + GUARD_FIX)
    _edit(root / "params.yaml", "# Every knob of the pipeline", "# v2: Every knob of the pipeline")
    _edit(root / "contract.yaml", "# The data contract", "# v2: The data contract")
    (root / "docs/old-note.md").unlink()
    commit(root, "v2: the fix", tag="v2.0.0")
    return root


def _conflicted(project: Path) -> list[str]:
    """Files with a conflict marker line, and files git holds unmerged."""
    tracked = run(project, "git", "ls-files", "-co", "--exclude-standard").stdout.split()
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


def _rejects(project: Path) -> list[Path]:
    return [p for p in project.rglob("*.rej") if ".venv" not in p.parts]


def test_update_keeps_the_users_edits_and_brings_the_fix(template: Path) -> None:
    project = generate(template, template.parent / "fraud-scoring", V1)
    env = project_env()
    make = ["make", "UV_COMPILE_BYTECODE=0"]
    subprocess.run([*make, "install"], cwd=project, env=env, check=True, capture_output=True)
    # the user's own data (a public table scikit-learn ships), via mlops init
    (project / "data/raw").mkdir(parents=True, exist_ok=True)
    table = load_breast_cancer(as_frame=True).frame
    table["target"] = table["target"].map({0: "malignant", 1: "benign"})
    table.to_csv(project / "data/raw/cells.csv", index=False)
    run(project, ".venv/bin/mlops", "init", "data/raw/cells.csv", "--target", "target", "--force")
    _edit(project / "params.yaml", "test_size: 0.2", "test_size: 0.25")
    _edit(project / "README.md", USER_LINE, USER_EDIT)
    commit(project, "our data, our split, our README")
    users = {n: (project / n).read_bytes() for n in ("params.yaml", "contract.yaml")}

    update = run(project, "make", "template-update")

    assert _rejects(project) == [] and _conflicted(project) == [], update.stderr
    readme = (project / "README.md").read_text()
    assert USER_EDIT in readme and FIX in readme
    assert GUARD_FIX in (project / "src/fraud_scoring/serving/request_guard.py").read_text()
    assert {n: (project / n).read_bytes() for n in users} == users  # the user's, untouched
    assert (project / "data/raw/cells.csv.dvc").is_file()
    assert not (project / "docs/old-note.md").exists()  # removed by v2: pruned
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v2.0.0"
    commit(project, "template: update to v2.0.0")

    run(project, *make, "repro", timeout=900)
    metrics = yaml.safe_load((project / "reports/metrics.json").read_text())
    assert metrics["roc_auc"] > 0.9  # trained on the user's cells, not on the demo
    run(project, ".venv/bin/pytest", *SMOKE, timeout=900)


def test_an_overlapping_edit_is_a_conflict_shown_inline(template: Path) -> None:
    project = generate(template, template.parent / "overlap", V1)
    _edit(
        project / "README.md",
        FIXED_LINE,
        "CI (`.ci/run`) runs the Quickstart like our on-call would",
    )
    commit(project, "our wording")

    copier(project, "update", "--trust", "--defaults", "--conflict", "inline")

    assert _rejects(project) == []
    assert _conflicted(project) == ["README.md"]
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
