"""The plain FastAPI + uvicorn apps a user would otherwise write (benchmark peers).

``app``: the old baseline, the whole scikit-learn pipeline (read from its skops file) on a
DataFrame built from
the JSON records of every request. Run:
``MLOPS_MODEL=models/model.skops uvicorn --app-dir bench baseline_fastapi:app --workers 1``.

``fair``: the fair peer of this service, written by hand: a pydantic request model with the
same fields (built from the same contract), a DataFrame with the training dtypes, the same
feature function, the same ONNX model in onnxruntime, FastAPI's own JSON response. Run with
``MLOPS_MODEL`` (the pipeline: its feature step is used) and ``MLOPS_ONNX`` (the model step's
ONNX file from the BentoML store): ``uvicorn --app-dir bench baseline_fastapi:fair``.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

from mlops_template.model import read_pipeline

app = FastAPI()
fair = FastAPI()


@cache
def _pipeline() -> Any:
    return read_pipeline(Path(os.environ.get("MLOPS_MODEL", "models/model.skops")))


@cache
def _classes() -> list[Any]:
    return [c.item() if hasattr(c, "item") else c for c in _pipeline().classes_]


class Request(BaseModel):
    records: list[dict[str, Any]]


@app.post("/predict")
def predict(request: Request) -> list[dict[str, Any]]:
    frame = pd.DataFrame(request.records)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    proba = _pipeline().predict_proba(frame)
    return _rows(proba, _classes())


def _rows(proba: Any, classes: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "prediction": classes[row.argmax()],
            "probabilities": {str(c): float(p) for c, p in zip(classes, row, strict=True)},
        }
        for row in proba
    ]


# ------------------------------------------------------------------ the fair peer


def _fair_setup() -> tuple[type[BaseModel], dict[str, str], Any, Any]:
    from threadpoolctl import threadpool_limits

    from mlops_template.config import load_params
    from mlops_template.contract import load_contract, schema
    from mlops_template.onnx_path import OnnxModel
    from mlops_template.serving.request_schema import record_model

    threadpool_limits(1)
    contract = load_contract(load_params().data.contract)
    inputs = schema(contract, with_target=False).columns
    dtypes = {name: str(column.dtype) for name, column in inputs.items()}
    onnx = OnnxModel(Path(os.environ["MLOPS_ONNX"]).read_bytes())
    return record_model(contract), dtypes, _pipeline().steps[0][1], onnx


if "MLOPS_ONNX" in os.environ:
    Record, DTYPES, FEATURES, ONNX = _fair_setup()

    class FairRequest(BaseModel):
        records: list[Record]  # type: ignore[valid-type]

    @fair.post("/predict")
    def fair_predict(request: FairRequest) -> list[dict[str, Any]]:
        frame = pd.DataFrame([r.model_dump() for r in request.records]).astype(DTYPES)
        proba = ONNX.predict_proba(FEATURES.transform(frame))
        return _rows(proba, _classes())
