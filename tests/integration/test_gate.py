"""The gate against a real git repository: baseline metrics (and the dataset they were
measured on) committed on main, the candidate on a branch, read through real DVC
(`dvc metrics diff` / `dvc params diff`) and git (`git show <ref>:reports/dataset.json`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_template.config import load_params
from mlops_template.errors import ConfigError, DataError, GateFailed
from mlops_template.stages.gate import run_gate
from mlops_template.stages.gate.fingerprint import fingerprint
from mlops_template.stages.gate.settings import resolve_settings
from tests.repo import env, make_repo, run, write_params

pytestmark = pytest.mark.integration

BASE = {"accuracy": 0.95, "roc_auc": 0.90, "pr_auc": 0.40, "log_loss": 0.20, "f1": 0.5}
FRAUD = {
    "contract": {"name": "card-transactions", "version": 1},
    "target": "is_fraud",
    "task": "binary",
}


def write_metrics(repo: Path, metrics: dict[str, float]) -> None:
    (repo / "reports").mkdir(exist_ok=True)
    (repo / "reports/metrics.json").write_text(json.dumps(metrics, indent=2))


def write_dataset(repo: Path, identity: dict[str, Any]) -> None:
    (repo / "reports/dataset.json").write_text(json.dumps(identity, indent=2))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """main: a commit without metrics (tag no-metrics), metrics without a dataset identity
    (tag no-identity, as committed before evaluate recorded one), then the identity."""
    path = make_repo(tmp_path_factory.mktemp("gate"))
    run(path, "git", "tag", "no-metrics")
    write_metrics(path, BASE)
    run(path, "git", "add", "reports/metrics.json")
    run(path, "git", "commit", "-qm", "baseline metrics")
    run(path, "git", "tag", "no-identity")
    write_dataset(path, FRAUD)
    run(path, "git", "add", "reports/dataset.json")
    run(path, "git", "commit", "-qm", "baseline dataset identity")
    return path


@pytest.fixture
def candidate(repo: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """A fresh branch off main in ``repo`` (the working directory); returns a committer."""
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MLOPS_GATE_OVERRIDE", raising=False)
    monkeypatch.delenv("MLOPS_GATE_BASELINE", raising=False)
    branch = re.sub(r"[^\w-]+", "-", request.node.name)[:60]  # parametrized: test[a-b]
    run(repo, "git", "checkout", "-qf", "-B", branch, "main")

    def commit(changes: dict[str, float | None], dataset: dict[str, Any] | None = None) -> None:
        metrics = {k: v for k, v in (BASE | changes).items() if v is not None}
        write_metrics(repo, metrics)
        write_dataset(repo, FRAUD | (dataset or {}))
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


def test_no_metrics_at_the_ref_passes_with_the_reason(repo: Path, candidate):
    candidate({"roc_auc": 0.5})
    result = run_gate(load_params(), baseline_ref="no-metrics")
    assert result.passed
    md, js = report(repo)
    assert "no comparable baseline: no-metrics has no committed reports/metrics.json" in md
    assert all(r["baseline"] is None for r in js["rows"])
    assert js["baseline"]["compared"] is False


@pytest.mark.parametrize(
    ("dataset", "why"),
    [
        ({"contract": {"name": "churn", "version": 1}}, "contract 'card-transactions' → 'churn'"),
        ({"target": "chargeback"}, "target 'is_fraud' → 'chargeback'"),
        ({"task": "multiclass"}, "task 'binary' → 'multiclass'"),
    ],
    ids=["contract", "target", "task"],
)
def test_another_dataset_is_never_compared(repo: Path, candidate, dataset, why):
    """Issue 11: pointed at new data, the first run must not fail against the demo's metrics."""
    candidate({"roc_auc": 0.69, "pr_auc": 0.05, "log_loss": 0.6}, dataset=dataset)
    result = run_gate(load_params(), baseline_ref="main")
    assert result.passed and result.baseline.metrics is None
    md, js = report(repo)
    assert (
        f"no comparable baseline: main ({js['baseline']['commit'][:8]}) was evaluated on "
        f"another dataset ({why})" in md
    )
    assert "| roc_auc | — | 0.6900 | — |" in md and js["baseline"]["dataset"] == FRAUD


def test_metrics_without_a_dataset_identity_are_no_baseline(repo: Path, candidate):
    candidate({"roc_auc": 0.5})
    assert run_gate(load_params(), baseline_ref="no-identity").passed
    assert "records no dataset identity (reports/dataset.json)" in report(repo)[0]


def test_same_dataset_in_a_new_contract_version_is_compared(repo: Path, candidate):
    candidate({"roc_auc": 0.85}, dataset={"contract": {"name": "card-transactions", "version": 2}})
    with pytest.raises(GateFailed, match="roc_auc"):
        run_gate(load_params(), baseline_ref="main")
    assert "Contract version 1 → 2: same contract name, target and task" in report(repo)[0]


def test_candidate_without_a_dataset_identity_is_bad_data(repo: Path, candidate):
    candidate({})
    (repo / "reports/dataset.json").unlink()
    with pytest.raises(DataError, match=r"reports/dataset\.json is missing"):
        run_gate(load_params(), baseline_ref="main")


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


# --------------------------------------------------------------------------- reuse (issue 15)


def gate_stage(repo: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`mlops stage gate` as dvc.yaml runs it, in its own process."""
    return subprocess.run(
        ["mlops", "stage", "gate"],
        cwd=repo,
        env=env() | extra_env,
        capture_output=True,
        text=True,
        check=False,
    )


REUSED = "inputs unchanged"


def test_unchanged_inputs_reuse_the_decision_until_a_commit_moves_the_baseline(
    repo: Path, candidate
):
    candidate({})  # the workspace equals HEAD: the gate passes
    first, again = gate_stage(repo), gate_stage(repo)
    assert first.returncode == again.returncode == 0, first.stderr
    assert REUSED not in first.stderr and REUSED in again.stderr
    assert again.stdout == first.stdout  # the same report, printed again
    assert json.loads((repo / "reports/gate_ok.json").read_text()) == {"ok": True}
    # A new commit raises the baseline; the workspace keeps the (byte-identical) old metrics,
    # which are now worse than HEAD's: only the baseline's commit changed, and it fails.
    write_metrics(repo, BASE | {"roc_auc": 0.95})
    run(repo, "git", "commit", "-qam", "a better model")
    write_metrics(repo, BASE)
    moved = gate_stage(repo)
    assert moved.returncode == 5 and REUSED not in moved.stderr, moved.stderr
    assert "roc_auc (worse by 0.05 > 0.01)" in moved.stderr
    assert not (repo / "reports/gate_ok.json").exists()
    # a failed decision is repeated too (exit 5 again, no pass flag)
    repeated = gate_stage(repo)
    assert repeated.returncode == 5 and REUSED in repeated.stderr
    assert "roc_auc (worse by 0.05 > 0.01)" in repeated.stderr
    assert not (repo / "reports/gate_ok.json").exists()
    # the override variable is an input: the same regression is then accepted
    overridden = gate_stage(repo, MLOPS_GATE_OVERRIDE="1")
    assert overridden.returncode == 0 and REUSED not in overridden.stderr
    assert json.loads((repo / "reports/gate.json").read_text())["override"] is True


@pytest.mark.parametrize(
    "change",
    ["metrics", "dataset", "gate params", "other params", "override", "baseline env", "commit"],
)
def test_each_input_changes_the_fingerprint(repo: Path, candidate, monkeypatch, change: str):
    candidate({})

    def key() -> str | None:
        params = load_params()
        return fingerprint(params, *resolve_settings(params))

    before = key()
    assert before is not None and before == key()
    if change == "metrics":
        write_metrics(repo, BASE | {"f1": 0.51})
    elif change == "dataset":
        write_dataset(repo, FRAUD | {"contract": {"name": "card-transactions", "version": 2}})
    elif change == "gate params":
        write_params(repo, {"gate": {"metrics": {"roc_auc": {"max_drop_abs": 0.02}}}})
    elif change == "other params":  # no decision changes, but the report's params diff does
        write_params(repo, {"evaluate": {"threshold": 0.4}})
    elif change == "override":
        monkeypatch.setenv("MLOPS_GATE_OVERRIDE", "1")
    elif change == "baseline env":
        monkeypatch.setenv("MLOPS_GATE_BASELINE", "no-identity")
    else:
        run(repo, "git", "commit", "-qm", "HEAD moves", "--allow-empty")
    assert key() != before


def test_a_repeated_decision_imports_neither_dvc_nor_pandas(repo: Path, candidate):
    candidate({})
    assert gate_stage(repo).returncode == 0
    check = (
        "import sys\n"
        "from mlops_template.cli import main\n"
        "assert main(['stage', 'gate']) == 0\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'dvc', 'pandas', 'sklearn'})\n"
        "print('heavy:', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], cwd=repo, env=env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert REUSED in done.stderr and "heavy: []" in done.stderr
