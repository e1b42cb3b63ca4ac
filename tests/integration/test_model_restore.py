"""A tampered model names the command that restores the committed pair, and that command
works in a real git + DVC repository (issue 22, finding 8: plain `dvc checkout` refuses to
overwrite a modified output and exits 255)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.repo import env

pytestmark = pytest.mark.integration

# the train stage's two outputs, written the way train writes them
WRITE_PAIR = """
from pathlib import Path
from sklearn.dummy import DummyClassifier
from mlops_template.model import ModelMeta, file_sha256, save
Path("models").mkdir(exist_ok=True)
save(DummyClassifier().fit([[0], [1]], [0, 1]), Path("models/model.skops"))
ModelMeta(task="binary", model="dummy", target="y", input_columns=["x"], classes=[0, 1],
          contract={"name": "t", "version": 1},
          model_sha256=file_sha256(Path("models/model.skops"))).write(Path("models/model.json"))
"""

DVC_YAML = f"""
stages:
  train:
    cmd: {sys.executable} write_pair.py
    deps: [write_pair.py]
    outs:
      - models/model.skops
      - models/model.json:
          cache: false
"""


def _sh(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, shell=True, cwd=root, env=env(), capture_output=True, text=True, timeout=300
    )


def test_the_named_restore_command_brings_back_the_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_template.errors import ModelError
    from mlops_template.model import load

    (tmp_path / "write_pair.py").write_text(WRITE_PAIR)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    for command in ("git init -q", "dvc init -q", "dvc repro -q", "git add -A", "git commit -qm t"):
        assert _sh(tmp_path, command).returncode == 0, command
    model, meta = tmp_path / "models/model.skops", tmp_path / "models/model.json"
    committed = model.read_bytes(), meta.read_text()
    model.write_bytes(committed[0] + b"tampered")
    meta.write_text(committed[1].replace('"dummy"', '"edited"'))

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as refused:
        load()
    assert _sh(tmp_path, "dvc checkout models/model.skops").returncode != 0  # what it said
    restore = re.search(r"`(git restore [^`]+)`", str(refused.value))
    assert restore, str(refused.value)
    done = _sh(tmp_path, restore.group(1))
    assert done.returncode == 0, done.stderr
    assert (model.read_bytes(), meta.read_text()) == committed
    assert load()[1].model == "dummy"
