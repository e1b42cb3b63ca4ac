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


def _ulps(got: np.ndarray, want: np.ndarray) -> float:
    finite = np.isfinite(want) & (want != 0)
    return float((np.abs(got[finite] - want[finite]) / np.spacing(np.abs(want[finite]))).max())


def _edge_values() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.concatenate(
        [
            rng.lognormal(0, 3, 20_000),
            -rng.random(5_000),
            rng.uniform(-1e-12, 1e-12, 500),
            [0.0, 5e-324, 1e-300, 1.0, 2.0**53 + 2, 1e308, np.inf, -1.0, -2.0, np.nan],
        ]
    )


def _reference(f, x: np.ndarray, *, lo: float, hi: float, below: float, above: float):
    """The C library's value inside (lo, hi), the IEEE special values outside."""
    out = []
    for v in x.tolist():
        if v != v:
            out.append(np.nan)
        elif lo < v < hi:
            out.append(f(v))
        else:
            out.append(below if v <= lo else above)
    return np.array(out)


def test_portable_log1p_is_within_one_ulp_with_the_same_special_values() -> None:
    import math

    from mlops_template.features import log1p

    x = _edge_values()
    want = _reference(math.log1p, x, lo=-1.0, hi=math.inf, below=np.nan, above=np.inf)
    want[x == -1.0] = -np.inf
    got = log1p(x)
    assert _ulps(got, want) <= 1.0
    np.testing.assert_array_equal(got[~np.isfinite(want)], want[~np.isfinite(want)])


def test_portable_exp_is_within_one_ulp_with_the_same_special_values() -> None:
    import math

    from mlops_template.features import exp

    x = np.concatenate([np.linspace(-745.1, 709.78, 30_001), [-746.0, 710.0, -np.inf, np.inf]])
    x = np.append(x, np.nan)
    want = _reference(math.exp, x, lo=-745.2, hi=709.782712893384, below=0.0, above=np.inf)
    got = exp(x)
    assert _ulps(got, want) <= 1.0
    np.testing.assert_array_equal(got[-5:], want[-5:])


@pytest.mark.parametrize("exponent", [0.5, 2, 3, -1, 0, 1.3, -0.7])
def test_portable_power_matches_numpy_closely(exponent: float) -> None:
    from mlops_template.features import power

    x = np.concatenate([np.random.default_rng(1).lognormal(0, 2, 5_000), [-8.0, 0.0, np.nan]])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.sign(x) * np.abs(x) ** exponent
    np.testing.assert_allclose(power(x, exponent), want, rtol=2e-15, equal_nan=True)


@pytest.mark.parametrize("name", ["log1p", "exp"])
def test_few_values_give_the_same_bits_as_many(name: str) -> None:
    """Serving's one-row path (Python floats) and a batch (numpy blocks) run one algorithm."""
    import mlops_template.features as features

    f = getattr(features, name)
    x = _edge_values() if name == "log1p" else np.linspace(-746, 711, 20_003)
    pieces = np.concatenate([f(x[i : i + 3]) for i in range(0, x.size, 3)])
    np.testing.assert_array_equal(f(x), pieces)
