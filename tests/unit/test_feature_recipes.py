"""Every kind of feature recipe in params.yaml is tested with known values (this file fails
when a new kind is added to FeaturesParams without a case here), and a feature declared in
params only reaches the trained model and its predictions with no code change."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template.config import FeaturesParams, load_params
from mlops_template.features import build_features
from tests.repo import DEMO_PARAMS

FRAME = pd.DataFrame(
    {
        # Sat 2024-03-02 03:15, Mon 2024-12-30 23:00, missing
        "t": pd.to_datetime(["2024-03-02 03:15", "2024-12-30 23:00", None]),
        "a": [1.0, 4.0, np.nan],
        "b": [3.0, -2.0, 5.0],
    }
)
nan = np.nan
# recipe kind -> (params of that kind, expected new columns)
CASES: dict[str, tuple[dict[str, Any], dict[str, list[float]]]] = {
    "datetime": (
        {
            "datetime": [
                {
                    "column": "t",
                    "parts": ["hour", "weekday", "day", "month", "is_weekend", "is_night"],
                }
            ]
        },
        {
            "t_hour": [3, 23, nan],
            "t_weekday": [5, 0, nan],
            "t_day": [2, 30, nan],
            "t_month": [3, 12, nan],
            "t_is_weekend": [1, 0, nan],
            "t_is_night": [1, 0, nan],
        },
    ),
    "log": ({"log": ["a"]}, {"log_a": [np.log(2), np.log(5), nan]}),
    "power": (
        {"power": [{"column": "b", "exponent": 0.5}]},
        {"b_pow_0.5": [np.sqrt(3), -np.sqrt(2), np.sqrt(5)]},
    ),
    "bins": ({"bins": [{"column": "b", "edges": [0, 4], "name": "b_band"}]}, {"b_band": [1, 0, 2]}),
    "ratios": (
        {"ratios": [{"name": "a_per_b", "numerator": "a", "denominator": "b"}]},
        {"a_per_b": [1 / 3, -2, nan]},
    ),
    "aggregates": (
        {
            "aggregates": [
                {"name": "s", "columns": ["a", "b"], "func": "sum"},
                {"name": "m", "columns": ["a", "b"], "func": "max"},
            ]
        },
        {"s": [4, 2, 5], "m": [3, 4, 5]},
    ),
    "drop": ({"drop": ["a"]}, {}),
}


def test_every_recipe_kind_has_a_case() -> None:
    assert set(CASES) == set(FeaturesParams.model_fields)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_recipe_computes_known_values(kind: str) -> None:
    spec, expected = CASES[kind]
    out = build_features(FRAME, FeaturesParams.model_validate(spec))
    for name, values in expected.items():
        np.testing.assert_allclose(out[name].to_numpy(dtype="float64"), values, err_msg=name)
    dropped = set(spec.get("drop", []))
    assert set(out.columns) == (set(FRAME.columns) - dropped) | set(expected)


def test_a_feature_declared_in_params_reaches_the_model(transactions: pd.DataFrame) -> None:
    from mlops_template.model import model_output
    from mlops_template.stages.train import train

    params = load_params(DEMO_PARAMS)
    params.train.cv.folds = 2
    params.train.hist_gradient_boosting.max_iter = 10
    params.features.aggregates = [
        {"name": "risk_sum", "columns": ["txn_count_24h", "distance_from_home_km"], "func": "sum"}
    ]
    columns = [c for c in transactions.columns if c != "is_fraud"]
    fit = train(
        build_features(transactions, params.features),
        raw_columns=columns,
        target="is_fraud",
        task="binary",
        params=params.train,
        feature_spec=params.features,
    )
    estimator = fit.model[-1]
    assert "risk_sum" in estimator.feature_names_in_  # after the feature step, in the model
    served = model_output(fit.model, transactions[columns].head(5), "binary")  # raw rows in
    assert served.shape == (5,) and np.isfinite(served).all()
