"""models/model.joblib is opened only when it is the file train wrote (its sha256 is in
models/model.json): a swapped pickle never runs, and every error names the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import pytest
from sklearn.dummy import DummyClassifier

from mlops_template.errors import ModelError
from mlops_template.model import ModelMeta, file_sha256, load


class _Payload:
    """Unpickling this runs a shell command: what an attacker would put in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (f"touch {self.marker}",)


def _trained(tmp_path: Path) -> tuple[Path, Path]:
    model, meta = tmp_path / "model.joblib", tmp_path / "model.json"
    joblib.dump(DummyClassifier().fit([[0], [1]], [0, 1]), model)
    ModelMeta(
        task="binary",
        model="dummy",
        target="y",
        input_columns=["x"],
        classes=[0, 1],
        contract={"name": "t", "version": 1},
        model_sha256=file_sha256(model),
    ).write(meta)
    return model, meta


def test_the_file_train_wrote_loads(tmp_path: Path) -> None:
    model, meta = _trained(tmp_path)
    loaded, read = load(model, meta)
    assert read.classes == [0, 1] and loaded.predict([[1]]).shape == (1,)


def test_a_tampered_model_never_runs(tmp_path: Path) -> None:
    model, meta = _trained(tmp_path)
    marker = tmp_path / "pwned"
    model.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelError, match=r"model\.joblib: sha256 .* refusing to load"):
        load(model, meta)
    assert not marker.exists()


def test_a_corrupt_model_with_the_right_hash_is_one_clear_error(tmp_path: Path) -> None:
    model, meta = _trained(tmp_path)
    model.write_bytes(model.read_bytes()[:50])  # truncated, then "re-signed"
    described = ModelMeta.read(meta).model_copy(update={"model_sha256": file_sha256(model)})
    described.write(meta)
    with pytest.raises(ModelError, match=r"model\.joblib: cannot load"):
        load(model, meta)


@pytest.mark.parametrize("content", ["", "{not json", '{"task": "binary"}'])
def test_a_broken_description_names_the_file(tmp_path: Path, content: str) -> None:
    model, meta = _trained(tmp_path)
    meta.write_text(content)
    with pytest.raises(ModelError, match=r"model\.json: not a model description"):
        load(model, meta)


def test_a_missing_model_names_the_file(tmp_path: Path) -> None:
    model, meta = _trained(tmp_path)
    model.unlink()
    with pytest.raises(ModelError, match=r"model\.joblib: missing"):
        load(model, meta)
