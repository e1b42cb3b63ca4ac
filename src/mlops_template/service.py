"""The BentoML service: `bentoml serve` from the repo root serves the latest packaged model.

The request schema comes from the same contract.yaml as training; the feature function runs
unchanged, then the model step runs in onnxruntime (if the `package` stage found it equal to
scikit-learn within 1e-6 on the test split) or in scikit-learn, so served predictions equal
the offline ones.

Speed levers (measured in bench/serving.py): pydantic already enforces the contract's types,
ranges, categories and nullability, so the model input is built column-wise from the validated
records in one step (no pandera pass, no list-of-dicts DataFrame); responses are serialised with
orjson; one BLAS/OpenMP thread per worker; ``serve.workers`` processes; and
``POST /predict_batched`` merges concurrent requests (adaptive batching).
"""

from __future__ import annotations

import os
import uuid
from typing import Annotated, Any

import bentoml
import orjson
import pandas as pd
from pydantic import AfterValidator, Field
from starlette.responses import Response

from mlops_template import paths
from mlops_template.config import load_params
from mlops_template.contract import load_contract, schema
from mlops_template.model import ModelMeta, decide
from mlops_template.onnx_path import OnnxModel, split_pipeline
from mlops_template.request_log import RequestLog
from mlops_template.request_schema import record_model, typed_column

MODEL_NAME = "mlops-template"
PREDICT_PATHS = ("/predict", "/predict_batched")
_PARAMS = load_params(os.environ.get("MLOPS_PARAMS", str(paths.PARAMS)))
_SERVE = _PARAMS.serve
_CONTRACT = load_contract(_PARAMS.data.contract)
_INPUTS = [c for c in _CONTRACT.columns if c != _CONTRACT.target]
_UNIQUE = [c for c in _INPUTS if _CONTRACT.columns[c].unique]
Record = record_model(_CONTRACT)


def _unique(records: list[Any]) -> list[Any]:
    """The contract's unique columns, checked per request (before adaptive batching merges)."""
    for name in _UNIQUE:
        if len({getattr(r, name) for r in records}) != len(records):
            raise ValueError(f"{name}: duplicate values (the data contract says unique)")
    return records


BatchRecords = Annotated[
    list[Record],  # type: ignore[valid-type]
    Field(min_length=1, max_length=_SERVE.max_rows),
    AfterValidator(_unique),
]
PREDICTIONS = bentoml.metrics.Counter(
    name="mlops_predictions", documentation="Predictions served, by class", labelnames=["label"]
)
REJECTED = bentoml.metrics.Counter(
    name="mlops_rejected_requests",
    documentation="Rejected requests (HTTP 4xx on the predict endpoints), by reason",
    labelnames=["reason"],
)


def _reason(status: int, body: bytes) -> str:
    """The error type of a 4xx body: pydantic's ``detail[0].type`` (our own rejections use the
    same shape), else the status code."""
    try:
        detail = orjson.loads(body).get("detail") or [{}]
        return str(detail[0].get("type") or status)
    except (orjson.JSONDecodeError, AttributeError, IndexError, TypeError):
        return str(status)


class RejectionCounter:
    """ASGI middleware: counts every 4xx of the predict endpoints by reason, including the ones
    BentoML raises while parsing the request (wrong types, missing fields, bad JSON)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") not in PREDICT_PATHS:
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = {"status": 0, "body": b""}

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body" and 400 <= state["status"] < 500:
                state["body"] += message.get("body", b"")[:65536]
                if not message.get("more_body"):
                    REJECTED.labels(reason=_reason(state["status"], state["body"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def _reject(reason: str, message: str) -> Response:
    """A 400 in pydantic's shape, naming the field (``loc``) and the problem (``msg``)."""
    body = {
        "error": f"records: {message}",
        "detail": [{"type": reason, "loc": ["records"], "msg": message}],
    }
    return Response(orjson.dumps(body), status_code=400, media_type="application/json")


def _dtypes() -> dict[str, str]:
    """Pandas dtypes the contract's pandera schema coerces to (what training saw)."""
    columns = schema(_CONTRACT, with_target=False).columns
    return {name: str(columns[name].dtype) for name in _INPUTS}


@bentoml.service(name="mlops_template", workers=_SERVE.workers, threads=_SERVE.threads)
class MlopsService:
    """POST /predict: a list of records -> prediction (+ probabilities) and model version.
    POST /predict_batched: the same, with concurrent requests merged (adaptive batching)."""

    model_ref = bentoml.models.BentoModel(f"{MODEL_NAME}:latest")

    def __init__(self) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # OpenMP/BLAS threads slow small-batch prediction; use workers
        model = bentoml.sklearn.load_model(self.model_ref)
        self.features, self.core = split_pipeline(model)
        self.meta = ModelMeta.model_validate_json(self.model_ref.info.metadata["model_meta"])
        self.runtime = "sklearn"
        stored = getattr(self.model_ref, "stored", self.model_ref)  # a Model once served
        onnx_bytes = stored.custom_objects.get("onnx")
        if onnx_bytes is not None and _SERVE.runtime == "auto":
            self.core, self.runtime = OnnxModel(onnx_bytes), "onnx"
        self.version = str(self.model_ref.tag)
        self.dtypes = _dtypes()
        self.log = RequestLog(os.environ.get("MLOPS_REQUEST_LOG", _SERVE.request_log))

    @bentoml.api
    def predict(self, records: list[Record]) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        if not records:
            return _reject("empty", "empty list, send at least one record")  # type: ignore[return-value]
        if len(records) > _SERVE.max_rows:
            message = f"{len(records)} rows, more than serve.max_rows={_SERVE.max_rows}"
            return _reject("too_many_rows", message)  # type: ignore[return-value]
        columns = self._columns(records)
        for name in _UNIQUE:
            if len(set(columns[name])) != len(records):
                message = f"{name}: duplicate values (the data contract says unique)"
                return _reject("contract", message)  # type: ignore[return-value]
        out = self._serve(columns)
        return Response(orjson.dumps(out), media_type="application/json")  # type: ignore[return-value]

    @bentoml.api(
        batchable=True,
        max_batch_size=_SERVE.batch_max_size,
        max_latency_ms=_SERVE.batch_max_latency_ms,
    )
    def predict_batched(self, records: BatchRecords) -> list[dict[str, Any]]:
        """Rows of concurrent requests are predicted in one call; each request is validated
        on its own first (schema, size, unique ids)."""
        return self._serve(self._columns(records))

    def _columns(self, records: list[Any]) -> dict[str, list[Any]]:
        return {name: [getattr(r, name) for r in records] for name in _INPUTS}

    def _serve(self, columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
        X = pd.DataFrame({name: typed_column(v, self.dtypes[name]) for name, v in columns.items()})
        out = self._predict(self.features.transform(X))
        for row in out:
            PREDICTIONS.labels(label=str(row["prediction"])).inc()
        self.log.append(uuid.uuid4().hex, self.version, columns, out)
        return out

    def _predict(self, features: pd.DataFrame) -> list[dict[str, Any]]:
        if self.meta.task == "regression":
            raw = self.core.predict(features)
        else:
            raw = self.core.predict_proba(features)
        return decide(raw, self.meta).records(self.meta.classes, self.version)


MlopsService.add_asgi_middleware(RejectionCounter)  # type: ignore[attr-defined]
