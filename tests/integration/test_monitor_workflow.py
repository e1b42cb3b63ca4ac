"""The monitor workflow: zizmor, the GitHub workflow schema, least privilege, pinned actions,
thin `make` steps; and the alert script's decisions that need no GitHub (real bash)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.repo import DEMO_PARAMS, ROOT, env, run

pytestmark = pytest.mark.integration
WORKFLOW = ROOT / ".github/workflows/monitor.yml"
SCRIPT = ROOT / ".ci/monitor-alert.sh"


def test_zizmor_finds_nothing() -> None:
    done = run(ROOT, "zizmor", "--offline", "--strict-collection", str(WORKFLOW))
    assert "No findings" in done.stdout, done.stdout


def test_matches_the_github_workflow_schema() -> None:
    run(ROOT, "check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW))


def test_scheduled_manual_least_privilege_pinned_thin() -> None:
    workflow: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    on = workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` as True
    assert set(on) == {"schedule", "workflow_dispatch"}
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["monitor"]
    assert job["permissions"] == {"contents": "read", "issues": "write", "actions": "write"}
    steps = job["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    assert runs == [
        "make install",
        "make dvc-pull",
        "make monitor-preflight",
        "make monitor",
        "make monitor-alert",
    ]
    assert all("${{" not in r for r in runs)
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "reports/monitoring/"
    targets = (ROOT / "Makefile").read_text()
    for target in ("monitor", "monitor-alert", "monitor-preflight"):
        assert re.search(rf"^{target}:", targets, re.M), target


def _steps(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s.get("id") or s["name"]: s for s in workflow["jobs"]["monitor"]["steps"]}


def test_monitors_the_pulled_deployed_model_and_skips_when_nothing_to_measure() -> None:
    workflow: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    steps = list(workflow["jobs"]["monitor"]["steps"])
    runs = [s.get("run") for s in steps]
    pull = steps[runs.index("make dvc-pull")]
    assert set(pull["env"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert runs.index("make dvc-pull") < runs.index("make monitor-preflight")
    by_id = _steps(workflow)
    ready = "steps.preflight.outputs.ready == 'true'"
    assert by_id["monitor"]["if"] == ready
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert ready in upload["if"]
    # `make monitor` must not retrain: it monitors the pulled model as it is
    recipe = re.search(r"^monitor:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe is not None and "dvc repro" not in recipe[1] and "mlops monitor" in recipe[1]


def test_retrain_dispatch_target_accepts_workflow_dispatch() -> None:
    """`gh workflow run` answers 422 unless the target workflow has `on: workflow_dispatch`."""
    workflow: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    alert = next(
        s for s in workflow["jobs"]["monitor"]["steps"] if s.get("run") == "make monitor-alert"
    )
    default = re.fullmatch(
        r"\$\{\{ vars\.MONITOR_RETRAIN_WORKFLOW \|\| '([\w.-]+)' \}\}",
        alert["env"]["RETRAIN_WORKFLOW"],
    )
    assert default is not None, alert["env"]["RETRAIN_WORKFLOW"]
    target: dict[Any, Any] = yaml.safe_load((WORKFLOW.parent / default[1]).read_text())
    on = target.get("on") or target[True]
    assert "workflow_dispatch" in on, f"{default[1]} cannot be dispatched"
    # A manual run's dispatch_retrain input wins over the repository variable, also when false
    # (`false || vars.X` would fall through to the variable).
    dispatch = alert["env"]["DISPATCH_RETRAIN"]
    assert dispatch.startswith(
        "${{ github.event_name == 'workflow_dispatch' && format('{0}', inputs.dispatch_retrain) || "
    )


PREFLIGHT = ROOT / ".ci/monitor-preflight.sh"


def _preflight(tmp_path: Path, *command: str) -> tuple[subprocess.CompletedProcess[str], str, str]:
    out, summary = tmp_path / "output", tmp_path / "summary"
    out.unlink(missing_ok=True)
    summary.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", str(PREFLIGHT), *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env() | {"GITHUB_OUTPUT": str(out), "GITHUB_STEP_SUMMARY": str(summary)},
        timeout=60,
    )
    read = lambda p: p.read_text() if p.exists() else ""  # noqa: E731
    return done, read(out), read(summary)


def test_preflight_skips_a_fresh_checkout_with_a_notice(tmp_path: Path) -> None:
    """The real `mlops monitor --preflight` where nothing was pulled and the default request
    log does not exist (a scheduled run of the untouched template): green, with a notice."""
    shutil.copy2(DEMO_PARAMS, tmp_path / "params.yaml")
    done, output, summary = _preflight(tmp_path, "mlops", "monitor", "--preflight")
    assert done.returncode == 0, done.stderr
    assert output == "ready=false\n"
    assert "::warning title=Monitoring skipped::" in done.stdout
    assert "## Monitoring skipped" in summary
    assert "models/model.skops" in summary and "request_log:logs/requests.db" in summary


def test_preflight_ready_and_real_failures(tmp_path: Path) -> None:
    done, output, summary = _preflight(tmp_path, "true")
    assert done.returncode == 0 and output == "ready=true\n" and summary == ""
    done, output, _ = _preflight(
        tmp_path, "bash", "-c", "echo 'monitor.x: unknown key' >&2; exit 2"
    )
    assert done.returncode == 2 and "monitor.x: unknown key" in done.stderr and output == ""


# `gh` talks to GitHub, which no test can reach: a recording stand-in on PATH logs its argv
# (one line per call) and answers `gh issue list` with the open issue's number, if any.
FAKE_GH = """#!/usr/bin/env bash
printf '%s\\n' "$*" >>"$GH_CALLS"
if [[ $1 == issue && $2 == list ]]; then printf '%s\\n' "${OPEN_ISSUE:-}"; fi
"""


def _alert(
    tmp_path: Path, summary: dict[str, Any] | None, **env: str
) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "reports/monitoring"
    out.mkdir(parents=True)
    if summary is not None:
        (out / "summary.json").write_text(json.dumps(summary))
        (out / "summary.md").write_text("## Monitoring\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gh").write_text(FAKE_GH)
    (bin_dir / "gh").chmod(0o755)
    # python3: this venv's (a machine may have no /usr/bin/python3)
    path = f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"
    env = {"PATH": path, "GH_CALLS": str(tmp_path / "gh.calls")} | env
    return subprocess.run(
        ["bash", str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=30
    )


def _gh_calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "gh.calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_alert_does_nothing_when_the_monitor_was_ok(tmp_path: Path) -> None:
    done = _alert(tmp_path, {"status": "ok", "retrain": False}, DISPATCH_RETRAIN="true")
    assert done.returncode == 0 and "nothing to report" in done.stdout
    assert _gh_calls(tmp_path) == []


def test_alert_fails_when_the_monitor_never_measured(tmp_path: Path) -> None:
    done = _alert(tmp_path, None)
    assert done.returncode == 1 and "failed before measuring" in done.stderr
    assert _gh_calls(tmp_path) == []


def test_alert_opens_an_issue_when_none_is_open(tmp_path: Path) -> None:
    done = _alert(tmp_path, {"status": "retrain", "retrain": True}, RUN_URL="https://run/1")
    assert done.returncode == 0, done.stderr
    calls = _gh_calls(tmp_path)
    assert calls[1].startswith("issue list --label model-monitoring --state open")
    assert calls[2:] == [
        "issue create --title Model monitoring: retrain --label model-monitoring "
        "--body-file reports/monitoring/issue.md"
    ]  # DISPATCH_RETRAIN unset: no `workflow run`
    body = (tmp_path / "reports/monitoring/issue.md").read_text()
    assert body.startswith("## Monitoring") and "https://run/1" in body


def test_alert_comments_on_the_open_issue_never_a_duplicate(tmp_path: Path) -> None:
    done = _alert(tmp_path, {"status": "retrain", "retrain": True}, OPEN_ISSUE="42")
    assert done.returncode == 0, done.stderr
    calls = _gh_calls(tmp_path)
    assert "issue comment 42 --body-file reports/monitoring/issue.md" in calls
    assert not any(c.startswith("issue create") for c in calls)
    assert "commented on issue #42" in done.stdout


@pytest.mark.parametrize(
    ("summary", "dispatch", "dispatched"),
    [
        ({"status": "retrain", "retrain": True}, "true", True),
        # a contract violation must not hide the retrain signal
        ({"status": "contract_violation", "retrain": True}, "true", True),
        ({"status": "contract_violation", "retrain": False}, "true", False),
        ({"status": "retrain", "retrain": True}, "false", False),
    ],
)
def test_alert_dispatches_retraining_on_the_retrain_flag(
    tmp_path: Path, summary: dict[str, Any], dispatch: str, dispatched: bool
) -> None:
    done = _alert(
        tmp_path,
        summary,
        OPEN_ISSUE="7",
        DISPATCH_RETRAIN=dispatch,
        RETRAIN_WORKFLOW="main.yml",
        RETRAIN_REF="main",
    )
    assert done.returncode == 0, done.stderr
    runs = [c for c in _gh_calls(tmp_path) if c.startswith("workflow run")]
    assert runs == (["workflow run main.yml --ref main"] if dispatched else [])
