"""The data stage's split draws the same rows as scikit-learn's train_test_split (every
committed dataset was split with it) without importing scikit-learn."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from mlops_template.config import SplitParams
from mlops_template.contract import Contract
from mlops_template.errors import DataError
from mlops_template.stages.data import split, split_positions
from tests.repo import DEMO_CONTRACT

RNG = np.random.default_rng(0)
LABELS = {
    "rare binary": (RNG.random(5_003) < 0.015).astype("int64"),
    "balanced binary": RNG.integers(0, 2, 1_000),
    "multiclass strings": RNG.choice(np.array(["high", "low", "mid", "none"], dtype=object), 997),
    "tied remainders": np.repeat([0, 1, 2, 3], [7, 7, 7, 3]),
}


@pytest.mark.parametrize("name", sorted(LABELS))
@pytest.mark.parametrize("seed", [0, 42, 12345])
@pytest.mark.parametrize("test_size", [0.2, 0.25, 0.37])
def test_stratified_positions_equal_scikit_learns(name: str, seed: int, test_size: float):
    labels = LABELS[name]
    rows = np.arange(len(labels))
    want_train, want_test = train_test_split(
        rows, test_size=test_size, random_state=seed, stratify=labels
    )
    train, test = split_positions(len(labels), test_size, seed, labels)
    np.testing.assert_array_equal(train, want_train)
    np.testing.assert_array_equal(test, want_test)


@pytest.mark.parametrize("n", [10, 999, 100_000])
@pytest.mark.parametrize("seed", [0, 42])
def test_random_positions_equal_scikit_learns(n: int, seed: int):
    want_train, want_test = train_test_split(np.arange(n), test_size=0.2, random_state=seed)
    train, test = split_positions(n, 0.2, seed)
    np.testing.assert_array_equal(train, want_train)
    np.testing.assert_array_equal(test, want_test)


def test_split_frames_equal_train_test_split_on_the_demo_data(
    transactions: pd.DataFrame, contract: Contract
):
    params = SplitParams(method="stratified", test_size=0.2, seed=42)
    train, test = split(transactions, contract, "binary", params)
    want_train, want_test = train_test_split(
        transactions, test_size=0.2, random_state=42, stratify=transactions[contract.target]
    )
    pd.testing.assert_frame_equal(train, want_train.reset_index(drop=True))
    pd.testing.assert_frame_equal(test, want_test.reset_index(drop=True))


def test_a_class_with_one_row_is_a_data_error_naming_it(
    transactions: pd.DataFrame, contract: Contract
):
    frame = transactions.head(200).copy()
    frame[contract.target] = 0
    frame.loc[7, contract.target] = 1
    with pytest.raises(DataError, match=r"cannot split 200 rows: .*fewer than 2 rows.*\[1\]"):
        split(frame, contract, "binary", SplitParams(method="stratified"))


def test_the_data_stage_runs_without_loading_scikit_learn():
    """It used to import scikit-learn for train_test_split alone: about 1 s per run."""
    code = (
        "import sys\n"
        "from mlops_template.config import DataParams\n"
        "from mlops_template.contract import load_contract\n"
        "from mlops_template.stages.data import prepare\n"
        f"contract = load_contract({str(DEMO_CONTRACT)!r})\n"
        "params = DataParams.model_validate({'synthetic': {'n_rows': 500}})\n"
        "train, test = prepare(params, contract)\n"
        "print(len(train), len(test), 'sklearn' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["400", "100", "False"]
