"""The package stage's names and versions in the BentoML store."""

from __future__ import annotations

import pytest

from mlops_template.config import parse_params
from mlops_template.errors import ConfigError
from mlops_template.model import ModelMeta
from mlops_template.stages.package import model_version, project_name, store_name


@pytest.mark.parametrize(
    ("folder", "name"),
    [
        ("mlops-template", "mlops-template"),
        ("My Fraud_Model (v2)", "my-fraud_model-v2"),
        ("__", "mlops-model"),
        ("x" * 100, "x" * 63),
    ],
)
def test_store_name_is_a_valid_bentoml_name(folder, name):
    assert store_name(folder) == name


def test_project_name_is_the_folder_unless_set(raw_params, tmp_path, monkeypatch):
    folder = tmp_path / "Fraud Detector"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert project_name(parse_params(raw_params)) == "fraud-detector"
    raw_params["package"]["model_name"] = "fraud.v2"
    assert project_name(parse_params(raw_params)) == "fraud.v2"


@pytest.mark.parametrize("name", ["Fraud", "a b", "-x", "x" * 64])
def test_bad_model_name_names_the_key(raw_params, name):
    raw_params["package"]["model_name"] = name
    with pytest.raises(ConfigError, match=r"package\.model_name"):
        parse_params(raw_params)


def _meta(**changes) -> ModelMeta:
    base = {
        "task": "binary",
        "model": "linear",
        "target": "y",
        "input_columns": ["a"],
        "classes": [0, 1],
        "threshold": 0.5,
        "contract": {"name": "c", "version": 1},
        "mlflow": {"run_id": "r1"},
        "model_sha256": "ab" * 32,
    }
    return ModelMeta.model_validate(base | changes)


def test_model_version_follows_the_model_not_the_run():
    assert model_version(_meta()) == model_version(_meta(mlflow={"run_id": "r2"}))
    assert model_version(_meta()) != model_version(_meta(model_sha256="cd" * 32))
    assert model_version(_meta()) != model_version(_meta(threshold=0.3))
