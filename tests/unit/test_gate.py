"""The gate's rules as pure functions: compare(baseline, candidate, gates) -> rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mlops_template.config import GateParams, MetricGate, parse_params
from mlops_template.errors import ConfigError, DataError
from mlops_template.gate_rules import (
    Baseline,
    GateResult,
    comparable,
    compare,
    identity_difference,
)
from mlops_template.stages.gate.fingerprint import params_files
from mlops_template.stages.gate.inputs import read_candidate, read_identity
from mlops_template.stages.gate.report import from_json, render_markdown, to_json
from mlops_template.stages.gate.settings import resolve_settings

AUC = {"roc_auc": MetricGate(max_drop_abs=0.01)}
LOSS = {"log_loss": MetricGate(max_drop_rel=0.05)}


def one(rows, metric):
    return next(r for r in rows if r.metric == metric)


@pytest.mark.parametrize(
    ("gates", "base", "cand", "status"),
    [
        (AUC, 0.90, 0.95, "pass"),  # improved
        (AUC, 0.90, 0.90, "pass"),  # unchanged
        (AUC, 0.90, 0.89, "pass"),  # exactly the allowed drop (float noise must not fail it)
        (AUC, 0.90, 0.8899, "fail"),  # just beyond
        (LOSS, 0.20, 0.21, "pass"),  # lower is better: +5% allowed
        (LOSS, 0.20, 0.2102, "fail"),  # +5.1%
        (LOSS, 0.20, 0.10, "pass"),  # improved (lower)
        ({"roc_auc": MetricGate(max_drop_abs=0.1, max_drop_rel=0.01)}, 0.9, 0.88, "fail"),
        ({"roc_auc": MetricGate(min=0.9)}, 0.95, 0.89, "fail"),  # floor without drop limit
        ({"log_loss": MetricGate(max=0.3)}, 0.2, 0.31, "fail"),  # ceiling
        ({"r2": MetricGate(max_drop_rel=0.1)}, 0.0, -0.01, "fail"),  # worse than a zero base
        ({"r2": MetricGate(max_drop_rel=0.1)}, 0.0, 0.0, "pass"),
    ],
)
def test_each_gate_rule(gates, base, cand, status):
    metric = next(iter(gates))
    row = one(compare({metric: base}, {metric: cand}, gates), metric)
    assert row.status == status, row
    assert row.delta == pytest.approx(cand - base)


def test_failed_row_names_the_violated_limit():
    row = compare({"roc_auc": 0.9}, {"roc_auc": 0.85}, AUC)[0]
    assert row.status == "fail" and "worse by 0.05 > 0.01" in row.note


def test_no_baseline_passes_with_a_note_but_floors_still_apply():
    gates = {"roc_auc": MetricGate(max_drop_abs=0.01), "pr_auc": MetricGate(min=0.5)}
    rows = compare(None, {"roc_auc": 0.6, "pr_auc": 0.4}, gates)
    assert one(rows, "roc_auc").status == "pass"
    assert one(rows, "roc_auc").note == "no baseline"
    assert one(rows, "pr_auc").status == "fail"


def test_new_metric_without_baseline_value_passes():
    rows = compare(
        {"roc_auc": 0.9}, {"roc_auc": 0.9, "pr_auc": 0.3}, AUC | {"pr_auc": AUC["roc_auc"]}
    )
    assert one(rows, "pr_auc").status == "pass" and one(rows, "pr_auc").note == "no baseline"


@pytest.mark.parametrize("candidate", [{}, {"roc_auc": None}, {"roc_auc": math.nan}])
def test_missing_or_non_finite_candidate_metric_fails(candidate):
    row = compare({"roc_auc": 0.9}, candidate, AUC)[0]
    assert row.status == "fail" and row.candidate is None


def test_ungated_metrics_are_shown_not_judged():
    rows = compare({"f1": 0.5}, {"roc_auc": 0.9, "f1": 0.1}, AUC)
    assert [r.metric for r in rows] == ["roc_auc", "f1"]
    assert one(rows, "f1").status == "info" and one(rows, "f1").delta == pytest.approx(-0.4)


@pytest.mark.parametrize(("task", "skipped"), [("binary", "rmse"), ("regression", "roc_auc")])
def test_gates_on_metrics_the_task_never_produces_are_skipped(task, skipped):
    gates = {"roc_auc": MetricGate(max_drop_abs=0.01), "rmse": MetricGate(max_drop_rel=0.05)}
    rows = compare({}, {"roc_auc": 0.9, "rmse": 1.0}, gates, task=task)
    assert one(rows, skipped).status == "skip"
    assert {r.status for r in rows if r.metric != skipped} == {"pass"}


def test_unknown_metric_needs_a_direction():
    with pytest.raises(ConfigError, match=r"gate.metrics.brier.direction"):
        compare({}, {"brier": 0.1}, {"brier": MetricGate(max_drop_abs=0.01)})
    gates = {"brier": MetricGate(direction="lower", max_drop_abs=0.01)}
    assert compare({"brier": 0.1}, {"brier": 0.2}, gates)[0].status == "fail"


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({}, "set at least one of"),
        ({"min": 0.9, "max": 0.1}, "must not exceed"),
        ({"max_drop_abs": -0.1}, "greater than or equal to 0"),
        ({"direction": "up", "min": 0.1}, "direction"),
    ],
)
def test_bad_gate_config_names_the_key(raw_params, gate, message):
    raw_params["gate"]["metrics"] = {"roc_auc": gate}
    with pytest.raises(ConfigError, match=r"gate\.metrics\.roc_auc") as err:
        parse_params(raw_params)
    assert message in str(err.value)


def test_override_precedence(raw_params, monkeypatch):
    params = parse_params(raw_params)
    monkeypatch.delenv("MLOPS_GATE_OVERRIDE", raising=False)
    monkeypatch.delenv("MLOPS_GATE_BASELINE", raising=False)
    assert resolve_settings(params) == ("HEAD", False)
    monkeypatch.setenv("MLOPS_GATE_OVERRIDE", "1")
    monkeypatch.setenv("MLOPS_GATE_BASELINE", "origin/main")
    assert resolve_settings(params) == ("origin/main", True)
    assert resolve_settings(params, baseline_ref="v1")[0] == "v1"
    monkeypatch.setenv("MLOPS_GATE_OVERRIDE", "maybe")
    with pytest.raises(ConfigError, match="MLOPS_GATE_OVERRIDE"):
        resolve_settings(params)
    assert resolve_settings(params, override=True)[1] is True


def test_empty_override_variable_leaves_params_in_charge(raw_params, monkeypatch):
    """pr.yml sets MLOPS_GATE_OVERRIDE to "" without the label: gate.override: true holds."""
    raw_params["gate"]["override"] = True
    monkeypatch.setenv("MLOPS_GATE_OVERRIDE", "")
    assert resolve_settings(parse_params(raw_params))[1] is True
    monkeypatch.setenv("MLOPS_GATE_OVERRIDE", "0")  # an explicit 0 still switches it off
    assert resolve_settings(parse_params(raw_params))[1] is False


@pytest.mark.parametrize(
    ("text", "message"), [("{not json", "not valid JSON"), ("[1]", "got list")]
)
def test_unreadable_candidate_is_bad_data_not_a_failed_gate(tmp_path, text, message):
    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_candidate(tmp_path / "metrics.json")
    assert err.value.exit_code == 3 and "metrics.json" in str(err.value)


def test_report_marks_failures_and_override():
    rows = compare({"roc_auc": 0.9}, {"roc_auc": 0.8}, AUC)
    diff = {"train.model": {"old": "linear", "new": "hist_gradient_boosting"}}
    result = GateResult(rows, Baseline("main", "a" * 40, {"roc_auc": 0.9}, diff))
    text = render_markdown(result)
    assert text.startswith("<!-- mlops-gate-report -->")
    assert "❌ Metric gate failed" in text and "| roc_auc | 0.9000 | 0.8000 | -0.1000 |" in text
    assert "| train.model | linear | hist_gradient_boosting |" in text
    assert to_json(result)["failed"] == ["roc_auc"] and not to_json(result)["ok"]
    result.override = True
    assert "overridden" in render_markdown(result) and to_json(result)["ok"]


def test_default_params_gate_section_is_valid(raw_params):
    gate = parse_params(raw_params).gate
    assert isinstance(gate, GateParams) and gate.baseline_ref == "HEAD" and not gate.override
    assert gate.metrics, "params.yaml declares no gates"


def test_gate_stage_sits_between_evaluate_and_package():
    import yaml

    from mlops_template import paths

    stages = yaml.safe_load((Path(__file__).parents[2] / "dvc.yaml").read_text())["stages"]
    # only the pass flag is a DVC output: dvc.lock records the same bytes whatever the baseline
    # commit, which gate.md / gate.json name (written beside it, gitignored)
    outs = {next(iter(o)) for o in stages["gate"]["outs"]}
    assert outs == {str(paths.GATE_OK)}
    assert {str(paths.METRICS), str(paths.DATASET)} <= set(stages["gate"]["deps"])
    assert str(paths.DATASET) in {next(iter(o)) for o in stages["evaluate"]["outs"]}
    assert stages["gate"]["always_changed"] is True  # its baseline is no dep DVC can see
    # package waits for the pass flag, not for gate.json (which names the baseline commit)
    assert str(paths.GATE_OK) in stages["package"]["deps"]
    assert str(paths.GATE_JSON) not in stages["package"]["deps"]


# --------------------------------------------------------------------------- dataset identity

FRAUD = {
    "contract": {"name": "card-transactions", "version": 1},
    "target": "is_fraud",
    "task": "binary",
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, ""),
        ({"contract": {"name": "card-transactions", "version": 2}}, ""),  # same data, new schema
        ({"contract": {"name": "churn", "version": 1}}, "contract 'card-transactions' → 'churn'"),
        ({"target": "churned"}, "target 'is_fraud' → 'churned'"),
        ({"task": "regression"}, "task 'binary' → 'regression'"),
    ],
)
def test_identity_difference_names_what_differs(change, expected):
    assert identity_difference(FRAUD, FRAUD | change) == expected


def baseline_at(ref="main"):
    return Baseline(ref, "b" * 40, {"roc_auc": 0.9})


def test_same_dataset_is_compared():
    base = comparable(baseline_at(), FRAUD, dict(FRAUD))
    assert base.metrics == {"roc_auc": 0.9} and base.dataset == FRAUD and not base.note


@pytest.mark.parametrize(
    ("base_dataset", "why"),
    [
        (None, "main (bbbbbbbb) records no dataset identity (reports/dataset.json)"),
        (FRAUD | {"target": "churned"}, "another dataset (target 'churned' → 'is_fraud')"),
    ],
)
def test_other_or_unknown_dataset_is_no_comparable_baseline(base_dataset, why):
    base = comparable(baseline_at(), base_dataset, FRAUD)
    assert base.metrics is None and base.note.startswith("no comparable baseline: ")
    assert why in base.note
    rows = compare(base.metrics, {"roc_auc": 0.5}, AUC)
    assert rows[0].status == "pass" and rows[0].baseline is None  # never compared


def test_candidate_without_identity_is_bad_data():
    with pytest.raises(DataError, match=r"reports/dataset.json is missing.*evaluate"):
        comparable(baseline_at(), FRAUD, None)


@pytest.mark.parametrize("text", ["{not json", '{"target": "y"}', "[]"])
def test_unreadable_identity_is_bad_data(tmp_path, text):
    (tmp_path / "dataset.json").write_text(text)
    with pytest.raises(DataError, match=r"dataset\.json"):
        read_identity(tmp_path / "dataset.json")
    assert read_identity(tmp_path / "absent.json") is None


def test_report_says_why_nothing_was_compared():
    base = comparable(baseline_at(), FRAUD | {"task": "multiclass"}, FRAUD)
    result = GateResult(compare(base.metrics, {"roc_auc": 0.5}, AUC), base, dataset=FRAUD)
    text = render_markdown(result)
    assert "✅ Metric gate passed" in text
    assert "no comparable baseline: main (bbbbbbbb) was evaluated on another dataset" in text
    assert "dataset: `card-transactions` v1, target `is_fraud`, binary" in text
    assert to_json(result)["baseline"]["compared"] is False


# --------------------------------------------------------------------------- reuse


def test_stored_report_renders_the_same():
    """The fast path re-renders gate.md from gate.json: nothing the report shows is lost."""
    rows = compare({"roc_auc": 0.9, "f1": 0.4}, {"roc_auc": 0.8, "f1": 0.5}, AUC, task="binary")
    diff = {"train.model": {"old": "linear", "new": "hist_gradient_boosting"}}
    base = Baseline("main", "a" * 40, {"roc_auc": 0.9}, diff, dataset=FRAUD)
    result = GateResult(rows, base, override=True, notes=["a note"], dataset=FRAUD)
    stored = json.loads(json.dumps(to_json(result, "key")))
    again = from_json(stored)
    assert render_markdown(again) == render_markdown(result)
    assert (again.ok, again.passed, stored["fingerprint"]) == (True, False, "key")


def test_params_files_are_params_yaml_and_those_dvc_yaml_names(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    dvc_yaml.write_text("stages:\n  a: {cmd: x, params: [gate, {toy.yaml: [q]}]}\n  b: {cmd: y}\n")
    assert params_files(dvc_yaml) == [Path("params.yaml"), Path("toy.yaml")]
    assert params_files(tmp_path / "missing.yaml") == [Path("params.yaml")]


def test_the_fingerprint_covers_every_module_the_gate_runs() -> None:
    """A stored decision is repeated only while the code that made it is unchanged."""
    from mlops_template.stages.gate.fingerprint import _code
    from tests.unit.test_stage_deps import ROOT, expected_deps

    covered = {str(path.relative_to(ROOT)) for path in _code() if path.exists()}
    assert expected_deps("mlops_template.stages.gate") <= covered
