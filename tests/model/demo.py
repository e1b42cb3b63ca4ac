"""The demo's data and pipeline for model tests: a validated synthetic split, and the project's
own `train` on it with the demo's params (tweaked by the caller)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mlops_template.config import Params
from mlops_template.contract import load_contract, validate
from mlops_template.features import build_features
from mlops_template.stages.train import train
from mlops_template.synthetic import generate_transactions
from tests.repo import DEMO_CONTRACT


def demo_split(rows: int, seed: int, test_rows: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test) of ``rows`` validated synthetic transactions, the last ``test_rows`` test."""
    frame = validate(generate_transactions(rows, seed=seed), load_contract(DEMO_CONTRACT))
    cut = rows - test_rows
    return frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)


def fit_demo(train_raw: pd.DataFrame, params: Params) -> Any:
    """The inference pipeline `train` fits on ``train_raw`` with ``params``."""
    contract = load_contract(DEMO_CONTRACT)
    return train(
        build_features(train_raw, params.features),
        raw_columns=contract.feature_columns,
        target=contract.target,
        task="binary",
        params=params.train,
        feature_spec=params.features,
    ).model
