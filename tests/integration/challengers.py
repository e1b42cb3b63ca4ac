"""Store a second model beside a tiny project's champion, for the rollout tests:

    python tests/integration/challengers.py PROJECT KIND OUT_DIR

prints {"tag": stored tag, "version": registry version or null}. Run in a subprocess with the
project's BENTOML_HOME and MLFLOW_TRACKING_URI. KIND is one of

- ``forest``: a random forest on the champion's features (a real, different model);
- ``strong``: gradient boosting on 20,000 fraud-rich synthetic rows, registered in the
  project's MLflow registry from a run of its own (so `mlops promote --challenger` finds it);
- ``weak``: the same on shuffled labels (valid, and no better than chance);
- ``broken``: the champion's feature step + an unfitted model step (raises on predict);
- ``narrow``: the champion itself, described with one input column fewer (incompatible).

The model is saved by the package stage's own ``save_model`` (ONNX check included), from
OUT_DIR, which gets its own models/ and a link to the project's test split.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from mlops_template.config import TrainParams, load_params
from mlops_template.model import (
    ModelMeta,
    column_roles,
    file_sha256,
    make_pipeline,
    read_pipeline,
    save,
)
from mlops_template.stages.package import save_model
from mlops_template.synthetic import generate_transactions


def model_step(kind: str, champion: Any, features: Any, train: pd.DataFrame, meta: Any) -> Any:
    if kind in ("champion", "narrow"):
        return champion
    if kind == "broken":
        return clone(champion)  # never fitted: predict raises NotFittedError
    p: dict[str, Any] = {}
    if kind == "forest":
        p = {"model": "random_forest", "random_forest": {"n_estimators": 40, "n_jobs": 1}}
    else:  # strong / weak: the same data, the weak one with its labels shuffled
        train = generate_transactions(20_000, fraud_rate=0.3, seed=1)
    X = features.transform(train.drop(columns=[meta.target]))
    y = train[meta.target].to_numpy()
    if kind == "weak":
        y = np.random.default_rng(0).permutation(y)
    pipeline = make_pipeline(meta.task, TrainParams.model_validate(p), column_roles(X))
    return pipeline.fit(X, y)


def register(name: str, out: Path) -> dict[str, Any]:
    """A finished run and a registered version from it (what `train` records in mlflow)."""
    from mlflow import MlflowClient

    from mlops_template.tracking import tracking_uri

    client = MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())
    experiment = client.get_experiment_by_name("rollout-tests")
    exp_id = experiment.experiment_id if experiment else client.create_experiment("rollout-tests")
    run = client.create_run(exp_id)
    client.set_terminated(run.info.run_id)
    mv = client.create_model_version(name, source=str(out / "models"), run_id=run.info.run_id)
    return {"run_id": run.info.run_id, "version": int(mv.version)}


def main(project: Path, kind: str, out: Path) -> dict[str, Any]:
    pipeline = read_pipeline(project / "models/model.skops")
    meta = ModelMeta.read(project / "models/model.json")
    train = pd.read_parquet(project / "data/split/train.parquet")
    features = pipeline.steps[0][1]
    step = model_step(kind, pipeline.steps[-1][1], features, train, meta)
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "data/split").mkdir(parents=True, exist_ok=True)
    test = out / "data/split/test.parquet"
    if not test.exists():
        test.symlink_to(project / "data/split/test.parquet")
    params = load_params(project / "params.yaml")
    os.chdir(out)
    save(Pipeline([("features", features), ("model", step)]), Path("models/model.skops"))
    columns = meta.input_columns[:-1] if kind == "narrow" else meta.input_columns
    meta = meta.model_copy(
        update={
            "model": kind,
            "input_columns": columns,
            "model_sha256": file_sha256(Path("models/model.skops")),
            "mlflow": register(params.tracking.registered_model, out) if kind == "strong" else None,
        }
    )
    meta.write()
    tag, _ = save_model(read_pipeline(Path("models/model.skops")), meta, {}, f"challenger-{kind}")
    return {"tag": tag, "version": (meta.mlflow or {}).get("version")}


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]).resolve(), sys.argv[2], Path(sys.argv[3]).resolve())))
