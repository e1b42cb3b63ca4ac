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


def _alert(tmp_path: Path, summary: dict[str, Any] | None) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "reports/monitoring"
    out.mkdir(parents=True)
    if summary is not None:
        (out / "summary.json").write_text(json.dumps(summary))
        (out / "summary.md").write_text("## Monitoring\n")
    return subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"}, timeout=30)  # fmt: skip


def test_alert_does_nothing_when_the_monitor_was_ok(tmp_path: Path) -> None:
    done = _alert(tmp_path, {"status": "ok"})
    assert done.returncode == 0 and "nothing to report" in done.stdout


def test_alert_fails_when_the_monitor_never_measured(tmp_path: Path) -> None:
    done = _alert(tmp_path, None)
    assert done.returncode == 1 and "failed before measuring" in done.stderr


def test_alert_script_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
