"""End to end: real git repo, real `dvc repro`, real MLflow SQLite store, real DVC remote."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.repo import make_repo, run

pytestmark = pytest.mark.integration

STAGES = ["data", "features", "tune", "train", "evaluate", "gate", "package"]


def ran_stages(output: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", output)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One reproduced template copy shared by the read-only checks of this module."""
    path = make_repo(tmp_path_factory.mktemp("pipeline"))
    out = run(path, "dvc", "repro")
    assert ran_stages(out.stdout) == STAGES
    run(path, "git", "add", "-A")  # dvc.lock and the small outputs: clones see the run
    run(path, "git", "commit", "-qm", "reproduced")
    run(path, "dvc", "repro", "gate")  # the commit moved the gate's baseline: decide once more
    return path


def test_repro_writes_every_declared_output(repo: Path):
    for rel in [
        "data/split/train.parquet",
        "data/split/test.parquet",
        "data/features/train.parquet",
        "models/model.skops",
        "models/model.json",
        "reports/metrics.json",
        "reports/cv_metrics.json",
        "reports/slices.json",
        "reports/plots/roc.csv",
        "reports/plots/importance.csv",
        "data/predictions/test.parquet",
        "reports/model_card.md",
        "reports/model_card.json",
    ]:
        assert (repo / rel).stat().st_size > 0, rel
    metrics = json.loads((repo / "reports/metrics.json").read_text())
    assert set(metrics) == {
        "accuracy",
        "precision",
        "recall",
        "f1",
        "roc_auc",
        "pr_auc",
        "log_loss",
    }
    assert 0.5 < metrics["roc_auc"] <= 1
    # what the gate checks before comparing with a baseline (issue 11)
    assert json.loads((repo / "reports/dataset.json").read_text()) == {
        "contract": {"name": "card-transactions", "version": 1},
        "target": "is_fraud",
        "task": "binary",
    }


def test_model_card_names_the_dvc_lock_hash_and_the_run(repo: Path):
    card = json.loads((repo / "reports/model_card.json").read_text())
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {o["path"]: o["md5"] for o in lock["stages"]["data"]["outs"]}
    assert card["identity"]["training_data"]["md5"] == outs["data/split/train.parquet"]
    meta = json.loads((repo / "models/model.json").read_text())
    assert card["identity"]["mlflow"]["run_id"] == meta["mlflow"]["run_id"]
    assert (
        card["identity"]["model_tag"]
        == json.loads((repo / "reports/package.json").read_text())["model_tag"]
    )
    assert card["gate"]["decision"] == "passed"
    package_outs = {o["path"] for o in lock["stages"]["package"]["outs"]}
    assert {"reports/model_card.md", "reports/model_card.json"} <= package_outs


def test_second_repro_runs_nothing_but_the_gate(repo: Path):
    """The gate stage is always_changed (its baseline ref is no DVC dep) but repeats its last
    decision; the Bento is not rebuilt: package depends on the gate's constant pass flag."""
    lock = (repo / "dvc.lock").read_text()
    out = run(repo, "dvc", "repro")
    assert ran_stages(out.stdout) == ["gate"]
    assert "didn't change" in out.stdout or "up to date" in out.stdout
    assert "inputs unchanged" in out.stderr
    assert (repo / "dvc.lock").read_text() == lock


def test_run_is_tracked_in_mlflow_and_registered(repo: Path):
    meta = json.loads((repo / "models/model.json").read_text())
    db = sqlite3.connect(repo / "mlflow.db")
    run_id = meta["mlflow"]["run_id"]
    metric_keys = {k for (k,) in db.execute("select key from metrics where run_uuid=?", (run_id,))}
    assert {"cv_roc_auc_mean", "test_roc_auc", "test_log_loss"} <= metric_keys
    tags = dict(db.execute("select key, value from tags where run_uuid=?", (run_id,)).fetchall())
    assert re.fullmatch(r"[0-9a-f]{40}", tags["git_commit"])
    assert re.fullmatch(r"[0-9a-f]{32}", tags["data_hash"])
    params = dict(db.execute("select key, value from params where run_uuid=?", (run_id,)))
    assert params["train.model"] == "hist_gradient_boosting"
    versions = db.execute(
        "select version from model_versions where name=? and run_id=?",
        (meta["mlflow"]["registered_model"], run_id),
    ).fetchall()
    assert versions == [(int(meta["mlflow"]["version"]),)]
    # artifacts live beside the store, not in the stage's working directory
    assert any((repo / "mlartifacts").rglob("MLmodel"))
    assert not (repo / "mlruns").exists()


def test_force_repro_is_byte_identical(repo: Path, tmp_path: Path):
    before = (repo / "reports/metrics.json").read_bytes()
    predictions = pd.read_parquet(repo / "data/predictions/test.parquet")
    run(repo, "dvc", "repro", "--force")
    assert (repo / "reports/metrics.json").read_bytes() == before
    pd.testing.assert_frame_equal(
        pd.read_parquet(repo / "data/predictions/test.parquet"), predictions
    )


def test_push_to_remote_then_clone_and_pull_reproduces_nothing(repo: Path, tmp_path: Path):
    remote = tmp_path / "remote"
    run(repo, "dvc", "remote", "add", "-d", "--local", "storage", str(remote))
    run(repo, "dvc", "push")
    assert any(remote.rglob("*")), "nothing was pushed to the remote"
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    run(clone, "dvc", "remote", "add", "-d", "--local", "storage", str(remote))
    run(clone, "dvc", "pull")
    assert (clone / "models/model.skops").read_bytes() == (repo / "models/model.skops").read_bytes()
    # dvc.yaml = the training pipeline; monitoring/dvc.yaml's `monitor` is always_changed
    status = json.loads(run(clone, "dvc", "status", "dvc.yaml", "--json").stdout)
    # Only the gate is pending: it always runs (its baseline moves) and its reports are not
    # versioned; it writes the same reports/gate_ok.json, so package is not rebuilt.
    assert set(status) <= {"gate", "package"}, status
    assert ran_stages(run(clone, "dvc", "repro").stdout) == ["gate"]


def test_exp_run_with_train_param_reruns_only_downstream_of_train(tmp_path: Path, repo: Path):
    work = tmp_path / "work"
    run(tmp_path, "git", "clone", "-q", str(repo), str(work))
    run(work, "dvc", "cache", "dir", "--local", str(repo / ".dvc" / "cache"))  # data from cache
    run(work, "dvc", "checkout")
    out = run(
        work,
        "dvc",
        "exp",
        "run",
        "-n",
        "lr-fast",
        "-S",
        "train.hist_gradient_boosting.learning_rate=0.3",
        "-S",
        "gate.override=true",  # an exploratory experiment: report a regression, go on
    )
    # tune re-runs too: it reads the model's section (the values it does not search)
    assert ran_stages(out.stdout) == STAGES[STAGES.index("tune") :]
    shown = json.loads(run(work, "dvc", "exp", "show", "--json").stdout)
    experiments = [exp for rev in shown for exp in rev.get("experiments") or []]
    assert "lr-fast" in {exp.get("name") for exp in experiments}, shown
    diff = json.loads(run(work, "dvc", "metrics", "diff", "--json").stdout)
    assert diff["reports/metrics.json"]["roc_auc"]["diff"] != 0


def test_bad_raw_data_stops_at_data_stage_with_report(tmp_path: Path):
    from mlops_template.synthetic import generate_transactions

    raw = generate_transactions(500, seed=3)
    raw["channel"] = raw["channel"].astype(str)
    raw.loc[5, "channel"] = "carrier_pigeon"
    raw.loc[9, "amount"] = -10.0
    path = make_repo(tmp_path / "bad", {"data": {"source": "csv", "path": "raw.csv"}})
    raw.to_csv(path / "raw.csv", index=False)
    out = run(path, "dvc", "repro", check=False)
    assert out.returncode != 0
    assert ran_stages(out.stdout) == ["data"]
    assert "channel" in out.stderr and "carrier_pigeon" in out.stderr
    failures = pd.read_csv(path / "reports/data_validation/failures.csv")
    assert {"channel", "amount"} <= set(failures["column"])
    assert not (path / "data/split/train.parquet").exists()
    assert not (path / "models/model.skops").exists()
