"""`copier copy` of this repository: the user's names everywhere, the answers recorded, the
options honoured, bad names refused. No install here (tests/template/test_update.py installs
one generated project and runs its tests)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from tests.repo import ROOT
from tests.template.project import copier, generate, names_left, template_copy

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return template_copy(tmp_path_factory.mktemp("template") / "mlops-template")


@pytest.fixture(scope="module")
def demo(template: Path) -> Path:
    return generate(template, template.parent / "fraud-scoring")


@pytest.fixture(scope="module")
def bare(template: Path) -> Path:
    return generate(
        template,
        template.parent / "churn",
        project_name="Churn",
        package_name="churn_model",
        distribution_name="churn-model",
        include_demo="false",
        kubernetes="false",
        description="Who leaves next month.",
    )


@pytest.mark.parametrize("project", ["demo", "bare"])
def test_no_name_of_ours_is_left(project: str, request: pytest.FixtureRequest) -> None:
    root = request.getfixturevalue(project)
    assert names_left(root) == []


def test_the_users_names_are_used(demo: Path) -> None:
    assert (demo / "src/fraud_scoring/serving/service.py").is_file()
    assert not (demo / "src/mlops_template").exists()
    pyproject = tomllib.loads((demo / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "fraud-scoring"
    assert pyproject["project"]["scripts"]["mlops"] == "fraud_scoring.cli:main"
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "src/fraud_scoring"
    ]
    bento = yaml.safe_load((demo / "bentofile.yaml").read_text())
    assert bento["service"] == "fraud_scoring.serving.service:FraudScoringService"
    assert (
        "class FraudScoringService" in (demo / "src/fraud_scoring/serving/service.py").read_text()
    )
    params = yaml.safe_load((demo / "params.yaml").read_text())
    assert params["tracking"]["registered_model"] == "fraud-scoring-model"
    service = yaml.safe_load((demo / "deploy/k8s/base/service.yaml").read_text())
    assert service["metadata"]["name"] == "fraud-scoring"
    assert (demo / "README.md").read_text().startswith("# Fraud scoring\n")
    assert (
        "ghcr.io/local/fraud-scoring"
        in (demo / "deploy/k8s/overlays/single/kustomization.yaml").read_text()
    )


def test_everything_else_is_copied_byte_for_byte(demo: Path) -> None:
    """Workflows' `${{ }}` and the dashboard's braces are not Jinja to us."""
    for rel in (".github/workflows/pr.yml", "monitoring/grafana/dashboard.json", "uv.lock"):
        ours = (ROOT / rel).read_text()
        for old, new in (
            ("mlops_template", "fraud_scoring"),
            ("mlops-template", "fraud-scoring"),
            ("MlopsService", "FraudScoringService"),
        ):
            ours = ours.replace(old, new)
        assert (demo / rel).read_text() == ours, rel


def test_the_answers_are_recorded(demo: Path, template: Path) -> None:
    answers = yaml.safe_load((demo / ".copier-answers.yml").read_text())
    assert answers["_src_path"] == str(template)
    assert answers["_commit"] == "v1.0.0"
    assert answers["package_name"] == "fraud_scoring"
    assert answers["distribution_name"] == "fraud-scoring"
    assert answers["include_demo"] is True
    assert "service_class" not in answers  # computed, never asked


def test_what_dvc_repro_makes_is_not_copied(demo: Path) -> None:
    for rel in ("dvc.lock", "models/model.json", "reports/metrics.json", "reports/plots"):
        assert not (demo / rel).exists(), rel
    for rel in ("copier.yml", ".copier", "tests/template"):
        assert not (demo / rel).exists(), rel


def test_without_the_demo_the_project_starts_at_mlops_init(bare: Path) -> None:
    readme = (bare / "README.md").read_text()
    assert readme.startswith("# Churn\n\nWho leaves next month.")
    first_command = readme.split("```bash\n", 1)[1].splitlines()[0]
    assert first_command.startswith("make install"), first_command
    assert readme.index("mlops init") < readme.index("make repro")
    params = yaml.safe_load((bare / "params.yaml").read_text())
    assert params["data"]["source"] == "csv"
    # the tests' fixtures stay: they never run on the user's data
    assert (bare / "examples/card-transactions/params.yaml").is_file()


def test_without_kubernetes_no_manifests_and_no_links_to_them(bare: Path) -> None:
    assert not (bare / "deploy").exists()
    assert not (bare / "docs/deploy.md").exists()
    assert not (bare / "tests/integration/test_k8s.py").exists()
    for page in [bare / "README.md", *(bare / "docs").glob("*.md")]:
        assert "deploy.md)" not in page.read_text(), page.name  # no link to it


def test_without_rollout_no_canary_overlay(template: Path) -> None:
    project = generate(template, template.parent / "norollout", rollout="false")
    assert (project / "deploy/k8s/overlays/single").is_dir()
    assert not (project / "deploy/k8s/overlays/canary").exists()


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("package_name", "src", "would shadow"),
        ("package_name", "mlops_template", "template's own name"),
        ("package_name", "Fraud-Scoring", "Python identifier"),
        ("package_name", "3d", "Python identifier"),
        ("distribution_name", "Fraud_Scoring", "lower-case"),
        ("distribution_name", "mlops-template", "template's own name"),
    ],
)
def test_bad_names_are_refused(template: Path, tmp_path: Path, key: str, value: str, says: str):
    done = copier(
        tmp_path,
        "copy",
        "--trust",
        "--defaults",
        "--data=project_name=xyz",
        f"--data={key}={value}",
        str(template),
        str(tmp_path / "out"),
        check=False,
    )
    assert done.returncode != 0
    assert says in done.stdout + done.stderr
    assert not (tmp_path / "out" / "src").exists()
