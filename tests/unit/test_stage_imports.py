"""Each stage's process loads only what that stage uses (issue 15: imports were a fixed cost
of seconds per stage). Importing the stage's module must not load these; the stage itself may
load them when it gets there (train and evaluate open MLflow only to log)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("sklearn", "scipy", "mlflow", "sqlalchemy", "optuna", "bentoml", "evidently")
# what each stage module may load when imported, of the heavy packages above
ALLOWED = {
    "data": set(),  # the split is numpy; no scikit-learn (about 1 s)
    "features": set(),
    "tune": set(),  # disabled by default: writes an empty override
    "train": {"sklearn", "scipy"},
    "evaluate": {"sklearn", "scipy"},
    "gate": set(),
}


@pytest.mark.parametrize("stage", sorted(ALLOWED))
def test_importing_a_stage_loads_only_what_it_uses(stage: str):
    code = (
        f"import sys, mlops_template.cli, mlops_template.stages.{stage}\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) <= ALLOWED[stage], out.stdout
