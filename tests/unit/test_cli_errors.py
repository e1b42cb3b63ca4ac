"""Every CLI failure is one line and an exit code; the traceback only with --verbose."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mlops_template import cli
from mlops_template.errors import ModelError

MLOPS = str(Path(sys.executable).parent / "mlops")
ROOT = Path(__file__).resolve().parents[2]


def test_a_file_the_os_refuses_is_one_line_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("a file where a folder should be")
    out = blocker / "batch.parquet"
    done = subprocess.run(
        [MLOPS, "synth", "--rows", "200", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and str(blocker) in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_unexpected_errors_are_one_line_and_verbose_shows_the_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cli, "_synth", broken)
    assert cli.main(["synth", "--output", "x.parquet"]) == 1
    err = capsys.readouterr().err
    assert "unexpected RuntimeError: disk on fire" in err and "Traceback" not in err
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main(["-v", "synth", "--output", "x.parquet"])


def test_project_errors_keep_their_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def tampered(args: object) -> None:
        raise ModelError("models/model.joblib: sha256 mismatch")

    monkeypatch.setattr(cli, "_synth", tampered)
    assert cli.main(["synth", "--output", "x.parquet"]) == ModelError.exit_code == 10
    assert "models/model.joblib: sha256 mismatch" in capsys.readouterr().err
