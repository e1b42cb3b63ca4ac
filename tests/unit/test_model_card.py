"""The model card from a project's reports: every section, every number from its source, pii
values never, Hugging Face metadata as the spec asks, limitations that follow from the numbers,
and its diff against a base card."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlops_template import metrics
from mlops_template.card import diff, facts, render
from mlops_template.config import parse_params
from mlops_template.model import ModelMeta
from mlops_template.serving.model_card import wants_json

N_TRAIN, N_TEST = 300, 120
SECRET = "secret-person-{}@example.org"
CONTRACT = {
    "name": "shop-orders",
    "version": 3,
    "id": "order_id",
    "target": "label",
    "timestamp": "ts",
    "columns": {
        "order_id": {"dtype": "int", "unique": True, "min": 1},
        "ts": {"dtype": "datetime"},
        "amount": {"dtype": "float", "min": 0, "max": 1000, "nullable": True},
        "shop": {"dtype": "category", "categories": ["a", "b", "c"]},
        "email": {"dtype": "str", "pii": True, "nullable": True},
        "label": {"dtype": "category", "categories": [0, 1]},
    },
}


def _split(rng: np.random.Generator, n: int, first: int) -> pd.DataFrame:
    amount = rng.uniform(1, 900, n)
    amount[::7] = np.nan
    return pd.DataFrame(
        {
            "order_id": np.arange(first, first + n),
            "ts": pd.date_range("2026-01-01", periods=n, freq="h") + pd.Timedelta(hours=first),
            "amount": amount,
            "shop": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
            "email": [SECRET.format(first + i) if i % 5 else None for i in range(n)],
            "label": (rng.random(n) < 0.2).astype(int),
        }
    )


def _write_json(obj: Any, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj))


@pytest.fixture
def project(tmp_path: Path, raw_params: dict[str, Any], monkeypatch: pytest.MonkeyPatch):
    """A project's reports as the stages write them, for a small shop-orders model (ts is a
    model input, email is pii, slice c is small, class 1 has few held-out rows)."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    Path("contract.yaml").write_text(yaml.safe_dump(CONTRACT))
    train, test = _split(rng, N_TRAIN, 1), _split(rng, N_TEST, 10_000)
    Path("data/split").mkdir(parents=True)
    train.to_parquet("data/split/train.parquet")
    test.to_parquet("data/split/test.parquet")
    inputs = ["order_id", "ts", "amount", "shop", "email"]
    meta = ModelMeta(
        task="binary",
        model="hist_gradient_boosting",
        target="label",
        id_column="order_id",
        input_columns=inputs,
        classes=[0, 1],
        threshold=0.3,
        threshold_source="auto: max_f1 on out-of-fold predictions",
        contract={"name": "shop-orders", "version": 3},
        mlflow={"run_id": "r123", "registered_model": "m", "version": "7", "trained_at": "T"},
        python="3.12",
        model_sha256="ab" * 32,
    )
    Path("models").mkdir()
    meta.write()
    proba = np.clip(test["label"] * 0.4 + rng.random(N_TEST) * 0.6, 0, 1)
    predictions = pd.DataFrame(
        {
            "order_id": test["order_id"],
            "label": test["label"],
            "prediction": (proba >= 0.3).astype(int),
            "proba_1": proba,
        }
    )
    Path("data/predictions").mkdir(parents=True)
    predictions.to_parquet("data/predictions/test.parquet")
    scores = metrics.score("binary", test["label"].to_numpy(), proba, np.array([0, 1]), 0.3)
    _write_json(scores, "reports/metrics.json")
    _write_json({"cv_roc_auc_mean": 0.812345, "cv_roc_auc_std": 0.0123}, "reports/cv_metrics.json")
    slices = {
        name: {"rows": int((test["shop"] == name).sum()), "roc_auc": auc}
        for name, auc in (("a", 0.9), ("b", 0.61), ("c", 0.75))
    }
    _write_json({"column": "shop", "slices": slices}, "reports/slices.json")
    checks = {
        "features": {"below": {"shop": -0.0125}, "floor": 0.0, "action": "report"},
        "slices": {
            "column": "shop",
            "metrics": {
                "roc_auc": {
                    "below_floor": {"b": 0.61},
                    "floor": 0.7,
                    "gap": 0.29,
                    "max_gap": 0.25,
                    "worst": {"slice": "b", "value": 0.61},
                    "best": {"slice": "a", "value": 0.9},
                    "skipped": ["c"],
                }
            },
        },
    }
    _write_json(checks, "reports/checks.json")
    Path("reports/plots").mkdir()
    with open("reports/plots/importance.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["feature", "importance"])
        for row in (("amount", 0.213457), ("ts", 0.0321), ("shop", -0.0125)):
            writer.writerow(row)
    _write_json({"ok": True}, "reports/gate_ok.json")
    raw_params["data"]["contract"] = "contract.yaml"
    raw_params["features"] = {"drop": ["order_id", "email"]}
    raw_params["evaluate"]["slice_column"] = "shop"
    raw_params["evaluate"]["slice_checks"] = {}
    raw_params["evaluate"]["slice_min_rows"] = 50
    raw_params["card"]["bootstrap"]["resamples"] = 60
    return raw_params


RUNTIME = {
    "runtime": "onnx",
    "onnx_checked_rows": N_TEST,
    "onnx_max_abs_diff": 9.04e-08,
    "onnx_tolerance": 1e-06,
}


def _card(raw: dict[str, Any]) -> dict[str, Any]:
    return facts.build(parse_params(raw), model_tag="shop:v1", runtime=RUNTIME, git_commit="c0ffee")


def _read(path: str) -> Any:
    return json.loads(Path(path).read_text())


def test_every_section_is_there_and_says_something(project):
    card = _card(project)
    md = render.markdown(card)
    for key in ("identity", "use", "data", "performance", "drivers", "gate", "onnx", "monitoring"):
        assert card[key], key
    assert card["limitations"]["derived"]
    assert card["use"] == dict.fromkeys(card["use"], facts.NOT_STATED)  # placeholders only
    assert card["limitations"]["stated"] == facts.NOT_STATED
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert len(headings) == len(render.SECTIONS)
    for heading, next_heading in zip(headings, [*headings[1:], None], strict=True):
        body = md.split(heading, 1)[1]
        body = body.split(next_heading, 1)[0] if next_heading else body
        assert body.strip(), f"{heading} is empty"
    assert md.count("_not stated_") == 6  # five use fields and the owners' limitations


def test_every_number_equals_its_source(project):
    card = _card(project)
    md = render.markdown(card)
    perf = card["performance"]
    held = perf["held_out"]["metrics"]
    assert {m: e["value"] for m, e in held.items()} == _read("reports/metrics.json")
    for name, entry in held.items():
        assert entry["ci"]["low"] <= entry["ci"]["high"], name
        assert f"| {name} | {entry['value']} | {entry['ci']['low']} | {entry['ci']['high']} |" in md
    cv = perf["cross_validation"]["metrics"]["roc_auc"]
    assert (cv["mean"], cv["std"]) == (0.812345, 0.0123)
    assert "| roc_auc | 0.812345 | 0.0123 |" in md
    assert perf["threshold"] == {"value": 0.3, "chosen_by": ModelMeta.read().threshold_source}
    assert perf["slices"]["slices"] == _read("reports/slices.json")["slices"]
    assert "| b | " in md and "0.61" in md
    check = perf["slices"]["checks"]["roc_auc"]
    assert (check["floor_held"], check["gap_held"], check["gap"]) == (False, False, 0.29)
    importance = pd.read_csv("reports/plots/importance.csv")
    assert [r["importance"] for r in card["drivers"]["permutation_importance"]] == list(
        importance["importance"]
    )
    assert "| amount | 0.213457 |" in md
    assert card["onnx"] == RUNTIME and "9.04e-08" in md
    data = card["data"]
    assert data["rows"] == {"train": N_TRAIN, "test": N_TEST}
    md5 = hashlib.md5(Path("data/split/train.parquet").read_bytes()).hexdigest()
    assert card["identity"]["training_data"]["md5"] == md5 and md5 in md
    assert card["identity"]["mlflow"] == {"run_id": "r123", "registered_model": "m", "version": "7"}
    amount = next(c for c in data["columns"] if c["name"] == "amount")
    frames = [pd.read_parquet(f"data/split/{s}.parquet") for s in ("train", "test")]
    both = pd.concat(frames)["amount"]
    assert amount["missing_share"] == round(both.isna().mean(), 6)
    assert amount["observed"] == {"min": both.min(), "max": both.max()}
    assert perf["classes"] == {str(k): int(v) for k, v in frames[1]["label"].value_counts().items()}


def test_pii_values_never_appear(project):
    card = _card(project)
    text = render.markdown(card) + json.dumps(card)
    emails = pd.concat(pd.read_parquet(f"data/split/{s}.parquet") for s in ("train", "test"))
    values = emails["email"].dropna()
    assert len(values) > 300
    assert not [v for v in values if v in text]
    assert "example.org" not in text and "secret-person" not in text
    email = next(c for c in card["data"]["columns"] if c["name"] == "email")
    assert "pii" in email["roles"] and email["values"] == "withheld (pii)"
    assert "observed" not in email and "declared" not in email
    assert email["missing_share"] == round(emails["email"].isna().mean(), 6)
    assert card["data"]["pii_columns"] == ["email"]


def test_limitations_follow_from_the_numbers(project):
    derived = "\n".join(_card(project)["limitations"]["derived"])
    assert "roc_auc on shop=b is 0.61, below its floor 0.7" in derived
    assert "by 0.29 (worst b, best a), more than the allowed gap 0.25" in derived
    rows_c = _read("reports/slices.json")["slices"]["c"]["rows"]
    assert f"shop=c has only {rows_c} held-out rows" in derived
    ones = int(pd.read_parquet("data/split/test.parquet")["label"].sum())
    assert f"Class 1 has only {ones} held-out rows" in derived
    assert "shop adds nothing measurable (permutation importance -0.0125" in derived
    assert "The timestamp ts is a model input" in derived
    assert "(split: stratified)" in derived


def test_no_time_limitation_when_the_split_is_by_time_and_ts_is_dropped(project):
    project["data"]["split"]["method"] = "time"
    project["features"]["drop"] = ["order_id", "email", "ts"]
    derived = "\n".join(_card(project)["limitations"]["derived"])
    assert "timestamp" not in derived and "split:" not in derived


def test_the_owners_words_are_shown_as_written(project):
    project["card"] |= {
        "intended_use": "Rank orders for manual review.",
        "owners": ["Risk team"],
        "license": "apache-2.0",
        "limitations": ["Never trained on refunds."],
    }
    card = _card(project)
    md = render.markdown(card)
    assert "**Intended use:** Rank orders for manual review." in md
    assert "**Owners:** Risk team" in md
    assert "- Never trained on refunds." in md
    assert card["metadata"]["license"] == "apache-2.0"
    assert md.count("_not stated_") == 2  # out of scope, contact


# The fields of Hugging Face's model card metadata this card fills (huggingface_hub's
# modelcard template and `ModelCardData`; `model-index` as parsed by
# `model_index_to_eval_results`: task.type, dataset.type and .name, metric type and value
# are required).
HF_FIELDS = {
    "library_name",
    "tags",
    "pipeline_tag",
    "datasets",
    "metrics",
    "license",
    "model-index",
}
HF_LICENSES = {"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "other", "unknown"}


def _front_matter(md: str) -> dict[str, Any]:
    assert md.startswith("---\n")
    return yaml.safe_load(md.split("---\n", 2)[1])


@pytest.mark.parametrize("license_id", ["", "apache-2.0"])
def test_metadata_follows_the_hugging_face_spec(project, license_id):
    project["card"]["license"] = license_id
    card = _card(project)
    meta = _front_matter(render.markdown(card))
    assert meta == card["metadata"]
    assert set(meta) <= HF_FIELDS
    assert ("license" in meta) == bool(license_id)
    assert meta.get("license", "apache-2.0") in HF_LICENSES
    assert meta["library_name"] == "sklearn"
    assert meta["pipeline_tag"] in {"tabular-classification", "tabular-regression"}
    for key in ("tags", "datasets", "metrics"):
        assert meta[key] and all(isinstance(v, str) for v in meta[key]), key
    (index,) = meta["model-index"]
    assert index["name"] == "shop:v1"
    (result,) = index["results"]
    assert result["task"]["type"] == meta["pipeline_tag"]
    assert result["dataset"]["type"] == "shop-orders" and result["dataset"]["name"]
    reported = _read("reports/metrics.json")
    assert {m["type"]: m["value"] for m in result["metrics"]} == {
        k: v for k, v in reported.items() if math.isfinite(v)
    }
    assert meta["metrics"] == [m["type"] for m in result["metrics"]]


def test_bootstrap_is_seeded(project):
    first = _card(project)["performance"]["held_out"]
    assert _card(project)["performance"]["held_out"] == first
    project["card"]["bootstrap"]["seed"] = 7
    assert _card(project)["performance"]["held_out"] != first


def test_diff_shows_what_changed(project):
    base = _card(project)
    new = json.loads(json.dumps(base))
    new["performance"]["held_out"]["metrics"]["roc_auc"]["value"] = 0.5
    new["performance"]["threshold"]["value"] = 0.42
    new["data"]["rows"]["train"] = N_TRAIN + 5
    new["limitations"]["derived"].append("A new limit.")
    text = diff.render("origin/main", base, new)
    assert text.startswith(f"{diff.HEADING} `origin/main`")
    old_auc = base["performance"]["held_out"]["metrics"]["roc_auc"]["value"]
    assert f"| roc_auc (held-out) | {old_auc} | 0.5 | {round(0.5 - old_auc, 6):+g} |" in text
    assert "| threshold | 0.3 | 0.42 | +0.12 |" in text
    assert f"| train rows | {N_TRAIN} | {N_TRAIN + 5} | +5 |" in text
    assert "- new: A new limit." in text
    assert "**Slices:** unchanged" in text
    unchanged = diff.render("origin/main", base, base)
    assert unchanged.count("unchanged") == 4
    assert "has no reports/model_card.json" in diff.render("origin/main", None, new)


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        ("", False),
        ("*/*", False),
        ("application/json", True),
        ("text/markdown", False),
        ("text/markdown;q=0.5, application/json", True),
        ("application/json;q=0.2, text/markdown", False),
        ("text/html, application/json;q=0.9", True),
        ("application/json;q=0", False),
    ],
)
def test_accept_header_picks_the_format(accept, json_wanted):
    assert wants_json(accept) is json_wanted


def test_card_diff_command_reads_the_base_card_from_git(project, tmp_path):
    """`make card-diff`: the base card is the one committed at the ref (a real git repo)."""
    import subprocess

    from tests.repo import env

    def git(*args: str) -> None:
        subprocess.run(["git", *args], check=True, capture_output=True, env=env())

    git("init", "-q", "-b", "main")
    out = Path("reports/model_card_diff.md")
    assert diff.main(["--baseline", "main"]) == 2  # no card in the workspace yet
    base = _card(project)
    Path("reports/model_card.json").write_text(json.dumps(base))
    git("add", "reports/model_card.json")
    git("commit", "-qm", "base card")
    assert diff.main(["--baseline", "main"]) == 0
    assert "**Metrics and threshold:** unchanged" in out.read_text()
    changed = json.loads(json.dumps(base))
    changed["performance"]["threshold"]["value"] = 0.35
    Path("reports/model_card.json").write_text(json.dumps(changed))
    assert diff.main(["--baseline", "main"]) == 0
    assert "| threshold | 0.3 | 0.35 | +0.05 |" in out.read_text()
    assert diff.main(["--baseline", "no-such-ref"]) == 0
    assert "`no-such-ref` has no reports/model_card.json" in out.read_text()
