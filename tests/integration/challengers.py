"""Store a second model beside a tiny project's champion, for the rollout tests:

    python tests/integration/challengers.py PROJECT KIND OUT_DIR   (prints the stored tag)

Run in a subprocess with the project's BENTOML_HOME. KIND is one of

- ``forest``: a random forest on the champion's features (a real, different model);
- ``weak``: a one-iteration gradient boosting (valid, clearly worse);
- ``broken``: the champion's feature step + an unfitted model step (raises on predict);
- ``narrow``: the champion itself, described with one input column fewer (incompatible).

The model is saved by the package stage's own ``save_model`` (ONNX check included), from
OUT_DIR, which gets its own models/ and a link to the project's test split.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import joblib
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from mlops_template.config import TrainParams
from mlops_template.model import ModelMeta, column_roles, file_sha256, make_pipeline
from mlops_template.package import save_model


def model_step(kind: str, champion: Any, X: pd.DataFrame, y: pd.Series, task: Any) -> Any:
    if kind in ("champion", "narrow"):
        return champion
    if kind == "broken":
        return clone(champion)  # never fitted: predict raises NotFittedError
    if kind == "forest":
        p = {"model": "random_forest", "random_forest": {"n_estimators": 40, "n_jobs": 1}}
    else:  # weak: one stump
        p = {"hist_gradient_boosting": {"max_iter": 1, "max_leaf_nodes": 2, "learning_rate": 0.01}}
    pipeline = make_pipeline(task, TrainParams.model_validate(p), column_roles(X))
    return pipeline.fit(X, y)


def main(project: Path, kind: str, out: Path) -> str:
    pipeline = joblib.load(project / "models/model.joblib")
    meta = ModelMeta.read(project / "models/model.json")
    train = pd.read_parquet(project / "data/split/train.parquet")
    features = pipeline.steps[0][1]
    X = features.transform(train.drop(columns=[meta.target]))
    step = model_step(kind, pipeline.steps[-1][1], X, train[meta.target], meta.task)
    (out / "models").mkdir(parents=True, exist_ok=True)
    (out / "data/split").mkdir(parents=True, exist_ok=True)
    test = out / "data/split/test.parquet"
    if not test.exists():
        test.symlink_to(project / "data/split/test.parquet")
    os.chdir(out)
    joblib.dump(Pipeline([("features", features), ("model", step)]), "models/model.joblib")
    columns = meta.input_columns[:-1] if kind == "narrow" else meta.input_columns
    meta = meta.model_copy(
        update={
            "model": kind,
            "input_columns": columns,
            "model_sha256": file_sha256(Path("models/model.joblib")),
            "mlflow": None,
        }
    )
    meta.write()
    tag, _ = save_model(joblib.load("models/model.joblib"), meta, {}, f"challenger-{kind}")
    return tag


if __name__ == "__main__":
    print(main(Path(sys.argv[1]).resolve(), sys.argv[2], Path(sys.argv[3]).resolve()))
