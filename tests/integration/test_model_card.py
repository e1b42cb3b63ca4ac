"""The model card travels with the model: written by the package stage, logged to the MLflow
run, stored with the BentoML model, the Bento's README, and served by a real `bentoml serve`
at GET /model-card with the same numbers as reports/metrics.json."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import requests
import yaml

from tests.repo import ROOT


def _reports(root: Path) -> tuple[str, dict, dict]:
    card_md = (root / "reports/model_card.md").read_text()
    card = json.loads((root / "reports/model_card.json").read_text())
    return card_md, card, json.loads((root / "reports/metrics.json").read_text())


def test_served_card_has_the_numbers_of_metrics_json(project, server):
    root, _ = project
    card_md, card, reported = _reports(root)
    as_json = requests.get(
        f"{server}/model-card", headers={"Accept": "application/json"}, timeout=10
    )
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"].startswith("application/json")
    served = as_json.json()
    assert served == card
    held = served["performance"]["held_out"]["metrics"]
    assert {m: e["value"] for m, e in held.items()} == reported
    package = json.loads((root / "reports/package.json").read_text())
    assert served["identity"]["model_tag"] == package["model_tag"]
    assert served["onnx"] == {k: v for k, v in package["runtime"].items() if k in served["onnx"]}

    as_md = requests.get(f"{server}/model-card", timeout=10)
    assert as_md.status_code == 200
    assert as_md.headers["content-type"].startswith("text/markdown")
    assert as_md.text == card_md
    for name, value in reported.items():
        assert f"| {name} | {value} |" in as_md.text, name
    assert yaml.safe_load(as_md.text.split("---\n", 2)[1]) == card["metadata"]


def test_card_is_read_only(server):
    for method in ("POST", "PUT", "DELETE"):
        response = requests.request(method, f"{server}/model-card", data=b"{}", timeout=10)
        assert response.status_code == 405, method
    assert requests.get(f"{server}/readyz", timeout=10).status_code == 200


STORED = """
import json, sys
from pathlib import Path
import bentoml
model = bentoml.models.get(sys.argv[1])
bento = bentoml.bentos.get(sys.argv[2])
print(json.dumps({
    "md": Path(model.path_of("model_card.md")).read_text(),
    "json": json.loads(Path(model.path_of("model_card.json")).read_text()),
    "sha256": model.info.metadata["model_card_sha256"],
    "readme": Path(bento.path_of("README.md")).read_text(),
    "in_bento": Path(bento.path_of("src/reports/model_card.json")).is_file(),
}))
"""


def test_card_is_stored_with_the_model_the_bento_and_the_run(project, tmp_path):
    from mlflow import MlflowClient

    root, env = project
    card_md, card, _ = _reports(root)
    package = json.loads((root / "reports/package.json").read_text())
    out = subprocess.run(
        [sys.executable, "-c", STORED, package["model_tag"], package["bento_tag"]],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    stored = json.loads(out.stdout)
    assert stored["md"] == card_md and stored["json"] == card
    assert stored["sha256"] == hashlib.sha256(card_md.encode()).hexdigest()
    assert stored["readme"] == card_md and stored["in_bento"]

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    run_id = card["identity"]["mlflow"]["run_id"]
    logged = client.download_artifacts(run_id, "model_card", str(tmp_path))
    assert (Path(logged) / "model_card.md").read_text() == card_md
    assert json.loads((Path(logged) / "model_card.json").read_text()) == card


def test_pr_report_carries_the_card_diff_only_after_a_reproduced_pipeline(tmp_path):
    from tests.integration.test_workflows import pr_report

    report = tmp_path / "gate.md"
    report.write_text("<!-- mlops-gate-report -->\n### ✅ Metric gate passed\n")
    card_diff = tmp_path / "model_card_diff.md"
    card_diff.write_text("### Model card: changes against `origin/main`\n\n| roc_auc | 0.9 |\n")
    script = str(ROOT / ".ci/pr-report.sh")
    for outcome, shown in (("success", True), ("failure", False)):
        summary = tmp_path / f"summary-{outcome}.md"
        pr_report(
            tmp_path,
            report,
            args=[script, str(report), str(card_diff)],
            PR_NUMBER="",
            GATE_OUTCOME="success",
            REPRO_OUTCOME=outcome,
            GITHUB_STEP_SUMMARY=str(summary),
        )
        text = summary.read_text()
        assert text.startswith("<!-- mlops-gate-report -->\n### ✅ Metric gate passed")
        assert ("Model card: changes against `origin/main`" in text) is shown, outcome


RESAVE = """
import json, logging, sys
logging.basicConfig(level=logging.INFO)
from pathlib import Path
import bentoml
from mlops_template.model import ModelMeta, file_sha256, read_pipeline
from mlops_template.stages.package import save_model

meta, model = ModelMeta.read(), read_pipeline(Path("models/model.skops"))
name = sys.argv[1]
card = {"model_card.md": b"# another card\\n", "model_card.json": b"{}\\n"}
before = bentoml.models.get(sys.argv[2])
onnx_before = file_sha256(Path(before.path_of("model.onnx")))
tag, _ = save_model(model, meta, {}, name, card=lambda tag, runtime: card)
again = bentoml.models.get(tag)
created = again.info.creation_time
tag2, _ = save_model(model, meta, {}, name, card=lambda tag, runtime: card)
print(json.dumps({
    "same_tag": tag == sys.argv[2] == tag2,
    "card": Path(again.path_of("model_card.md")).read_text(),
    "onnx_kept": file_sha256(Path(again.path_of("model.onnx"))) == onnx_before,
    "reused": bentoml.models.get(tag2).info.creation_time == created,
}))
"""


def test_a_changed_card_stores_the_model_again_with_its_onnx_graph(project, tmp_path):
    """Same model, new card: the stored model is replaced under the same tag (ONNX graph
    reused, not exported again); the same card again reuses it. On a copy of the store."""
    import shutil

    root, env = project
    package = json.loads((root / "reports/package.json").read_text())
    home = tmp_path / "bentoml"
    shutil.copytree(Path(env["BENTOML_HOME"]) / "models", home / "models", symlinks=True)
    name = package["model_tag"].split(":")[0]
    out = subprocess.run(
        [sys.executable, "-c", RESAVE, name, package["model_tag"]],
        env=env | {"BENTOML_HOME": str(home)},
        cwd=root,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {
        "same_tag": True,
        "card": "# another card\n",
        "onnx_kept": True,
        "reused": True,
    }
    assert "its model card changed, saving it again" in out.stderr
    assert "onnx: max abs diff" not in out.stderr  # no second export
