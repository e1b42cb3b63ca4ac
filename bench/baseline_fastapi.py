"""The plain FastAPI + uvicorn app a user would otherwise write (benchmark baseline).

joblib-loaded pipeline, a pandas DataFrame built from the JSON records of every request,
``predict_proba``, a list of dicts back. Run:
``MLOPS_MODEL=models/model.joblib uvicorn --app-dir bench baseline_fastapi:app --workers 1``.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import pandas as pd
from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()
model = joblib.load(os.environ.get("MLOPS_MODEL", "models/model.joblib"))
classes = [c.item() if hasattr(c, "item") else c for c in model.classes_]


class Request(BaseModel):
    records: list[dict[str, Any]]


@app.post("/predict")
def predict(request: Request) -> list[dict[str, Any]]:
    frame = pd.DataFrame(request.records)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    proba = model.predict_proba(frame)
    return [
        {
            "prediction": classes[row.argmax()],
            "probabilities": {str(c): float(p) for c, p in zip(classes, row, strict=True)},
        }
        for row in proba
    ]
