"""models/model.skops is opened only when it is the file train wrote (its sha256 is in
models/model.json), and even then it is read by skops, which builds only the types
estimators.trusted_types lists: a file rewritten together with its recorded hash (a pickle, or
a skops file naming a function to call) runs nothing. Every error names the file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import skops.io as sio
from sklearn.dummy import DummyClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from mlops_template import cli
from mlops_template.errors import ModelError
from mlops_template.model import ModelMeta, file_sha256, load, save


class _Payload:
    """Unpickling this runs a shell command: what an attacker would put in a model file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def _trained(tmp_path: Path) -> tuple[Path, Path]:
    model, meta = tmp_path / "model.skops", tmp_path / "model.json"
    save(DummyClassifier().fit([[0], [1]], [0, 1]), model)
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


def _resign(model: Path, meta: Path) -> None:
    """Record the file's current hash, as someone who can write models/ can."""
    described = ModelMeta.read(meta).model_copy(update={"model_sha256": file_sha256(model)})
    described.write(meta)


def test_the_file_train_wrote_loads(tmp_path: Path) -> None:
    model, meta = _trained(tmp_path)
    loaded, read = load(model, meta)
    assert read.classes == [0, 1] and loaded.predict([[1]]).shape == (1,)


def test_the_model_file_is_not_a_pickle(tmp_path: Path) -> None:
    model, _ = _trained(tmp_path)
    with pytest.raises(pickle.UnpicklingError), model.open("rb") as fh:
        pickle.load(fh)  # a zip of JSON and arrays (skops), nothing pickle would run


def test_a_tampered_model_never_runs(tmp_path: Path) -> None:
    model, meta = _trained(tmp_path)
    marker = tmp_path / "pwned"
    model.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelError, match=r"model\.skops: sha256 .* refusing to load"):
        load(model, meta)
    assert not marker.exists()


def test_a_pickle_with_its_hash_rewritten_too_never_runs(tmp_path: Path) -> None:
    """Whoever can write models/ can rewrite both files: the hash matches, the file is a
    pickle whose loading would run a shell command. Refused, and the command never ran (on
    main before skops, joblib.load ran it)."""
    model, meta = _trained(tmp_path)
    marker = tmp_path / "pwned"
    model.write_bytes(pickle.dumps(_Payload(marker)))
    _resign(model, meta)
    with pytest.raises(ModelError, match=r"model\.skops: cannot load \(BadZipFile"):
        load(model, meta)
    assert not marker.exists()


def test_a_skops_file_naming_a_function_to_call_is_refused_by_name(tmp_path: Path) -> None:
    """A well-formed skops file can name any importable function (here os.system, called by
    a FunctionTransformer at predict): outside the trusted list, it is refused before any
    object is built, and the error names the type."""
    model, meta = _trained(tmp_path)
    marker = tmp_path / "pwned"
    step = FunctionTransformer(os.system, kw_args={}, validate=False)
    sio.dump(Pipeline([("features", step), ("model", DummyClassifier())]), model)
    _resign(model, meta)
    with pytest.raises(ModelError) as err:
        load(model, meta)
    message = str(err.value)
    assert "\n" not in message
    assert f"{model}: holds types outside the trusted list ({os.system.__module__}.system)" in (
        message
    )
    assert not marker.exists()


def test_the_cli_turns_an_untrusted_model_into_one_line_and_exit_10(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.repo import DEMO_CONTRACT, DEMO_PARAMS

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    model, meta = _trained(tmp_path / "models")
    sio.dump(FunctionTransformer(os.system), model)
    _resign(model, meta)
    (tmp_path / "batch.csv").write_text("amount\n1.0\n")
    params = tmp_path / "params.yaml"
    params.write_text(DEMO_PARAMS.read_text().replace("contract.yaml", str(DEMO_CONTRACT)))
    assert cli.main(["--params", str(params), "score", "batch.csv", "--output", "out.csv"]) == 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds types outside the trusted list" in err[0], err


def test_train_refuses_to_write_a_pipeline_no_loader_would_read(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"holds types no loader trusts \(.*\.system\)"):
        save(FunctionTransformer(os.system), tmp_path / "model.skops")
    assert not (tmp_path / "model.skops").exists()


def test_a_corrupt_model_with_the_right_hash_is_one_clear_error(tmp_path: Path) -> None:
    model, meta = _trained(tmp_path)
    model.write_bytes(model.read_bytes()[:50])  # truncated, then "re-signed"
    _resign(model, meta)
    with pytest.raises(ModelError, match=r"model\.skops: cannot load"):
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
    with pytest.raises(ModelError, match=r"model\.skops: missing"):
        load(model, meta)
