"""The BentoML service: `bentoml serve` from the repo root serves the latest packaged model.

The request schema comes from the same contract.yaml as training; the model is the whole
training pipeline (feature step included), so served predictions equal the offline ones.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import InvalidArgument
from pandera.errors import SchemaError, SchemaErrors

from mlops_template import paths
from mlops_template.config import load_params
from mlops_template.contract import load_contract, schema
from mlops_template.request_log import RequestLog
from mlops_template.request_schema import record_model

MODEL_NAME = "mlops-template"
_PARAMS = load_params(os.environ.get("MLOPS_PARAMS", str(paths.PARAMS)))
_CONTRACT = load_contract(_PARAMS.data.contract)
Record = record_model(_CONTRACT)
PREDICTIONS = bentoml.metrics.Counter(
    name="mlops_predictions", documentation="Predictions served, by class", labelnames=["label"]
)
REJECTED = bentoml.metrics.Counter(
    name="mlops_rejected_requests",
    documentation="Requests rejected after schema parsing, by reason",
    labelnames=["reason"],
)


@bentoml.service(name="mlops_template", workers=_PARAMS.serve.workers)
class MlopsService:
    """POST /predict: a list of records -> prediction (+ probabilities) and model version."""

    model_ref = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(self.model_ref)
        self.meta: dict[str, Any] = dict(self.model_ref.info.metadata)
        self.version = str(self.model_ref.tag)
        self.task = self.meta["task"]
        self.classes = list(self.meta.get("classes") or [])
        self.schema = schema(_CONTRACT, with_target=False)
        self.log = RequestLog(os.environ.get("MLOPS_REQUEST_LOG", _PARAMS.serve.request_log))

    def _frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        frame = pd.DataFrame(rows, columns=[c for c in _CONTRACT.columns if c != _CONTRACT.target])
        try:
            return self.schema.validate(frame, lazy=True)
        except (SchemaError, SchemaErrors) as err:  # a contract check pydantic did not cover
            REJECTED.labels(reason="contract").inc()
            raise InvalidArgument(f"records: violates the data contract: {err}") from None

    @bentoml.api
    def predict(self, records: list[Record]) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        if not records:
            REJECTED.labels(reason="empty").inc()
            raise InvalidArgument("records: empty list, send at least one record")
        if len(records) > _PARAMS.serve.max_rows:
            REJECTED.labels(reason="too_many_rows").inc()
            raise InvalidArgument(
                f"records: {len(records)} rows, more than serve.max_rows={_PARAMS.serve.max_rows}"
            )
        rows = [r.model_dump() for r in records]  # type: ignore[attr-defined]
        X = self._frame(rows)
        out = self._predict(X)
        for row in out:
            PREDICTIONS.labels(label=str(row["prediction"])).inc()
        self.log.append(uuid.uuid4().hex, self.version, rows, out)
        return out

    def _predict(self, X: pd.DataFrame) -> list[dict[str, Any]]:
        if self.task == "regression":
            values = np.asarray(self.model.predict(X), dtype="float64")
            return [{"prediction": float(v), "model_version": self.version} for v in values]
        proba = np.asarray(self.model.predict_proba(X), dtype="float64")
        labels = [self.classes[i] for i in proba.argmax(axis=1)]
        names = [str(c) for c in self.classes]
        return [
            {
                "prediction": label,
                "probabilities": dict(zip(names, map(float, p), strict=True)),
                "model_version": self.version,
            }
            for label, p in zip(labels, proba, strict=True)
        ]
