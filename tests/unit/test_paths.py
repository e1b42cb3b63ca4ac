"""dvc.yaml repeats the paths of paths.py: they must agree."""

from __future__ import annotations

from pathlib import Path

import yaml

from mlops_template import paths
from mlops_template.cli import STAGES

ROOT = Path(__file__).resolve().parents[2]


def _declared(stage: dict, key: str) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in stage.get(key, [])}


def test_stage_outputs_match_paths_module():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    outs = set().union(*(_declared(s, "outs") | _declared(s, "metrics") for s in stages.values()))
    for path in (
        paths.TRAIN_SPLIT,
        paths.TEST_SPLIT,
        paths.TRAIN_FEATURES,
        paths.TEST_FEATURES,
        paths.MODEL,
        paths.MODEL_META,
        paths.METRICS,
        paths.CV_METRICS,
        paths.PREDICTIONS,
        paths.SLICES,
        paths.PLOTS_DIR,
        paths.DATASET,
        paths.GATE_OK,
    ):
        assert str(path) in outs, f"{path} is not declared in dvc.yaml"


def test_every_stage_is_a_cli_stage():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        if stage["cmd"].startswith("mlops stage "):
            assert stage["cmd"].split()[-1] in STAGES, name


def test_environment_variable_names_are_written_once() -> None:
    """MLOPS_* names live in paths.py; telemetry variables in telemetry.env only."""
    import ast

    from mlops_template import paths as project_paths

    package = Path(project_paths.__file__).parent
    telemetry = set(project_paths.telemetry_defaults(package.parents[1] / "telemetry.env"))
    assert "MLFLOW_DISABLE_TELEMETRY" in telemetry
    for path in package.rglob("*.py"):
        if path.name == "paths.py" and path.parent == package:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named = node.value.startswith("MLOPS_") or node.value in telemetry
                assert not named, f"{path.relative_to(package)}: {node.value!r} (use paths.ENV_*)"
