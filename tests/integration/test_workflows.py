"""The GitHub workflows: static checks (zizmor, the workflow JSON schema, pinning, thin steps)
and a local run of the pull-request workflow's own `run:` steps, read from pr.yml, on a pull request
that makes the model worse (the pass path of the gate is in tests/integration/test_gate.py).

The local run uses a toy `evaluate` stage (metrics from one param) in front of the project's
real `gate` stage, so a regression can be staged in seconds; the real ML stages are covered by
tests/integration/test_pipeline.py. `make` runs with `-o install RUN=` (the tools of this venv,
no `uv sync` in the copy).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.repo import ROOT, env, make_repo, run

pytestmark = pytest.mark.integration

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
# Steps the local run leaves out: the venv exists already; `make test` is this test suite.
NOT_RUN_LOCALLY = {"make install", "make test"}


def load(path: Path) -> dict[Any, Any]:
    return yaml.safe_load(path.read_text())


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    return workflow.get("on") or workflow.get(True)  # YAML 1.1 reads a bare `on` as True


def test_workflows_exist():
    assert {p.name for p in WORKFLOWS} >= {"pr.yml", "main.yml"}


def test_zizmor_finds_nothing():
    done = run(ROOT, "zizmor", "--offline", "--strict-collection", *map(str, WORKFLOWS))
    assert "No findings" in done.stdout, done.stdout


def test_workflows_match_the_github_schema():
    schema = ["check-jsonschema", "--builtin-schema", "vendor.github-workflows"]
    run(ROOT, *schema, *map(str, WORKFLOWS))


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_pinned_and_thin(path: Path):
    workflow = load(path)
    assert "pull_request_target" not in triggers(workflow)
    assert workflow["permissions"] == {}, "top-level permissions must be empty"
    for name, job in workflow["jobs"].items():
        assert "permissions" in job, f"job {name} declares no permissions"
        for step in job["steps"]:
            if "uses" in step:
                assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
            if "run" in step:
                assert step["run"].startswith("make "), f"not a make target: {step['run']}"
                assert "${{" not in step["run"], "expressions go through env, not run:"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_python_of_python_version_is_on_path_before_install(path: Path):
    """The Makefile sets UV_PYTHON_DOWNLOADS=never and ubuntu-latest has only a newer Python on
    PATH: a job that runs `make install` must first put .python-version's Python on PATH."""
    wanted = (ROOT / ".python-version").read_text().strip()
    for name, job in load(path)["jobs"].items():
        steps = job["steps"]
        installs = [i for i, s in enumerate(steps) if s.get("run") == "make install"]
        if not installs:
            continue
        setup = [
            s for s in steps[: installs[0]] if s.get("uses", "").startswith("actions/setup-python@")
        ]
        assert setup, f"{path.name} job {name}: no actions/setup-python before make install"
        py = setup[0]["with"]
        assert py.get("python-version-file") == ".python-version" or (
            str(py.get("python-version")) == wanted
        ), py


def test_main_workflow_can_be_dispatched():
    """monitor.yml dispatches retraining with `gh workflow run main.yml`."""
    assert "workflow_dispatch" in triggers(load(ROOT / ".github/workflows/main.yml"))


# --------------------------------------------------------------------------- local PR run

TOY_EVALUATE = """\
import json, pathlib, yaml
q = yaml.safe_load(open("toy_params.yaml"))["quality"]
pathlib.Path("reports/plots").mkdir(parents=True, exist_ok=True)
metrics = {"roc_auc": q, "pr_auc": q / 2, "log_loss": round(1 - q, 6), "accuracy": q}
pathlib.Path("reports/metrics.json").write_text(json.dumps(metrics, indent=2))
rows = ["fpr,tpr", "0,0", f"0.1,{q}", "1,1"]
pathlib.Path("reports/plots/roc.csv").write_text("\\n".join(rows) + "\\n")
"""


def toy_pipeline(repo: Path, quality: float) -> None:
    """dvc.yaml: a toy evaluate stage, then the project's own gate stage, unchanged."""
    real = load(ROOT / "dvc.yaml")
    evaluate = {
        "cmd": "python toy_evaluate.py",
        "deps": ["toy_evaluate.py"],
        "params": [{"toy_params.yaml": ["quality"]}],
        "outs": [{"reports/plots": {"cache": False}}],
        "metrics": [{"reports/metrics.json": {"cache": False}}],
    }
    dvc = {
        "stages": {"evaluate": evaluate, "gate": real["stages"]["gate"]},
        "plots": [{"reports/plots/roc.csv": {"x": "fpr", "y": "tpr"}}],
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    (repo / "toy_evaluate.py").write_text(TOY_EVALUATE)
    set_quality(repo, quality)


def set_quality(repo: Path, quality: float) -> None:
    (repo / "toy_params.yaml").write_text(f"quality: {quality}\n")


def expression(text: str, context: Mapping[str, Any], failed: bool = False) -> Any:
    """Evaluate a GitHub Actions expression -- the subset our workflows use: contexts, string
    literals, ==, !=, !, &&, ||, contains, fromJSON and the status functions -- in Python.
    An unknown context is '' (as on GitHub, e.g. a secret that is not set)."""
    parts = re.split(r"('[^']*')", expression_body(text))
    for i in range(0, len(parts), 2):  # the parts outside string literals
        code = parts[i].replace("&&", " and ").replace("||", " or ")
        code = re.sub(r"!(?!=)", " not ", code)
        code = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", code))
        parts[i] = re.sub(r"[A-Za-z_][\w-]*(?:\.[\w*-]+)+", lambda m: f"_ctx({m[0]!r})", code)
    functions = {
        "_ctx": lambda name: context.get(name, ""),
        "success": lambda: not failed,
        "failure": lambda: failed,
        "always": lambda: True,
        "cancelled": lambda: False,
        "contains": lambda haystack, needle: needle in haystack,
        "fromJSON": json.loads,
    }
    # eval of our own workflow files' expressions, translated above, without builtins
    return eval("".join(parts), {"__builtins__": {}}, functions)


def substitute(value: Any, context: Mapping[str, Any]) -> str:
    """An `env:` value with its ${{ }} expressions replaced, as GitHub passes it (a string)."""

    def one(match: re.Match[str]) -> str:
        out = expression(match[1], context)
        return str(out).lower() if isinstance(out, bool) else str(out)

    return re.sub(r"\$\{\{(.*?)\}\}", one, str(value))


def step_runs(step: dict[str, Any], context: Mapping[str, Any], failed: bool) -> bool:
    """A step's `if:`; without a status function GitHub adds `success() &&`."""
    condition = str(step.get("if", "success()"))
    if not re.search(r"\b(success|failure|always|cancelled)\(\)", condition):
        condition = f"success() && ({expression_body(condition)})"
    return bool(expression(condition, context, failed))


def expression_body(text: str) -> str:
    text = text.strip()
    return text[3:-2] if text.startswith("${{") and text.endswith("}}") else text


def pr_context(labels: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "github.base_ref": "main",
        "github.event.action": "synchronize",
        "github.event.pull_request.labels.*.name": list(labels),
    }


def run_pr_workflow(
    repo: Path, summary: Path, labels: tuple[str, ...] = ()
) -> tuple[list[tuple[str, int]], bool]:
    """Run pr.yml's `run:` steps in order as GitHub would (each step's `if:`, the job's and the
    step's `env:` evaluated for a pull request with ``labels``). Returns (step, exit status)
    pairs and whether the job failed."""
    job = load(ROOT / ".github/workflows/pr.yml")["jobs"]["review"]
    context = pr_context(labels)
    job_env = {k: substitute(v, context) for k, v in job.get("env", {}).items()}
    results, failed = [], False
    for step in job["steps"]:
        command = step.get("run")
        if command is None or command in NOT_RUN_LOCALLY:
            if "id" in step:
                context[f"steps.{step['id']}.outcome"] = "success"
            continue
        if not step_runs(step, context, failed):
            if "id" in step:
                context[f"steps.{step['id']}.outcome"] = "skipped"
            continue
        variables = job_env | {k: substitute(v, context) for k, v in step.get("env", {}).items()}
        variables["GITHUB_STEP_SUMMARY"] = str(summary)
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())
        script = f'make() {{ command make -o install RUN= "$@"; }}\nexport {exports}\n{command}'
        done = subprocess.run(
            ["bash", "-c", script], cwd=repo, env=env(), capture_output=True, text=True
        )
        results.append((command, done.returncode))
        outcome = "success" if done.returncode == 0 else "failure"
        if "id" in step:
            context[f"steps.{step['id']}.outcome"] = outcome
        failed = failed or done.returncode != 0
    return results, failed


@pytest.mark.parametrize(("labels", "value"), [((), ""), (("accept-metric-regression",), "1")])
def test_override_variable_is_empty_without_the_label(labels: tuple[str, ...], value: str):
    """Empty (not "0") without the label, so `gate.override: true` in params.yaml still counts."""
    job = load(ROOT / ".github/workflows/pr.yml")["jobs"]["review"]
    assert substitute(job["env"]["MLOPS_GATE_OVERRIDE"], pr_context(labels)) == value


@pytest.fixture(scope="module")
def pr_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main: the toy pipeline reproduced and committed (the base branch's metrics);
    origin/main points at it, as after actions/checkout with fetch-depth 0."""
    repo = make_repo(tmp_path_factory.mktemp("pr"))
    toy_pipeline(repo, quality=0.90)
    run(repo, "dvc", "repro")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "main: toy pipeline reproduced")
    run(repo, "git", "update-ref", "refs/remotes/origin/main", "main")
    return repo


def test_pr_workflow_fails_on_a_regression_and_still_reports(pr_repo: Path, tmp_path: Path):
    run(pr_repo, "git", "checkout", "-qf", "-B", "worse", "main")
    set_quality(pr_repo, 0.80)
    run(pr_repo, "git", "commit", "-qam", "worse model")
    summary = tmp_path / "summary.md"
    steps, failed = run_pr_workflow(pr_repo, summary)
    assert failed
    assert [s for s, _ in steps] == [
        "make dvc-pull", "make repro", 'make gate BASELINE="origin/$BASE_REF"',
        "make pr-report", 'make plots-diff BASELINE="origin/$BASE_REF"',
    ]  # fmt: skip
    status = dict(steps)
    # the gate stage inside `dvc repro` (baseline HEAD = main's metrics) stops the pipeline...
    assert status["make repro"] != 0
    # ...the gate against the base branch fails the check, and the report is still published
    assert status['make gate BASELINE="origin/$BASE_REF"'] != 0
    assert status["make pr-report"] == 0
    text = summary.read_text()
    assert "❌ Metric gate failed" in text
    roc = next(line for line in text.splitlines() if line.startswith("| roc_auc |"))
    assert "-0.1000" in roc and "❌ **fail**" in roc
    assert "Baseline: `origin/main`" in text
    assert status['make plots-diff BASELINE="origin/$BASE_REF"'] == 0
    assert (pr_repo / "reports/plots-diff/index.html").stat().st_size > 0  # the artifact
    gate = json.loads((pr_repo / "reports/gate.json").read_text())
    assert gate["baseline"]["ref"] == "origin/main" and "roc_auc" in gate["failed"]


def test_gate_stage_runs_in_a_dvc_exp_temp_workspace(pr_repo: Path):
    """`dvc exp run --temp` runs in a temporary git copy: the gate still finds its baseline."""
    run(pr_repo, "git", "checkout", "-qf", "main")
    out = run(pr_repo, "dvc", "exp", "run", "--temp", "-S", "toy_params.yaml:quality=0.5",
              check=False)  # fmt: skip
    assert out.returncode != 0
    assert "| roc_auc | 0.9000 | 0.5000 | -0.4000 |" in out.stdout
    assert "mlops stage gate, exited with 5" in out.stderr
