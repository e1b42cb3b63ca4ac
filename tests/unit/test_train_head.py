"""train reads only the rows of the input example from the training split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_template.stages.train import head


@pytest.mark.parametrize("rows", [1, 100, 5000])
def test_head_is_read_parquet_head(tmp_path: Path, transactions: pd.DataFrame, rows: int):
    path = tmp_path / "train.parquet"
    transactions.to_parquet(path, index=False, row_group_size=700)
    want = pd.read_parquet(path).head(rows)
    pd.testing.assert_frame_equal(head(path, rows), want)


def test_head_of_an_empty_file_has_the_columns(tmp_path: Path, transactions: pd.DataFrame):
    path = tmp_path / "empty.parquet"
    transactions.head(0).to_parquet(path, index=False)
    assert list(head(path, 100).columns) == list(transactions.columns)
    assert head(path, 100).empty
