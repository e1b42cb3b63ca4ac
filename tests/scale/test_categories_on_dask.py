"""Categorical columns on a real LocalCluster: the few-valued ones reach LightGBM as its own
categoricals (the same columns as in process), and a 2,000-value one is target-encoded from a
Dask group-by over every training row (not the 500-row sample that fits the rest of the
preprocessing): the saved encoder equals scikit-learn's fitted on the whole split, and the
model scores like the in-process one and exports to ONNX."""

from __future__ import annotations

from typing import Any

import numpy as np
from bench.merchant_table import merchants
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import TargetEncoder

from mlops_template.config import DaskParams, FeaturesParams, TrainParams
from mlops_template.distributed_train import fit_lightgbm
from mlops_template.features import feature_transformer
from mlops_template.model import column_roles, make_pipeline
from mlops_template.onnx_path import export


def test_categories_on_the_cluster(cluster: Any) -> None:
    import dask.dataframe as dd
    from distributed import Client

    train, test = merchants(30_000, seed=1), merchants(10_000, seed=2)
    X = train.drop(columns=["is_fraud"])
    roles = column_roles(X)
    assert roles.high_cardinality == ["merchant"] and roles.categorical == ["channel"]
    params = TrainParams().model_copy(update={"model": "lightgbm"})
    local = make_pipeline("binary", params, roles).fit(X, train["is_fraud"])
    dask = DaskParams(enabled=True, address=cluster.scheduler_address, sample_rows=500)
    with Client(cluster) as client:
        remote = fit_lightgbm(
            dd.from_pandas(train, npartitions=4),
            pipeline=make_pipeline("binary", params, roles),
            target="is_fraud",
            task="binary",
            train=params,
            dask=dask,
            client=client,
        )
    estimator = remote.steps[-1][1]
    assert type(estimator).__name__ == "LGBMClassifier"
    assert estimator.get_params()["categorical_column"] == [1]  # amount, channel, merchant
    encoder = remote.steps[0][1].named_transformers_["high_cardinality"].named_steps["encode"]
    everything = TargetEncoder(target_type="binary").fit(X[["merchant"]], train["is_fraud"])
    np.testing.assert_array_equal(encoder.categories_[0], everything.categories_[0])
    assert len(encoder.categories_[0]) == train["merchant"].nunique()  # not the sample's ~450
    np.testing.assert_allclose(encoder.encodings_[0], everything.encodings_[0], atol=1e-12)
    X_test = test.drop(columns=["is_fraud"])
    auc_local = roc_auc_score(test["is_fraud"], local.predict_proba(X_test)[:, 1])
    auc_remote = roc_auc_score(test["is_fraud"], remote.predict_proba(X_test)[:, 1])
    assert abs(auc_remote - auc_local) <= 0.01, (auc_remote, auc_local)
    assert auc_remote > 0.75
    # the encoder filled from the group-by still converts: ONNX within the package's tolerance
    served = Pipeline([("features", feature_transformer(FeaturesParams())), ("model", remote)])
    onnx_bytes, record = export(served, X_test, "binary")
    assert record["runtime"] == "onnx" and onnx_bytes is not None, record
