"""`mlops monitor` end to end on a real trained project, a real `bentoml serve` request log and
the HTML report rendered by a real headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests

from mlops_template import cli
from mlops_template.config import load_params
from mlops_template.contract import load_contract
from mlops_template.model import load
from mlops_template.monitor import Outcome, monitor
from mlops_template.synthetic import generate_transactions
from tests.integration.servers import records, serve
from tests.repo import ROOT, make_repo, run, write_params

pytestmark = pytest.mark.integration
ROWS = 10_000


@pytest.fixture(scope="module")
def setup(project: tuple[Path, dict[str, str]]) -> dict[str, Any]:
    """The real trained project's model, reference, contract and evaluation metrics."""
    root = project[0]
    model, model_meta = load(root / "models/model.skops", root / "models/model.json")
    meta = model_meta.model_dump()
    return {
        "root": root,
        "model": model,
        "meta": meta,
        "contract": load_contract(root / "contract.yaml"),
        "params": load_params(root / "params.yaml"),
        "baseline": json.loads((root / "reports/metrics.json").read_text()),
        "reference": pd.read_parquet(root / "data/reference/reference.parquet"),
    }


@pytest.fixture(scope="module")
def large_reference(setup: dict[str, Any]) -> pd.DataFrame:
    """The reference a default-size (100k-row) pipeline keeps: 20k held-out rows, built by the
    evaluate stage's own function. The tiny project's 600-row split is too small to tell a
    0.1 drift threshold from sampling noise, so the statistical tests use this one."""
    from mlops_template.model import model_output
    from mlops_template.stages.evaluate import reference_sample

    held_out = generate_transactions(20_000, seed=42)
    proba = model_output(setup["model"], held_out.drop(columns=["is_fraud"]), "binary")
    outputs = pd.DataFrame({"prediction": (proba >= 0.5).astype("int64"), "proba_1": proba})
    return reference_sample(held_out, outputs, "is_fraud")


def _monitor(
    setup: dict[str, Any], reference: pd.DataFrame, batch: pd.DataFrame, **overrides: Any
) -> Outcome:
    params = setup["params"].monitor.model_copy(update=overrides)
    return monitor(
        batch,
        reference,
        model=setup["model"],
        meta=setup["meta"],
        contract=setup["contract"],
        baseline=setup["baseline"],
        params=params,
    )


def test_reference_holds_inputs_labels_and_predictions(setup: dict[str, Any]) -> None:
    ref = setup["reference"]
    test = pd.read_parquet(setup["root"] / "data/split/test.parquet")
    assert len(ref) == len(test)
    assert set(test.columns) | {"prediction", "proba_1"} == set(ref.columns)
    proba = setup["model"].predict_proba(test.drop(columns=["is_fraud"]))[:, 1]
    assert ref["proba_1"].to_numpy() == pytest.approx(proba, abs=1e-12)


def test_drift_on_shifted_batch_not_on_same_distribution(
    setup: dict[str, Any], large_reference: pd.DataFrame
) -> None:
    same = _monitor(setup, large_reference, generate_transactions(ROWS, seed=11))
    assert same.summary["status"] == "ok", same.reasons
    assert same.summary["drift"]["drifted_columns"] == []
    assert not same.summary["prediction_drift"]["drifted"]

    shifted = _monitor(
        setup, large_reference, generate_transactions(ROWS, seed=11, drift="shifted")
    )
    drift = shifted.summary["drift"]
    assert shifted.summary["status"] == "retrain"
    assert drift["share"] >= 0.3
    assert {"amount", "merchant_category", "is_foreign"} <= set(drift["drifted_columns"])
    # more night-time traffic shows only in the feature function's derived columns
    assert "timestamp_is_night" in drift["drifted_columns"]
    assert {"timestamp_hour", "timestamp_weekday", "amount_per_recent_txn"} <= set(drift["columns"])
    assert shifted.summary["prediction_drift"]["drifted"]
    # Evidently's own drifted-column share agrees with the per-column verdicts we report.
    assert drift["share"] == pytest.approx(len(drift["drifted_columns"]) / len(drift["columns"]))
    assert any(r.startswith("drift share") for r in shifted.reasons)


def test_quality_check_fires_when_labels_are_flipped(
    setup: dict[str, Any], large_reference: pd.DataFrame
) -> None:
    batch = generate_transactions(ROWS, seed=12)
    limits = {"roc_auc": 0.15}
    clean = _monitor(setup, large_reference, batch, quality_drop=limits)
    assert not clean.summary["quality"]["checks"]["roc_auc"]["failed"], clean.summary["quality"]

    flipped = batch.copy()
    part = flipped.sample(frac=0.4, random_state=0).index
    flipped.loc[part, "is_fraud"] = 1 - flipped.loc[part, "is_fraud"]
    bad = _monitor(setup, large_reference, flipped, quality_drop=limits)
    check = bad.summary["quality"]["checks"]["roc_auc"]
    assert check["failed"] and check["drop"] > 0.15, check
    assert bad.summary["status"] == "retrain"
    assert any(r.startswith("roc_auc dropped") for r in bad.reasons)
    assert bad.summary["drift"]["drifted_columns"] == []  # the inputs did not move


def test_unknown_quality_metric_is_a_config_error(setup: dict[str, Any]) -> None:
    from mlops_template.errors import ConfigError

    with pytest.raises(ConfigError, match=r"monitor\.quality_drop\.rmse"):
        _monitor(
            setup,
            setup["reference"],
            generate_transactions(500, seed=3),
            quality_drop={"rmse": 1.0},
        )


def _cli(root: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(root)
    return cli.main(["monitor", *args])


def test_contract_breaking_batch_reports_and_exits_8(
    setup: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    batch = generate_transactions(2000, seed=13)
    batch.loc[[3, 5], "amount"] = -1.0
    batch["channel"] = batch["channel"].astype(str)
    batch.loc[7, "channel"] = "carrier_pigeon"
    path = tmp_path / "bad.csv"
    batch.to_csv(path, index=False)

    assert _cli(setup["root"], monkeypatch, "--current", str(path)) == 8
    err = capsys.readouterr().err
    assert "breaks the data contract" in err and "Traceback" not in err
    assert "column amount" in err and "column channel" in err
    out = setup["root"] / "reports/monitoring"
    failures = pd.read_csv(out / "contract_failures.csv")
    assert set(failures["column"]) == {"amount", "channel"}
    assert sorted(failures["index"]) == [3, 5, 7]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "contract_violation"
    assert summary["contract"] == {"ok": False, "failures": 3, "rows_dropped": 3}
    assert "drift" in summary  # the remaining rows were still measured

    batch.drop(columns=["amount"]).to_parquet(tmp_path / "no_amount.parquet")
    assert _cli(setup["root"], monkeypatch, "--current", str(tmp_path / "no_amount.parquet")) == 8
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "contract_violation" and "drift" not in summary
    assert not (out / "report.html").exists()  # no stale report from the previous run


def _chromium() -> str:
    """A headless browser: found on PATH, else installed with apt-get (CI runs as root), else
    the test fails loudly: a rendering check must not silently skip."""
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if found is None and shutil.which("apt-get") and os.geteuid() == 0:
        for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(step, check=False, timeout=600, capture_output=True)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail(
            "no headless Chromium: install it (apt-get install -y chromium) to run this test"
        )
    return found


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_html_report_renders_in_headless_chromium(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "shifted.parquet"
    generate_transactions(ROWS, seed=14, drift="shifted").to_parquet(path)
    assert _cli(setup["root"], monkeypatch, "--current", str(path)) == 7
    report = setup["root"] / "reports/monitoring/report.html"
    summary = json.loads((setup["root"] / "reports/monitoring/summary.json").read_text())
    assert summary["status"] == "retrain" and summary["rows_total"] == ROWS
    raw = report.read_text()
    assert _visible_text(raw) == ""  # everything on the page is drawn by Evidently's JS
    dom = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=15000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    text = _visible_text(dom)
    assert "Dataset Drift" in text
    drifted = len(summary["drift"]["drifted_columns"])
    assert f"{drifted} out of {len(summary['drift']['columns'])}" in text
    columns = summary["drift"]["columns"]
    assert f"{len(columns)} Columns {drifted} Drifted Columns" in text
    shown = [c for c in columns if c in text]  # the table pages 10 columns at a time
    assert len(shown) >= min(10, len(columns)), shown


@pytest.fixture(scope="module")
def served(
    project: tuple[Path, dict[str, str]],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    """A real `bentoml serve` of the packaged model, logging to a request log of its own."""
    root, env = project
    log = tmp_path_factory.mktemp("served") / "requests.db"
    for url in serve(
        "mlops_template.serving.service:MlopsService", root, env | {"MLOPS_REQUEST_LOG": str(log)}
    ):
        yield url, log


def test_request_log_of_real_server_is_monitored(
    setup: dict[str, Any], served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, log = served
    traffic = generate_transactions(600, seed=15, drift="shifted").drop(columns=["is_fraud"])
    for start in range(0, len(traffic), 300):
        chunk = records(traffic.iloc[start : start + 300])
        resp = requests.post(f"{url}/predict", json={"records": chunk}, timeout=60)
        assert resp.status_code == 200, resp.text
    deadline = time.monotonic() + 20
    code = None
    while time.monotonic() < deadline:
        if log.exists():
            code = _cli(setup["root"], monkeypatch, "--request-log", str(log))
            summary = json.loads((setup["root"] / "reports/monitoring/summary.json").read_text())
            if summary["rows_total"] == len(traffic):
                break
        time.sleep(0.5)
    assert code == 7, "the shifted served traffic should ask for retraining"
    assert summary["rows_total"] == len(traffic)
    assert summary["source"] == f"request_log:{log}"
    assert summary["contract"]["ok"] and summary["quality"] is None  # no labels in the log
    assert "amount" in summary["drift"]["drifted_columns"]
    # prediction drift is measured on what the service answered, not on a local re-scoring
    assert summary["prediction_source"] == "served"
    versions = summary["request_log"]["sampled_model_versions"]
    assert sum(versions.values()) == len(traffic) and len(versions) == 1
    served_version = next(iter(versions))
    assert (
        _cli(
            setup["root"], monkeypatch, "--request-log", str(log), "--model-version", served_version
        )
        == 7
    )
    assert (
        _cli(
            setup["root"],
            monkeypatch,
            "--request-log",
            str(log),
            "--model-version",
            "mlops_model:never-served",
        )
        == 3
    )
    assert _cli(setup["root"], monkeypatch, "--request-log", str(log), "--since", "1h") == 7


def test_prediction_drift_uses_the_served_output(
    setup: dict[str, Any], large_reference: pd.DataFrame
) -> None:
    """Same inputs, but the service answered differently (another model version, a bug): the
    served column drifts although the local model would have agreed with the reference."""
    batch = generate_transactions(ROWS, seed=16).drop(columns=["is_fraud"])
    params = setup["params"].monitor
    kwargs = dict(
        model=setup["model"],
        meta=setup["meta"],
        contract=setup["contract"],
        baseline=setup["baseline"],
        params=params,
    )
    local = monitor(batch, large_reference, **kwargs)
    assert local.summary["prediction_source"] == "model"
    assert not local.summary["prediction_drift"]["drifted"]
    served = pd.Series(0.9, index=batch.index)
    out = monitor(batch, large_reference, served=served, **kwargs)
    assert out.summary["prediction_source"] == "served"
    assert out.summary["prediction_drift"]["drifted"] and out.summary["retrain"]
    assert out.summary["drift"]["drifted_columns"] == []


def test_grafana_dashboard_reads_only_metrics_the_service_exposes(
    served: tuple[str, Path], setup: dict[str, Any]
) -> None:
    from tests.dashboard import label_names, load, metric_names

    url, _ = served
    good = records(pd.read_parquet(setup["root"] / "data/split/test.parquet").head(2))
    for r in good:
        r.pop("is_fraud")
    assert requests.post(f"{url}/predict", json={"records": good}, timeout=30).status_code == 200
    assert requests.post(f"{url}/predict", json={"records": []}, timeout=30).status_code == 400
    text = requests.get(f"{url}/metrics", timeout=10).text
    samples = re.findall(r"^(\w+)(?:\{([^}]*)\})? ", text, re.M)
    exposed = {name for name, _ in samples}
    dashboard = load()
    assert metric_names(dashboard) <= exposed, metric_names(dashboard) - exposed
    labels = {
        k
        for name, lbl in samples
        if name in metric_names(dashboard)
        for k in re.findall(r"(\w+)=", lbl)
    }
    assert label_names(dashboard) <= labels, label_names(dashboard) - labels


def _readme_demo() -> list[str]:
    """The commands of docs/monitoring.md's demo block, as written."""
    text = (ROOT / "docs/monitoring.md").read_text()
    section = text[text.index("## Monitoring") :]
    block = section[section.index("Demo with the synthetic") :]
    start = block.index("```bash") + len("```bash")
    block = block[start : block.index("```", start)]
    return [line.split("#")[0].strip() for line in block.strip().splitlines()]


def test_readme_demo_and_the_dvc_stage(
    setup: dict[str, Any], large_reference: pd.DataFrame, tmp_path: Path
) -> None:
    """The README demo in a real git + DVC copy of the template holding a trained model and a
    default-size reference: the drifted batch exits 7; the same-world batch exits 0 through the
    monitor stage of monitoring/dvc.yaml, run by `dvc repro` on its own (its upstream is the
    training pipeline, reproduced elsewhere). That stage runs the demo's `mlops monitor` on
    the same file (monitor.path instead of --current), saving one slow process."""
    repo = make_repo(tmp_path / "repo", {"monitor": {"sample_rows": 10_000}})  # faster runs
    for rel in ("models/model.skops", "models/model.json", "reports/metrics.json"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(setup["root"] / rel, repo / rel)
    (repo / "data/reference").mkdir(parents=True)
    large_reference.to_parquet(repo / "data/reference/reference.parquet")

    synth, same, synth_drifted, drifted = _readme_demo()
    assert same == "mlops monitor --current batch.parquet"
    for command in (synth, synth_drifted, drifted):  # as written, our venv first on PATH
        done = run(repo, "bash", "-c", command)
    assert done.stdout.strip() == "exit 7", done.stderr[-2000:]
    summary = json.loads((repo / "reports/monitoring/summary.json").read_text())
    assert summary["status"] == "retrain" and summary["rows_total"] == 50_000
    assert summary["source"] == "file:drifted.parquet"

    write_params(repo, {"monitor": {"source": "file", "path": "batch.parquet"}})
    done = run(repo, "dvc", "repro", "--single-item", "monitoring/dvc.yaml")
    assert "Running stage 'monitoring/dvc.yaml:monitor'" in done.stdout, done.stdout
    summary = json.loads((repo / "reports/monitoring/summary.json").read_text())
    assert summary["status"] == "ok" and summary["source"] == "file:batch.parquet"
    assert summary["rows_total"] == 50_000 and summary["drift"]["drifted_columns"] == []
    assert (repo / "reports/monitoring/report.html").stat().st_size > 100_000
    shown = json.dumps(json.loads(run(repo, "dvc", "metrics", "show", "--json").stdout))
    assert "reports/monitoring/summary.json" in shown and '"rows_total": 50000' in shown


def test_labelled_served_traffic_agrees_with_the_offline_metrics(
    setup: dict[str, Any],
    served: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Offline vs online: the held-out split sent through the real service, its labels joined
    later by id: the metrics of what was served equal reports/metrics.json; wrong labels for
    the same traffic say retrain."""
    url, log = served
    test = pd.read_parquet(setup["root"] / "data/split/test.parquet")
    since = pd.Timestamp.now(tz="UTC").isoformat()
    for start in range(0, len(test), 300):
        chunk = records(test.drop(columns=["is_fraud"]).iloc[start : start + 300])
        resp = requests.post(f"{url}/predict", json={"records": chunk}, timeout=60)
        assert resp.status_code == 200, resp.text
    labels = tmp_path / "labels.csv"
    test[["transaction_id", "is_fraud"]].to_csv(labels, index=False)
    args = ("--request-log", str(log), "--since", since, "--labels", str(labels))
    summary_path = setup["root"] / "reports/monitoring/summary.json"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the log is written on a background thread
        code = _cli(setup["root"], monkeypatch, *args)
        summary = json.loads(summary_path.read_text())
        if summary["rows_total"] == len(test):
            break
        time.sleep(0.5)
    assert code == 0, summary.get("reasons")
    assert summary["rows_total"] == len(test) and summary["labels"]["rows_without_label"] == 0
    assert summary["quality_source"] == "served" and summary["prediction_source"] == "served"
    online, offline = summary["quality"]["metrics"], setup["baseline"]
    for name in ("log_loss", "accuracy", "f1", "precision", "recall"):
        assert online[name] == pytest.approx(offline[name], abs=1e-6), name
    # ranks: the tiny model gives tied scores that onnxruntime's 1e-7 differences order
    for name in ("roc_auc", "pr_auc"):
        assert online[name] == pytest.approx(offline[name], abs=0.01), name

    flipped = test[["transaction_id", "is_fraud"]].assign(is_fraud=1 - test["is_fraud"])
    flipped.to_csv(labels, index=False)
    assert _cli(setup["root"], monkeypatch, *args) == 7
    summary = json.loads(summary_path.read_text())
    assert any(r.startswith("roc_auc dropped") for r in summary["reasons"])


def test_a_model_older_than_the_limit_says_retrain(
    setup: dict[str, Any], large_reference: pd.DataFrame
) -> None:
    """Staleness: the same calm batch, judged now and 100 days after the model was trained."""
    from datetime import datetime, timedelta

    trained_at = setup["meta"]["mlflow"]["trained_at"]
    later = datetime.fromisoformat(trained_at) + timedelta(days=100)
    batch = generate_transactions(ROWS, seed=11)
    kwargs = dict(
        model=setup["model"],
        meta=setup["meta"],
        contract=setup["contract"],
        baseline=setup["baseline"],
        params=setup["params"].monitor,
    )
    fresh = monitor(batch, large_reference, **kwargs)
    assert fresh.summary["status"] == "ok" and fresh.summary["model_age"]["days"] < 1
    stale = monitor(batch, large_reference, now=later, **kwargs)
    assert stale.summary["status"] == "retrain"
    assert stale.reasons == [
        f"model age 100.0 days > monitor.max_model_age_days 90 (trained {trained_at})"
    ]
