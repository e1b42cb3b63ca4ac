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
from pathlib import Path

import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from tests.repo import run
from tests.template.project import (
    commit,
    conflicted,
    generate,
    project_env,
    rejects,
    template_copy,
)

# make install, mlops init, the update, make repro and tests: minutes on a loaded 2-core machine
pytestmark = [pytest.mark.integration, pytest.mark.template, pytest.mark.timeout(1800)]

USER_LINE = "- **A data source**: `sources.py` (every reader of user data goes through it)."
USER_EDIT = USER_LINE + " Ours: the nightly warehouse export."
FIXED_LINE = "CI (`.ci/run`) runs the Quickstart as a newcomer would"
FIX = "CI (`.ci/run`) runs the Quickstart exactly as a newcomer would"
GUARD = "src/mlops_template/serving/request_guard.py"
GUARD_FIX = 'TEMPLATE_FIX = "v2: a security fix in the request guard"\n'
V1 = "--vcs-ref=v1.0.0"
# the smoke tests that read what an update changes (dvc.yaml, config.py); .ci/template-check.sh
# runs them all in fresh projects
SMOKE = [
    "-p",
    "no:xdist",
    "-q",
    "-m",
    "smoke",
    "tests/unit/test_stage_deps.py",
    "tests/unit/test_config.py",
]


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

    assert rejects(project) == [] and conflicted(project) == [], update.stderr
    readme = (project / "README.md").read_text()
    assert USER_EDIT in readme and FIX in readme
    assert GUARD_FIX in (project / "src/fraud_scoring/serving/request_guard.py").read_text()
    assert {n: (project / n).read_bytes() for n in users} == users  # the user's, untouched
    assert (project / "data/raw/cells.csv.dvc").is_file()
    assert not (project / "docs/old-note.md").exists()  # removed by v2: pruned
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["_commit"] == "v2.0.0"
    commit(project, "template: update to v2.0.0")

    run(project, *make, "repro", timeout=1500)  # 2-3 min on a quiet 2-core machine
    metrics = yaml.safe_load((project / "reports/metrics.json").read_text())
    assert metrics["roc_auc"] > 0.9  # trained on the user's cells, not on the demo
    run(project, ".venv/bin/pytest", *SMOKE, timeout=900)
