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
        raise ModelError("models/model.skops: sha256 mismatch")

    monkeypatch.setattr(cli, "_synth", tampered)
    assert cli.main(["synth", "--output", "x.parquet"]) == ModelError.exit_code == 10
    assert "models/model.skops: sha256 mismatch" in capsys.readouterr().err


def test_invalid_yaml_in_params_is_one_line_naming_the_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("data:\n  task: binary\n  source: [oops\nfeatures: {}\n")
    assert cli.main(["--params", str(bad), "stage", "data"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{bad}: not valid YAML: line 4, column 9: expected ',' or ']'" in err[0]


@pytest.fixture
def scoring_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, transactions: object
) -> tuple[Path, list[str]]:
    """A folder with a model train could have written and a 50-row batch to score."""
    from sklearn.dummy import DummyClassifier

    from mlops_template.model import ModelMeta, file_sha256, save
    from tests.repo import DEMO_CONTRACT, DEMO_PARAMS

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    save(DummyClassifier().fit([[0], [1]], [0, 1]), Path("models/model.skops"))
    ModelMeta(
        task="binary",
        model="dummy",
        target="is_fraud",
        input_columns=["amount"],
        classes=[0, 1],
        contract={"name": "card-transactions", "version": 1},
        model_sha256=file_sha256(Path("models/model.skops")),
    ).write(Path("models/model.json"))
    batch = transactions.head(50).drop(columns=["is_fraud"])  # type: ignore[attr-defined]
    batch.to_csv("batch.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text(DEMO_PARAMS.read_text().replace("contract.yaml", str(DEMO_CONTRACT)))
    return tmp_path, ["--params", str(params), "score", "batch.csv"]


def test_score_exits_3_when_the_contract_rejected_every_row(
    scoring_project: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    root, command = scoring_project
    batch = pd.read_csv(root / "batch.csv")
    batch["amount"] = -5.0  # the contract's minimum is 0
    batch.to_csv(root / "batch.csv", index=False)
    assert cli.main([*command, "--output", "out.parquet"]) == 3
    err = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(err) == 1, err
    assert "batch.csv: the contract rejected all 50 rows, none scored" in err[0]
    assert "out.rejected.csv" in err[0] and (root / "out.rejected.csv").exists()


def test_score_refuses_an_output_folder_that_does_not_exist(
    scoring_project: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, command = scoring_project
    missing = root / "nonexistent" / "dir"
    assert cli.main([*command, "--output", str(missing / "x.parquet")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(err) == 1 and f"folder {missing} does not exist" in err[0], err
    assert not (root / "nonexistent").exists()
