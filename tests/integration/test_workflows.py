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
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.repo import ROOT, TELEMETRY, env, make_repo, run

pytestmark = pytest.mark.integration

WORKFLOWS = sorted((ROOT / ".github/workflows").glob("*.yml"))
# Steps the local run leaves out: the venv exists already; `make test` is this test suite.
NOT_RUN_LOCALLY = {"make install", "make test"}
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13")
GATE = 'make gate BASELINE="origin/$BASE_REF"'
PLOTS = 'make plots-diff BASELINE="origin/$BASE_REF"'


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


@pytest.mark.parametrize("name", ["pr.yml", "main.yml", "monitor.yml", "template-update.yml"])
def test_a_supported_python_is_on_path_before_install(name: str):
    """The Makefile builds the venv from python3 on PATH and forbids uv's downloads; the
    runner's own Python may be one requires-python refuses: every job that runs
    `make install` first sets up a Python that pyproject.toml admits."""
    path = ROOT / ".github/workflows" / name
    for job_name, job in load(path)["jobs"].items():
        steps = job["steps"]
        installs = [i for i, s in enumerate(steps) if s.get("run") == "make install"]
        if not installs:
            continue
        setup = [
            s for s in steps[: installs[0]] if s.get("uses", "").startswith("actions/setup-python@")
        ]
        assert setup, f"{path.name} job {job_name}: no actions/setup-python before make install"
        wanted = str(setup[0]["with"]["python-version"])
        versions = job.get("strategy", {}).get("matrix", {}).get("python", [wanted])
        assert versions and all(v in SUPPORTED_PYTHONS for v in versions), versions


def test_pull_requests_check_the_oldest_and_newest_python_and_gate_once():
    jobs = load(ROOT / ".github/workflows/pr.yml")["jobs"]
    assert jobs["checks"]["strategy"]["matrix"]["python"] == ["3.11", "3.13"]
    runs = [s.get("run") for s in jobs["checks"]["steps"]]
    assert {"make lint", "make typecheck", "make test"} <= set(runs)
    assert "strategy" not in jobs["review"]
    assert "make test" not in [s.get("run") for s in jobs["review"]["steps"]]


def test_requires_python_admits_what_ci_checks():
    with open(ROOT / "pyproject.toml", "rb") as fh:
        requires = tomllib.load(fh)["project"]["requires-python"]
    assert requires == ">=3.11,<3.14"
    assert not (ROOT / ".python-version").exists(), "a pin fails on a machine without it"


def test_main_workflow_can_be_dispatched_for_main_only():
    """monitor.yml dispatches retraining with `gh workflow run main.yml`; a dispatch naming
    another branch must not release it."""
    workflow = load(ROOT / ".github/workflows/main.yml")
    assert "workflow_dispatch" in triggers(workflow)
    condition = workflow["jobs"]["release"]["if"]
    assert expression(condition, {"github.ref": "refs/heads/main"}) is True
    assert expression(condition, {"github.ref": "refs/heads/feature"}) is False


def test_release_builds_the_bento_once_through_dvc():
    """`make repro` runs the package stage; a second build outside DVC would leave
    reports/package.json out of step with dvc.lock."""
    runs = [
        s.get("run") for s in load(ROOT / ".github/workflows/main.yml")["jobs"]["release"]["steps"]
    ]
    assert "make repro" in runs and "make bento" not in runs
    recipe = run(
        ROOT, "make", "--no-print-directory", "-n", "bento", "-o", "install", "RUN="
    ).stdout
    assert recipe.split() == ["dvc", "repro", "package"]


# --------------------------------------------------------------------------- local PR run

TOY_EVALUATE = """\
import json, pathlib, yaml
q = yaml.safe_load(open("toy_params.yaml"))["quality"]
pathlib.Path("reports/plots").mkdir(parents=True, exist_ok=True)
metrics = {"roc_auc": q, "pr_auc": q / 2, "log_loss": round(1 - q, 6), "accuracy": q}
pathlib.Path("reports/metrics.json").write_text(json.dumps(metrics, indent=2))
dataset = {"contract": {"name": "toy", "version": 1}, "target": "y", "task": "binary"}
pathlib.Path("reports/dataset.json").write_text(json.dumps(dataset))
rows = ["fpr,tpr", "0,0", f"0.1,{q}", "1,1"]
pathlib.Path("reports/plots/roc.csv").write_text("\\n".join(rows) + "\\n")
prior = {"prior": {"metrics": {"roc_auc": 0.5, "log_loss": 0.99}}, "reference": {"skipped": "toy"}}
pathlib.Path("reports/baselines.json").write_text(json.dumps(prior))
"""


TOY_PACKAGE = (
    'python -c "import pathlib, time; '
    "pathlib.Path('reports/package.json').write_text(str(time.time_ns()))\""
)


def toy_pipeline(repo: Path, quality: float) -> None:
    """dvc.yaml: a toy evaluate stage, the project's own gate stage, unchanged, and a toy
    package stage depending on the gate as the real one does."""
    real = load(ROOT / "dvc.yaml")
    evaluate = {
        "cmd": "python toy_evaluate.py",
        "deps": ["toy_evaluate.py"],
        "params": [{"toy_params.yaml": ["quality"]}],
        "outs": [
            {"reports/plots": {"cache": False}},
            {"reports/dataset.json": {"cache": False}},
            {"reports/baselines.json": {"cache": False}},
        ],
        "metrics": [{"reports/metrics.json": {"cache": False}}],
    }
    gate_deps = [d for d in real["stages"]["package"]["deps"] if d.startswith("reports/gate")]
    package = {  # the real package stage's link to the gate; a toy "Bento": a build stamp
        "cmd": TOY_PACKAGE,
        "deps": ["reports/metrics.json", *gate_deps],
        "outs": [{"reports/package.json": {"cache": False}}],
    }
    dvc = {
        "stages": {"evaluate": evaluate, "gate": real["stages"]["gate"], "package": package},
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
        "format": lambda template, *args: template.format(*args),
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
    # the metrics are reproduced, the gate against the base branch fails the check, packaging
    # (`make repro`) is skipped, and the report is still published
    assert steps == [
        ("make dvc-pull", 0),
        ("make repro-evaluate", 0),
        (GATE, 2),
        ("make pr-report", 0),
        (PLOTS, 0),
    ]
    text = summary.read_text()
    assert "❌ Metric gate failed" in text
    roc = next(line for line in text.splitlines() if line.startswith("| roc_auc |"))
    assert "-0.1000" in roc and "❌ **fail**" in roc
    assert "Baseline: `origin/main`" in text
    assert (pr_repo / "reports/plots-diff/index.html").stat().st_size > 0  # the artifact
    gate = json.loads((pr_repo / "reports/gate.json").read_text())
    assert gate["baseline"]["ref"] == "origin/main" and "roc_auc" in gate["failed"]


def test_pr_workflow_never_publishes_a_stale_report(pr_repo: Path, tmp_path: Path):
    """The pipeline breaks before the metrics: the gate does not run on the checked-out
    metrics, and a report left in the workspace is not published; a "not run" one is."""
    run(pr_repo, "git", "checkout", "-qf", "-B", "broken", "main")
    (pr_repo / "toy_params.yaml").write_text("quality: broken\n")  # evaluate fails on it
    run(pr_repo, "git", "commit", "-qam", "broken pipeline")
    (pr_repo / "reports/gate.md").write_text(
        "<!-- mlops-gate-report -->\n### ✅ Metric gate passed\n"
    )
    summary = tmp_path / "summary.md"
    steps, failed = run_pr_workflow(pr_repo, summary)
    assert failed
    assert steps == [("make dvc-pull", 0), ("make repro-evaluate", 2), ("make pr-report", 0)]
    text = summary.read_text()
    assert text.startswith("<!-- mlops-gate-report -->\n### ⚠️ Metric review not run")
    assert "`make repro-evaluate`: failure" in text and "passed" not in text


@pytest.mark.parametrize(
    ("action", "label", "runs"),
    [
        ("synchronize", "", True),
        ("labeled", "accept-metric-regression", True),
        ("unlabeled", "accept-metric-regression", True),
        ("labeled", "documentation", False),
        ("unlabeled", "documentation", False),
    ],
)
def test_only_the_override_label_reruns_the_review(action: str, label: str, runs: bool):
    """Another label's run is skipped and sits in a concurrency group of its own, so it does
    not cancel a review in progress."""
    workflow = load(ROOT / ".github/workflows/pr.yml")
    context = pr_context() | {
        "github.event.action": action,
        "github.event.label.name": label,
        "github.event.pull_request.number": 7,
        "github.run_id": 123,
    }
    assert bool(expression(workflow["jobs"]["review"]["if"], context)) is runs
    group = substitute(workflow["concurrency"]["group"], context)
    assert (group == "pr-7") is runs and group.startswith("pr-7")


def test_repro_reruns_only_the_gate_and_never_repackages(pr_repo: Path):
    """The gate always runs (its baseline is no DVC dep), but a new commit -- which changes
    gate.json's baseline -- neither rebuilds the package nor changes dvc.lock: the working
    tree stays clean."""
    run(pr_repo, "git", "checkout", "-qf", "main")
    run(pr_repo, "dvc", "repro")
    stamp = (pr_repo / "reports/package.json").read_text()
    (pr_repo / "NOTES.md").write_text("an unrelated change\n")
    run(pr_repo, "git", "add", "-A")
    run(pr_repo, "git", "commit", "-qm", "unrelated commit: HEAD moves")
    out = run(pr_repo, "dvc", "repro").stdout
    assert "Running stage 'gate'" in out
    assert "Running stage 'evaluate'" not in out and "Running stage 'package'" not in out
    assert (pr_repo / "reports/package.json").read_text() == stamp
    head = run(pr_repo, "git", "rev-parse", "HEAD").stdout.strip()
    assert json.loads((pr_repo / "reports/gate.json").read_text())["baseline"]["commit"] == head
    assert run(pr_repo, "git", "status", "--porcelain").stdout == ""  # dvc.lock unchanged
    again = run(pr_repo, "dvc", "repro")  # nothing changed: the gate repeats its decision
    assert "inputs unchanged" in again.stderr and "Running stage 'package'" not in again.stdout
    assert run(pr_repo, "git", "status", "--porcelain").stdout == ""


def test_failing_gate_stops_packaging(pr_repo: Path):
    run(pr_repo, "git", "checkout", "-qf", "-B", "stops", "main")
    set_quality(pr_repo, 0.5)
    stamp = (pr_repo / "reports/package.json").read_text()
    out = run(pr_repo, "dvc", "repro", check=False)
    assert out.returncode != 0 and "Running stage 'package'" not in out.stdout
    assert not (pr_repo / "reports/gate_ok.json").exists()
    assert (pr_repo / "reports/package.json").read_text() == stamp
    # the override (pr.yml sets it from the label) lets the same regression through to package
    accepted = subprocess.run(
        ["dvc", "repro"],
        cwd=pr_repo,
        env=env() | {"MLOPS_GATE_OVERRIDE": "1"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "Running stage 'package'" in accepted.stdout
    assert (pr_repo / "reports/package.json").read_text() != stamp


def test_gate_stage_runs_in_a_dvc_exp_temp_workspace(pr_repo: Path):
    """`dvc exp run --temp` runs in a temporary git copy: the gate still finds its baseline."""
    run(pr_repo, "git", "checkout", "-qf", "main")
    out = run(
        pr_repo, "dvc", "exp", "run", "--temp", "-S", "toy_params.yaml:quality=0.5", check=False
    )
    assert out.returncode != 0
    assert "| roc_auc | 0.9000 | 0.5000 | -0.4000 |" in out.stdout
    assert "mlops stage gate, exited with 5" in out.stderr


# --------------------------------------------------------------------------- sticky comment

FAKE_GH = """#!/usr/bin/env bash
# A recording stand-in for the GitHub CLI (GitHub cannot be reached from the tests): lists the
# comment id in $STATE/comment_id, POST creates comment 42, PATCH edits it; every call is logged.
echo "$*" >>"$STATE/calls"
case " $* " in
  *" --method POST "*) echo 42 >"$STATE/comment_id" ;;
  *" --method PATCH "*) ;;
  *) [ -z "${FAIL_LIST:-}" ] || exit 1; cat "$STATE/comment_id" 2>/dev/null || true ;;
esac
"""


def pr_report(
    tmp_path: Path, report: Path, args: list[str] | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "bin").mkdir(exist_ok=True)
    gh = tmp_path / "bin/gh"
    gh.write_text(FAKE_GH)
    gh.chmod(0o755)
    variables = env() | {
        "PATH": f"{tmp_path / 'bin'}:{env()['PATH']}",
        "STATE": str(tmp_path),
        "PR_NUMBER": "7",
        "GH_TOKEN": "token",
        "GITHUB_REPOSITORY": "acme/model",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    return subprocess.run(
        args or [str(ROOT / ".ci/pr-report.sh"), str(report)],
        env=variables | extra,
        capture_output=True,
        text=True,
        check=True,
    )


def test_sticky_comment_is_posted_once_then_edited(tmp_path: Path):
    report = tmp_path / "gate.md"
    report.write_text("<!-- mlops-gate-report -->\n### ✅ Metric gate passed\n")
    assert "commented on pull request 7" in pr_report(tmp_path, report).stdout
    assert "updated comment 42" in pr_report(tmp_path, report).stdout
    calls = (tmp_path / "calls").read_text().splitlines()
    assert [c.split()[:3] for c in calls] == [
        ["api", "--paginate", "repos/acme/model/issues/7/comments"],
        ["api", "--method", "POST"],
        ["api", "--paginate", "repos/acme/model/issues/7/comments"],
        ["api", "--method", "PATCH"],
    ]
    assert calls[3].split()[3] == "repos/acme/model/issues/comments/42"


def test_failed_comment_lookup_posts_no_second_comment(tmp_path: Path):
    report = tmp_path / "gate.md"
    report.write_text("<!-- mlops-gate-report -->\n### ✅ Metric gate passed\n")
    done = pr_report(tmp_path, report, FAIL_LIST="1")
    assert "::warning title=Gate report comment skipped::" in done.stdout
    assert [c.split()[1] for c in (tmp_path / "calls").read_text().splitlines()] == ["--paginate"]
    assert "✅ Metric gate passed" in (tmp_path / "summary.md").read_text()  # summary still has it


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ({"GATE_OUTCOME": "success", "TESTS_OUTCOME": "failure"}, "- ⚠️ the checks (`make lint`"),
        ({"GATE_OUTCOME": "failure", "REPRO_OUTCOME": "skipped"}, "✅ Metric gate passed"),
        (
            {"GATE_OUTCOME": "skipped", "METRICS_OUTCOME": "failure"},
            "`make repro-evaluate`: failure",
        ),
        ({"GATE_OUTCOME": "cancelled"}, "### ⚠️ Metric review not run"),
    ],
)
def test_report_follows_the_step_outcomes(tmp_path: Path, outcomes: dict[str, str], expected: str):
    report = tmp_path / "gate.md"
    report.write_text("<!-- mlops-gate-report -->\n### ✅ Metric gate passed\n")
    pr_report(tmp_path, report, PR_NUMBER="", **outcomes)
    text = (tmp_path / "summary.md").read_text()
    assert text.startswith("<!-- mlops-gate-report -->\n") and expected in text
    assert ("Metric review not run" in text) == (
        outcomes["GATE_OUTCOME"] not in ("success", "failure")
    )


def test_gate_error_without_a_report_is_reported_as_not_run(tmp_path: Path):
    pr_report(tmp_path, tmp_path / "missing.md", PR_NUMBER="", GATE_OUTCOME="failure")
    assert "the gate step failed before writing a report" in (tmp_path / "summary.md").read_text()


def test_every_make_target_runs_with_telemetry_off():
    """telemetry.env is the one list; the Makefile exports it to every recipe, and workflow
    steps are make targets (test_least_privilege_pinned_and_thin)."""
    names = " ".join(f"$${k}" for k in TELEMETRY)
    bare = {k: v for k, v in env().items() if k not in TELEMETRY}
    shown = subprocess.run(
        ["make", "-s", "--no-print-directory", "--eval", f"show:\n\t@echo {names}", "show"],
        cwd=ROOT,
        env=bare,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert shown == list(TELEMETRY.values()) and len(shown) == 4


def test_dependencies_are_audited_and_kept_up_to_date():
    checks = load(ROOT / ".github/workflows/pr.yml")["jobs"]["checks"]
    assert "make audit" in [s.get("run") for s in checks["steps"]]
    run(ROOT, "check-jsonschema", "--builtin-schema", "vendor.dependabot", ".github/dependabot.yml")
    ecosystems = {u["package-ecosystem"] for u in load(ROOT / ".github/dependabot.yml")["updates"]}
    assert ecosystems == {"github-actions", "uv"}
