"""The monitor workflow: zizmor, the GitHub workflow schema, least privilege, pinned actions,
thin `make` steps; and the alert script's decisions that need no GitHub (real bash)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.repo import ROOT, run

pytestmark = pytest.mark.integration
WORKFLOW = ROOT / ".github/workflows/monitor.yml"
SCRIPT = ROOT / ".github/scripts/monitor-alert.sh"


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
    assert runs == ["make install", "make monitor", "make monitor-alert"]
    assert all("${{" not in r for r in runs)
    for step in steps:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    upload = next(s for s in steps if "upload-artifact" in s.get("uses", ""))
    assert upload["with"]["path"] == "reports/monitoring/"
    targets = (ROOT / "Makefile").read_text()
    assert re.search(r"^monitor:", targets, re.M) and re.search(r"^monitor-alert:", targets, re.M)


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
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "GH_CALLS": str(tmp_path / "gh.calls")} | env
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
                          env=env, timeout=30)  # fmt: skip


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
    done = _alert(tmp_path, summary, OPEN_ISSUE="7", DISPATCH_RETRAIN=dispatch,
                  RETRAIN_WORKFLOW="main.yml", RETRAIN_REF="main")  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = [c for c in _gh_calls(tmp_path) if c.startswith("workflow run")]
    assert runs == (["workflow run main.yml --ref main"] if dispatched else [])
