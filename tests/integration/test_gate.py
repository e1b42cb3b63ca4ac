"""The gate against a real git repository: baseline metrics committed on main, the candidate
on a branch, read through real DVC (`dvc metrics diff` / `dvc params diff`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mlops_template.config import load_params
from mlops_template.errors import ConfigError, DataError, GateFailed
from mlops_template.gate import run_gate
from tests.repo import make_repo, run

pytestmark = pytest.mark.integration

BASE = {"accuracy": 0.95, "roc_auc": 0.90, "pr_auc": 0.40, "log_loss": 0.20, "f1": 0.5}


def write_metrics(repo: Path, metrics: dict[str, float]) -> None:
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports/metrics.json").write_text(json.dumps(metrics, indent=2))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main: a commit without metrics (tag no-metrics), then the baseline metrics."""
    path = make_repo(tmp_path_factory.mktemp("gate"))
    run(path, "git", "tag", "no-metrics")
    write_metrics(path, BASE)
    run(path, "git", "add", "reports/metrics.json")
    run(path, "git", "commit", "-qm", "baseline metrics")
    return path


@pytest.fixture
def candidate(repo: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """A fresh branch off main in ``repo`` (the working directory); returns a committer."""
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MLOPS_GATE_OVERRIDE", raising=False)
    monkeypatch.delenv("MLOPS_GATE_BASELINE", raising=False)
    run(repo, "git", "checkout", "-qf", "-B", request.node.name[:40], "main")

    def commit(changes: dict[str, float | None]) -> None:
        metrics = {k: v for k, v in (BASE | changes).items() if v is not None}
        write_metrics(repo, metrics)
        run(repo, "git", "commit", "-qam", "candidate", "--allow-empty")

    return commit


def report(repo: Path) -> tuple[str, dict]:
    return (repo / "reports/gate.md").read_text(), json.loads(
        (repo / "reports/gate.json").read_text()
    )


def table_row(markdown: str, metric: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith(f"| {metric} |"))


def test_improved_candidate_passes(repo: Path, candidate):
    candidate({"roc_auc": 0.93, "log_loss": 0.15})
    result = run_gate(load_params(), baseline_ref="main")
    assert result.passed and not result.override
    md, js = report(repo)
    assert "✅ Metric gate passed" in md and js["ok"] and js["failed"] == []
    assert "| roc_auc | 0.9000 | 0.9300 | +0.0300 |" in md
    assert js["baseline"]["commit"] == run(repo, "git", "rev-parse", "main").stdout.strip()


def test_regression_beyond_threshold_fails_with_that_row_marked(repo: Path, candidate):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["hist_gradient_boosting"]["learning_rate"] = 0.3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    candidate({"roc_auc": 0.85})
    with pytest.raises(GateFailed, match=r"roc_auc \(worse by 0.05 > 0.01\)"):
        run_gate(load_params(), baseline_ref="main")
    md, js = report(repo)
    assert "❌ Metric gate failed" in md and js["failed"] == ["roc_auc"] and not js["ok"]
    assert "❌ **fail**" in table_row(md, "roc_auc")
    assert "✅ pass" in table_row(md, "pr_auc")
    assert "| train.hist_gradient_boosting.learning_rate | 0.1 | 0.3 |" in md


def test_regression_within_tolerance_passes(repo: Path, candidate):
    candidate({"roc_auc": 0.895, "log_loss": 0.205})
    assert run_gate(load_params(), baseline_ref="main").passed
    assert "✅ pass" in table_row(report(repo)[0], "roc_auc")


def test_no_baseline_passes_with_a_note(repo: Path, candidate):
    candidate({"roc_auc": 0.5})
    result = run_gate(load_params(), baseline_ref="no-metrics")
    assert result.passed
    md, js = report(repo)
    assert "no-metrics has no committed reports/metrics.json" in md
    assert all(r["baseline"] is None for r in js["rows"])


def test_missing_candidate_metric_fails(repo: Path, candidate):
    candidate({"pr_auc": None})
    with pytest.raises(GateFailed, match="pr_auc"):
        run_gate(load_params(), baseline_ref="main")
    assert "missing from the candidate" in table_row(report(repo)[0], "pr_auc")


def test_override_passes_and_is_recorded(repo: Path, candidate, monkeypatch):
    candidate({"roc_auc": 0.80})
    monkeypatch.setenv("MLOPS_GATE_OVERRIDE", "1")
    result = run_gate(load_params(), baseline_ref="main")
    assert not result.passed and result.ok
    md, js = report(repo)
    assert "overridden" in md and "Override in effect: failed gates (roc_auc)" in md
    assert js["override"] and js["ok"] and js["failed"] == ["roc_auc"]


def test_workspace_equal_to_head_passes(repo: Path, candidate):
    """What the gate stage sees inside `dvc repro` before the new metrics are committed."""
    candidate({})
    result = run_gate(load_params())  # baseline_ref from params.yaml: HEAD
    assert result.passed and all(r.delta in (0, None) for r in result.rows)


def test_unknown_ref_is_a_config_error(candidate):
    candidate({})
    with pytest.raises(ConfigError, match="unknown git revision 'origin/nope'"):
        run_gate(load_params(), baseline_ref="origin/nope")


def test_cli_override_flag(repo: Path, candidate):
    """The exit status 5 path through the CLI is covered by tests/integration/test_workflows."""
    candidate({"roc_auc": 0.70})
    done = run(repo, "mlops", "gate", "--baseline", "main", "--override", check=False)
    assert done.returncode == 0, done.stderr
    assert "⚠️ Metric gate failed — overridden" in done.stdout
    assert json.loads((repo / "reports/gate.json").read_text())["override"] is True


def test_unreadable_baseline_fails_loudly(repo: Path, candidate):
    """Unlike a ref without the file (first run), a corrupt baseline is never "no baseline"."""
    (repo / "reports/metrics.json").write_text("{not json")
    run(repo, "git", "commit", "-qam", "corrupt metrics")
    run(repo, "git", "tag", "-f", "corrupt")
    candidate({})
    (repo / "reports/gate.md").write_text("an old report")
    with pytest.raises(DataError, match=r"reports/metrics.json at 'corrupt' .* is unreadable"):
        run_gate(load_params(), baseline_ref="corrupt")
    assert not (repo / "reports/gate.md").exists()  # no stale report left to publish
