"""Shared fixtures: shrink the real params.yaml and contract, never invent fake ones."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.repo import DEMO_CONTRACT, DEMO_PARAMS, TELEMETRY

ROOT = Path(__file__).resolve().parents[1]

for key, value in TELEMETRY.items():
    os.environ.setdefault(key, value)

# Under pytest-xdist every core already runs a test process: one OpenMP thread each (and in
# the stages they start). Each process's scikit-learn threads spinning at barriers against
# the other's made the model tests 2.2x slower on 2 cores (docs/benchmarks.md). Set before
# anything loads OpenMP; an explicit OMP_NUM_THREADS wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def raw_params() -> dict[str, Any]:
    """params.yaml as a plain mapping, for tests to shrink and override."""
    return yaml.safe_load(DEMO_PARAMS.read_text())


@pytest.fixture
def params(raw_params: dict[str, Any]):
    from mlops_template.config import parse_params

    raw_params["data"]["synthetic"]["n_rows"] = 3000
    raw_params["train"]["cv"]["folds"] = 2
    raw_params["train"]["hist_gradient_boosting"]["max_iter"] = 30
    return parse_params(raw_params)


@pytest.fixture
def contract():
    from mlops_template.contract import load_contract

    return load_contract(DEMO_CONTRACT)


@pytest.fixture
def transactions(contract):
    """A small, contract-valid synthetic batch."""
    from mlops_template.contract import validate
    from mlops_template.synthetic import generate_transactions

    return validate(generate_transactions(3000, seed=7), contract)
