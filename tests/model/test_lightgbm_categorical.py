"""`train.model: lightgbm` gets its low-cardinality string columns as LightGBM categoricals
(integer codes; a missing or unseen value is missing to LightGBM) and its numbers with NaN
kept: it splits on sets of categories, a value it never saw does not crash it, the saved
model keeps it all, and ONNX still matches within the package stage's tolerance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from mlops_template.config import FeaturesParams, TrainParams
from mlops_template.features import feature_transformer
from mlops_template.model import AsFloat, ModelMeta, column_roles, file_sha256, load, save
from mlops_template.model import make_pipeline as make_core
from mlops_template.onnx_path import TOLERANCE, OnnxModel, export

SHOPS = [f"shop_{i:02d}" for i in range(12)]
RISKY = {"shop_01", "shop_04", "shop_07", "shop_10"}  # not a range of codes: needs a set split


def shop_table(rows: int, seed: int) -> pd.DataFrame:
    """``shop`` (12 strings, 5 % missing) decides the label through a set of shops; ``amount``
    is missing on 10 % of rows, which are positive: only its missingness carries a signal."""
    rng = np.random.default_rng(seed)
    shop = pd.Series(rng.choice(SHOPS, rows), dtype="str")
    shop[rng.random(rows) < 0.05] = np.nan
    amount = rng.lognormal(3, 1, rows)
    never = rng.random(rows) < 0.1
    amount[never] = np.nan
    label = (shop.isin(RISKY).to_numpy() & (rng.random(rows) < 0.9)) | never
    return pd.DataFrame(
        {"shop": shop, "amount": amount, "noise": rng.normal(size=rows), "y": label.astype(int)}
    )


def _fit(frame: pd.DataFrame, target: str, task: str, trees: int = 50) -> Pipeline:
    """The saved inference pipeline's shape: [features (none declared) -> model.make_pipeline]."""
    params = TrainParams().model_copy(update={"model": "lightgbm"})
    params = params.with_overrides({"n_estimators": trees})
    X = frame.drop(columns=[target])
    core = make_core(task, params, column_roles(X))  # type: ignore[arg-type]
    pipeline = Pipeline([("features", feature_transformer(FeaturesParams())), ("model", core)])
    return pipeline.fit(X, frame[target])


@pytest.fixture(scope="module")
def shops() -> tuple[Pipeline, pd.DataFrame]:
    return _fit(shop_table(6000, seed=0), "y", "binary"), shop_table(2000, seed=1)


def _booster(pipeline: Pipeline) -> Any:
    return pipeline.steps[-1][1].steps[-1][1].booster_


def test_string_columns_reach_lightgbm_as_categories(shops: tuple[Pipeline, Any]) -> None:
    pipeline, test = shops
    core = pipeline.steps[-1][1]
    preprocess = core.named_steps["preprocess"]
    assert isinstance(preprocess.named_transformers_["numeric"], AsFloat)  # no imputer
    assert isinstance(preprocess.named_transformers_["categorical"], OrdinalEncoder)
    position = list(preprocess.get_feature_names_out()).index("shop")
    assert core.named_steps["estimator"].get_params()["categorical_column"] == [position]
    splits = _booster(pipeline).trees_to_dataframe()
    on_shop = splits[splits["split_feature"] == f"Column_{position}"]
    assert (on_shop["decision_type"] == "==").any()  # a split on a set of shops
    proba = pipeline.predict_proba(test.drop(columns=["y"]))[:, 1]
    assert roc_auc_score(test["y"], proba) > 0.9


def test_missing_numbers_keep_their_signal(shops: tuple[Pipeline, Any]) -> None:
    """``amount`` is missing exactly on the rows that are positive regardless of the shop: kept
    as NaN, LightGBM learns that; the median would have erased it."""
    pipeline, test = shops
    proba = pipeline.predict_proba(test.drop(columns=["y"]))[:, 1]
    never = test["amount"].isna().to_numpy()
    safe = ~never & ~test["shop"].isin(RISKY).to_numpy()
    assert proba[never].min() > 0.8 > 0.2 > proba[safe].max()


def test_an_unseen_shop_is_scored_like_a_missing_one(shops: tuple[Pipeline, Any]) -> None:
    pipeline, test = shops
    rows = test.drop(columns=["y"]).head(50)
    unseen = pipeline.predict_proba(rows.assign(shop="a shop opened after training"))
    missing = pipeline.predict_proba(rows.assign(shop=pd.Series(np.nan, rows.index, dtype="str")))
    np.testing.assert_array_equal(unseen, missing)
    assert np.isfinite(unseen).all()


def test_onnx_matches_with_categories_unseen_and_missing(shops: tuple[Pipeline, Any]) -> None:
    """onnxmltools converts LightGBM's set splits (a chain of equality tests) and skl2onnx the
    codes: within the tolerance on rows with unseen and missing shops and missing amounts."""
    pipeline, test = shops
    X = test.drop(columns=["y"]).copy()
    X.loc[X.index[:100], "shop"] = "a shop opened after training"
    onnx_bytes, record = export(pipeline, X, "binary")
    assert record["runtime"] == "onnx" and onnx_bytes is not None, record
    assert record["onnx_max_abs_diff"] <= TOLERANCE
    served = OnnxModel(onnx_bytes).predict_proba(X)
    np.testing.assert_allclose(served, pipeline.predict_proba(X), rtol=0, atol=TOLERANCE)


def grunfeld() -> pd.DataFrame:
    """A real table (statsmodels ships it): investment of 11 US firms (a string column) over 20
    years."""
    from statsmodels.datasets import grunfeld as data

    frame: pd.DataFrame = data.load_pandas().data
    return frame


def test_a_real_table_round_trips_through_skops_and_onnx(tmp_path: Path) -> None:
    """Grunfeld's investments: the firm as a category, the model saved and loaded as every
    reader loads it (the trusted types cover the codes), the same predictions, a firm the
    model never saw included, and the ONNX graph within float32's rounding."""
    frame = grunfeld().sample(frac=1.0, random_state=0).reset_index(drop=True)
    train, test = frame.iloc[:170], frame.iloc[170:].drop(columns=["invest"])
    pipeline = _fit(train, "invest", "regression", trees=100)
    assert r2_score(frame.iloc[170:]["invest"], pipeline.predict(test)) > 0.3  # mean: 0
    test = pd.concat([test, test.head(5).assign(firm="Standard Oil")], ignore_index=True)
    model, meta = tmp_path / "model.skops", tmp_path / "model.json"
    save(pipeline, model)
    ModelMeta(
        task="regression",
        model="lightgbm",
        target="invest",
        input_columns=list(test.columns),
        contract={"name": "grunfeld", "version": 1},
        model_sha256=file_sha256(model),
    ).write(meta)
    loaded = load(model, meta)[0]
    np.testing.assert_array_equal(loaded.predict(test), pipeline.predict(test))
    estimator = loaded.steps[-1][1].steps[-1][1]
    assert estimator.get_params()["categorical_column"] == [3]  # value, capital, year, firm
    _, record = export(loaded, test, "regression")
    # converted, set splits included; LightGBM's ONNX trees sum in float32, so investments
    # of hundreds differ by float32's rounding, which the gate's tolerance scales with (a
    # wrong branch differs by far more): served with onnxruntime
    assert record["runtime"] == "onnx", record
    assert record["onnx_max_abs_diff"] <= 1e-6 * float(np.abs(pipeline.predict(test)).max())
