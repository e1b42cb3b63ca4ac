"""A project cloned from the template before it used copier adopts updates with the one
command of docs/template.md ("Adopting"), run in a clone of an older commit of this repository
(main five commits before copier.yml arrived: the flat package layout of then)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.repo import ROOT, run
from tests.template.project import commit, conflicted, copier, rejects, template_copy

pytestmark = [pytest.mark.integration, pytest.mark.template, pytest.mark.timeout(1200)]

GUARD_FIX = 'TEMPLATE_FIX = "v2"\n'


def _old_commit() -> str:
    added = run(ROOT, "git", "log", "--format=%H", "--diff-filter=A", "--", "copier.yml")
    first = added.stdout.split()[-1]  # the commit that made this repository a template
    return run(ROOT, "git", "rev-parse", f"{first}~6").stdout.strip()


def test_an_old_clone_adopts_the_template_and_then_updates(tmp_path: Path) -> None:
    template = template_copy(tmp_path / "mlops-template")
    clone = tmp_path / "our-clone"
    run(tmp_path, "git", "clone", "-q", "--no-tags", str(ROOT), str(clone))
    run(clone, "git", "checkout", "-q", "-B", "main", _old_commit())
    assert (clone / "src/mlops_template/service.py").is_file()  # the old, flat layout
    (clone / "src/mlops_template/ours.py").write_text("OURS = 1\n")
    params = (clone / "params.yaml").read_text().replace("test_size: 0.2", "test_size: 0.3", 1)
    (clone / "params.yaml").write_text(params)
    commit(clone, "our work on the clone")

    copier(
        clone,
        "copy",
        "--trust",
        "--overwrite",
        "--defaults",
        "--data=adopt=true",
        "--data=project_name=Our clone",
        "--data=package_name=mlops_template",
        "--data=distribution_name=mlops-template",
        str(template),
        ".",
    )

    answers = yaml.safe_load((clone / ".copier-answers.yml").read_text())
    assert answers["adopt"] is True and answers["package_name"] == "mlops_template"
    assert (clone / "src/mlops_template/serving/service.py").is_file()
    assert not (clone / "src/mlops_template/service.py").exists()  # moved by the template: gone
    assert (clone / "src/mlops_template/ours.py").read_text() == "OURS = 1\n"  # ours: stays
    assert (clone / "params.yaml").read_text() == params
    commit(clone, "adopt the copier template")

    with (template / "src/mlops_template/serving/request_guard.py").open("a") as guard:
        guard.write(GUARD_FIX)
    commit(template, "v2: a fix", tag="v2.0.0")
    copier(clone, "update", "--trust", "--defaults", "--conflict", "inline")

    guard = (clone / "src/mlops_template/serving/request_guard.py").read_text()
    assert guard.endswith(GUARD_FIX)
    assert conflicted(clone) == [] and rejects(clone) == []
    assert yaml.safe_load((clone / ".copier-answers.yml").read_text())["_commit"] == "v2.0.0"
