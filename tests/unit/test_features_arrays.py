"""The service's pandas-free path (numpy arrays from validated records -> feature_columns ->
ONNX feeds) gives exactly what the DataFrame path training uses gives (build_features on the
contract-coerced frame -> feeds), missing values included."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_template.config import load_params
from mlops_template.contract import load_contract, schema
from mlops_template.features import build_features, feature_columns
from mlops_template.onnx_path import feeds
from mlops_template.serving.request_schema import array_column, record_model
from mlops_template.synthetic import generate_transactions
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    frame = generate_transactions(500, fraud_rate=0.1, seed=3).drop(columns=["is_fraud"])
    frame["customer_tenure_days"] = frame["customer_tenure_days"].astype("Int64")
    frame.loc[frame.index[::7], "customer_tenure_days"] = pd.NA
    frame.loc[frame.index[::5], "distance_from_home_km"] = np.nan
    frame.loc[frame.index[3], "txn_count_24h"] = 0  # a ratio's zero denominator
    return frame


@pytest.mark.parametrize("n", [1, 3, 500])
def test_array_path_equals_dataframe_path(rows: pd.DataFrame, n: int) -> None:
    params = load_params(DEMO_PARAMS)
    contract = load_contract(DEMO_CONTRACT)
    pandera = schema(contract, with_target=False)
    part = rows.head(n)
    records = json.loads(part.to_json(orient="records", date_format="iso"))
    Record = record_model(contract)
    validated = [Record.model_validate(r) for r in records]
    names = list(pandera.columns)
    dtypes = {c: str(pandera.columns[c].dtype) for c in names}
    arrays = {c: array_column([getattr(r, c) for r in validated], dtypes[c]) for c in names}

    served = feeds(feature_columns(arrays, params.features))
    trained = feeds(build_features(pandera.validate(part.reset_index(drop=True)), params.features))
    assert served.keys() == trained.keys()
    for name, expected in trained.items():
        got = served[name]
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        if expected.dtype == object:
            assert got.tolist() == expected.tolist(), name
        else:
            np.testing.assert_array_equal(got, expected, err_msg=name)
    assert np.isnan(served["tenure_band"]).any() if n >= 7 else True
