from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.config import FeaturesParams
from mlops_template.errors import DataError
from mlops_template.features import build_features


def test_batch_equals_row_by_row(transactions, params):
    batch = build_features(transactions.head(300), params.features)
    rows = pd.concat([build_features(transactions.iloc[[i]], params.features) for i in range(300)])
    pd.testing.assert_frame_equal(batch, rows, check_dtype=False)


def test_declared_features_are_computed(transactions, params):
    out = build_features(transactions.head(50), params.features)
    assert {"timestamp_hour", "timestamp_weekday", "log_amount", "tenure_band"} <= set(out.columns)
    assert "transaction_id" not in out.columns and "timestamp" not in out.columns
    np.testing.assert_allclose(out["log_amount"], np.log1p(transactions["amount"].head(50)))
    assert out["is_fraud"].equals(transactions["is_fraud"].head(50))  # the label passes through
    assert out["card_present"].isin([0, 1]).all()


def test_ratio_by_zero_is_missing_not_infinite():
    spec = FeaturesParams(ratios=[{"name": "r", "numerator": "a", "denominator": "b"}])
    out = build_features(pd.DataFrame({"a": [1.0, 2.0], "b": [0, 4]}), spec)
    assert np.isnan(out["r"][0]) and out["r"][1] == 0.5


def test_bins_keep_missing_values_missing():
    spec = FeaturesParams(bins=[{"column": "x", "edges": [0, 10]}])
    out = build_features(pd.DataFrame({"x": [-1.0, 5.0, 50.0, np.nan]}), spec)
    assert out["x_bin"].tolist()[:3] == [0.0, 1.0, 2.0] and np.isnan(out["x_bin"][3])


def test_missing_input_column_is_named():
    spec = FeaturesParams(log=["amount"])
    with pytest.raises(DataError, match=r"features\.log: input column 'amount' is missing"):
        build_features(pd.DataFrame({"x": [1]}), spec)


def test_missing_strings_reach_the_model_the_same_way_from_every_path() -> None:
    """Rows coerced by the contract (serving, scoring, monitoring) hold pd.NA strings; rows
    read back from Parquet (training) hold NaN ones. The feature function hands the model
    one kind, so its imputer never meets pd.NA."""
    import pandas as pd

    from mlops_template.config import FeaturesParams
    from mlops_template.features import build_features

    coerced = pd.DataFrame({"channel": pd.array(["app", None], dtype="string[pyarrow]")})
    parquet = pd.DataFrame({"channel": pd.array(["app", None], dtype="str")})
    out = [build_features(f, FeaturesParams())["channel"] for f in (coerced, parquet)]
    assert out[0].dtype == out[1].dtype == "str"
    assert out[0].isna().tolist() == out[1].isna().tolist() == [False, True]
    assert out[0].iloc[1] is not pd.NA
