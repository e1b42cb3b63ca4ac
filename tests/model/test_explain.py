"""`mlops explain`: contributions add up, unused columns get nothing, known effects show, and
an additive model is explained exactly (a real public table)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from mlops_template.config import load_params
from mlops_template.contract import load_contract, validate
from mlops_template.explain import explain
from mlops_template.features import build_features
from mlops_template.model import ModelMeta
from mlops_template.stages.train import train
from mlops_template.synthetic import generate_transactions
from tests.repo import DEMO_CONTRACT, DEMO_PARAMS


@pytest.fixture(scope="module")
def demo() -> tuple[object, ModelMeta, pd.DataFrame]:
    params = load_params(DEMO_PARAMS)
    params.train.cv.folds = 2
    contract = load_contract(DEMO_CONTRACT)
    frame = validate(generate_transactions(32_000, seed=5), contract)
    fit = train(
        build_features(frame.iloc[:30_000], params.features),
        raw_columns=contract.feature_columns,
        target=contract.target,
        task="binary",
        params=params.train,
        feature_spec=params.features,
    )
    meta = ModelMeta(
        task="binary",
        model=params.train.model,
        target=contract.target,
        id_column=contract.id,
        input_columns=fit.input_columns,
        classes=fit.classes,
        threshold=fit.threshold,
        contract={"name": contract.name},
    )
    return fit.model, meta, frame.iloc[30_000:].drop(columns=[contract.target])


def test_contributions_add_up_to_output_minus_background_mean(demo) -> None:
    model, meta, held_out = demo
    row, background = held_out.iloc[[0]], held_out.iloc[1:]
    result = explain(model, meta, row, background, permutations=8)
    total = result.contributions["contribution"].sum()
    assert total == pytest.approx(result.output - result.baseline, abs=1e-9)
    proba = model.predict_proba(row[meta.input_columns])[0, 1]
    assert result.output == pytest.approx(proba, abs=1e-12)
    assert result.explained == "P(1)"


def test_a_column_the_model_never_uses_gets_exactly_nothing(demo) -> None:
    model, meta, held_out = demo
    result = explain(model, meta, held_out.iloc[[3]], held_out.iloc[10:], permutations=8)
    by_column = result.contributions.set_index("column")["contribution"]
    assert by_column["transaction_id"] == 0.0  # dropped by features.drop


def test_a_high_velocity_charge_is_blamed_on_its_velocity(demo) -> None:
    """Directional, as the generator says: 9 card charges in 24 h raise the fraud risk, so
    the same rows explained with 9 instead of 1 credit the velocity column with more risk."""
    model, meta, held_out = demo
    background = held_out.iloc[20:]

    def velocity_share(row: pd.DataFrame) -> float:
        result = explain(model, meta, row, background, permutations=8)
        return float(result.contributions.set_index("column").loc["txn_count_24h", "contribution"])

    rows = [held_out.iloc[[i]] for i in range(10)]
    busy = np.array([velocity_share(r.assign(txn_count_24h=9)) for r in rows])
    calm = np.array([velocity_share(r.assign(txn_count_24h=1)) for r in rows])
    assert (busy > calm).all() and (busy > 0).mean() >= 0.9, (busy, calm)


def test_an_additive_model_is_explained_exactly_on_the_diabetes_table() -> None:
    """Ridge on the diabetes table: each column's Shapley value is w_j (x_j - mean b_j)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_diabetes(as_frame=True)
    X, y = data.data, data.target
    model = Pipeline([("scale", StandardScaler()), ("ridge", Ridge())])
    model.fit(X, y)
    meta = ModelMeta(
        task="regression",
        model="linear",
        target="target",
        input_columns=list(X.columns),
        contract={"name": "diabetes"},
    )
    row, background = X.iloc[[7]], X.iloc[100:150]
    result = explain(model, meta, row, background, permutations=4, background_rows=50)
    w = model["ridge"].coef_ / model["scale"].scale_
    expected = pd.Series(w * (row.iloc[0] - background.mean()).to_numpy(), index=X.columns)
    got = result.contributions.set_index("column")["contribution"]
    np.testing.assert_allclose(got[X.columns].to_numpy(), expected.to_numpy(), atol=1e-9)
    assert result.explained == "value"


def test_a_multiclass_model_is_explained_for_its_predicted_class() -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(data.data, data.target)
    meta = ModelMeta(
        task="multiclass",
        model="linear",
        target="species",
        input_columns=list(data.data.columns),
        classes=[0, 1, 2],
        contract={"name": "iris"},
    )
    row = data.data.iloc[[120]]  # a virginica
    result = explain(model, meta, row, data.data, permutations=8)
    assert result.explained == "P(2)"
    assert result.output == pytest.approx(model.predict_proba(row)[0, 2], abs=1e-12)
    total = result.contributions["contribution"].sum()
    assert total == pytest.approx(result.output - result.baseline, abs=1e-9)
    assert result.contributions["column"].iloc[0].startswith("petal")
