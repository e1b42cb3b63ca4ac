"""LightGBM on a real LocalCluster: the model that comes home scores like the in-process one,
exports to ONNX within the package stage's tolerance, and needs no Dask to predict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlops_template import distributed
from mlops_template.config import DaskParams, Params, TrainParams, parse_params
from mlops_template.contract import load_contract, validate
from mlops_template.distributed_train import fit_lightgbm
from mlops_template.features import build_features
from mlops_template.onnx_path import OnnxModel, export
from mlops_template.stages.train import train
from mlops_template.synthetic import generate_transactions
from tests.repo import DEMO_CONTRACT


@pytest.fixture(scope="module")
def lgbm_params() -> Params:
    import yaml

    from tests.repo import DEMO_PARAMS

    raw = yaml.safe_load(DEMO_PARAMS.read_text())
    raw["train"]["model"] = "lightgbm"
    raw["train"]["cv"]["folds"] = 2
    raw["train"]["lightgbm"]["n_estimators"] = 100
    return parse_params(raw)


@pytest.fixture(scope="module")
def split() -> tuple[Any, Any]:
    contract = load_contract(DEMO_CONTRACT)
    frame = validate(generate_transactions(60_000, fraud_rate=0.1, seed=5), contract)
    return frame.iloc[:45_000].reset_index(drop=True), frame.iloc[45_000:].reset_index(drop=True)


def _train(features: Any, params: Params, fit_all: Any = None) -> Any:
    contract = load_contract(DEMO_CONTRACT)
    return train(
        features,
        raw_columns=contract.feature_columns,
        target=contract.target,
        task="binary",
        params=params.train,
        feature_spec=params.features,
        fit_all=fit_all,
    )


def test_cluster_lightgbm_matches_in_process_and_exports_to_onnx(
    cluster: Any, split: tuple[Any, Any], lgbm_params: Params, tmp_path: Path
) -> None:
    import dask.dataframe as dd
    from distributed import Client

    train_raw, test_raw = split
    features = build_features(train_raw, lgbm_params.features)
    local = _train(features, lgbm_params)
    dask = DaskParams(enabled=True, address=cluster.scheduler_address)
    with Client(cluster) as client:
        frame = dd.from_pandas(features, npartitions=4)
        remote = _train(
            features,
            lgbm_params,
            fit_all=lambda pipeline: fit_lightgbm(
                frame,
                pipeline=pipeline,
                target="is_fraud",
                task="binary",
                train=lgbm_params.train,
                dask=dask,
                client=client,
            ),
        )
    estimator = remote.model.steps[-1][1].steps[-1][1]
    assert type(estimator).__name__ == "LGBMClassifier"  # to_local(): no Dask inside
    assert remote.classes == local.classes
    X, y = test_raw.drop(columns=["is_fraud"]), test_raw["is_fraud"]
    auc_local = roc_auc_score(y, local.model.predict_proba(X)[:, 1])
    auc_remote = roc_auc_score(y, remote.model.predict_proba(X)[:, 1])
    assert abs(auc_remote - auc_local) <= 0.005, (auc_remote, auc_local)
    assert auc_remote > 0.75

    onnx_bytes, record = export(remote.model, X, "binary", tolerance=1e-5)
    assert onnx_bytes is not None and record["onnx_max_abs_diff"] <= 1e-5, record
    served = OnnxModel(onnx_bytes).predict_proba(remote.model.steps[0][1].transform(X))
    np.testing.assert_allclose(served, remote.model.predict_proba(X), rtol=0, atol=1e-5)

    from mlops_template.model import save

    save(remote.model, tmp_path / "model.skops")
    X.head(50).to_parquet(tmp_path / "rows.parquet")
    # Dask made unimportable in a fresh process (scikit-learn's array-API shim imports it
    # when present, so "not in sys.modules" cannot be the test): loading and predicting must
    # not need it.
    code = (
        "import sys, importlib.abc, pathlib, pandas as pd\n"
        "class NoDask(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('dask', 'distributed'):\n"
        "            raise ImportError('no dask here: ' + name)\n"
        "sys.meta_path.insert(0, NoDask())\n"
        "from mlops_template.model import read_pipeline\n"
        f"m = read_pipeline(pathlib.Path({str(tmp_path / 'model.skops')!r}))\n"
        f"p = m.predict_proba(pd.read_parquet({str(tmp_path / 'rows.parquet')!r}))\n"
        "print(p.shape, any(n.split('.')[0] in ('dask', 'distributed') for n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-800:]
    assert out.stdout.strip() == f"(50, {len(remote.classes)}) False", out.stdout


def test_in_process_models_refuse_dask() -> None:
    from mlops_template.errors import ConfigError

    for model in ("hist_gradient_boosting", "linear", "random_forest"):
        with pytest.raises(ConfigError, match=f"train.model: '{model}' trains in one process"):
            distributed.require_dask_model(model)
    distributed.require_dask_model("lightgbm")


def test_unreachable_scheduler_names_the_address() -> None:
    import socket

    from mlops_template.errors import ClusterError

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    with (
        pytest.raises(ClusterError, match=f"cannot reach the Dask scheduler at {address}"),
        distributed.connect(DaskParams(enabled=True, address=address)),
    ):
        pass


def test_a_worker_lost_while_lightgbm_trains_fails_the_fit_in_seconds(cluster: Any) -> None:
    """lightgbm.dask ties each part to its worker: without the watch a lost worker's part
    could run nowhere and the fit would wait for ever (LightGBM's own time_out is 120 min).
    Here the fit stops with one ClusterError (exit 11) soon after the worker dies."""
    import os
    import threading
    import time

    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client

    from mlops_template.errors import ClusterError
    from mlops_template.model import Roles, make_pipeline

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 5))
    frame = pd.DataFrame(X, columns=[f"x{j}" for j in range(5)])
    frame["y"] = (X[:, 0] + rng.normal(size=len(X)) > 0).astype(int)
    lgbm = TrainParams(model="lightgbm").with_overrides(
        {"n_estimators": 5000, "learning_rate": 0.01}
    )
    dask = DaskParams(enabled=True, sample_rows=1000, socket_timeout_minutes=1)
    with Client(cluster) as client:
        client.wait_for_workers(2)
        victim = sorted(client.scheduler_info()["workers"])[1]

        def kill_once_training() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                busy = client.processing(workers=[victim]).get(victim, ())
                if any("_train_part" in str(key) for key in busy):
                    break
                time.sleep(0.2)
            client.run(os._exit, 1, workers=[victim], on_error="ignore")

        killer = threading.Thread(target=kill_once_training, daemon=True)
        killer.start()
        start = time.monotonic()
        with pytest.raises(ClusterError) as failed:
            fit_lightgbm(
                dd.from_pandas(frame, npartitions=4),
                pipeline=make_pipeline("binary", lgbm, Roles([f"x{j}" for j in range(5)], [], [])),
                target="y",
                task="binary",
                train=lgbm,
                dask=dask,
                client=client,
            )
        elapsed = time.monotonic() - start
        killer.join(5)
    assert failed.value.exit_code == 11
    assert "train on Dask" in str(failed.value) and "lost" in str(failed.value)
    assert elapsed < 60, f"{elapsed:.0f} s"
