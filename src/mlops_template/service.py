"""The BentoML service: serves exactly the model the `package` stage recorded.

Which model: ``bentoml serve ... --arg model_tag=NAME:VERSION`` if given (a Bento built by the
package stage records its model's tag this way), else the ``model_tag`` of
reports/package.json; never ``latest``, which a second project sharing the BentoML store could
replace. Responses, ``/readyz`` and ``GET /version`` carry that tag.

The model's files are checked against the sha256 the package stage recorded before anything is
unpickled: ``bentoml serve`` exits with one line when the stored copy is corrupt, and a worker
whose model still fails to load answers 503 with the reason instead of restarting forever.

The request schema comes from the same contract.yaml as training; the feature function runs
unchanged, then the model step runs in onnxruntime (if the `package` stage found it equal to
scikit-learn within 1e-6 on the test split) or in scikit-learn, so served predictions equal
the offline ones.

:class:`~mlops_template.request_guard.RequestGuard` (ASGI middleware) checks what is cheap to
check before BentoML parses a request: the content type (415), the body size (413, unread),
the number of records (400, without validating any of them); it also bounds error bodies,
throttles repeated refusals and counts every rejection by reason.

Speed levers (measured in bench/serving.py): pydantic already enforces the contract's types,
ranges, categories and nullability, so the model input is built column-wise from the validated
records in one step (no pandera pass, no list-of-dicts DataFrame); responses are serialised with
orjson; one BLAS/OpenMP thread per worker; ``serve.workers`` processes; and
``POST /predict_batched`` merges concurrent requests (adaptive batching). A valid ``/predict``
body is answered by :meth:`MlopsService.fast` from the request guard, without BentoML's API
layer (the same :meth:`MlopsService.answer`); anything else takes BentoML's path, so errors do
not change.

Trust: SIGTERM drains (:mod:`~mlops_template.drain`) and the request log is written out before
a worker exits; model outputs that are not finite are never returned (500, counted in
``mlops_failed_predictions_total``); the log's dropped rows and failed writes are on /metrics.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import bentoml
import numpy as np
import orjson
import pandas as pd
from bentoml.exceptions import NotFound
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from mlops_template import drain, paths
from mlops_template.config import FeaturesParams, load_params
from mlops_template.contract import load_contract, schema
from mlops_template.errors import ModelError
from mlops_template.features import build_features, feature_columns
from mlops_template.model import ModelMeta, decide, file_sha256
from mlops_template.onnx_path import OnnxModel, split_pipeline
from mlops_template.request_guard import HEALTH, RequestGuard, reject
from mlops_template.request_log import RequestLog
from mlops_template.request_schema import array_column, record_model, typed_column

log = logging.getLogger(__name__)
_PARAMS = load_params(os.environ.get("MLOPS_PARAMS", str(paths.PARAMS)))
_SERVE = _PARAMS.serve
_CONTRACT = load_contract(_PARAMS.data.contract)
_INPUTS = [c for c in _CONTRACT.columns if c != _CONTRACT.target]
_UNIQUE = [c for c in _INPUTS if _CONTRACT.columns[c].unique]
Record = record_model(_CONTRACT)


class ServeArgs(BaseModel):
    """``bentoml serve|build ... --arg model_tag=NAME:VERSION``: the model to serve."""

    model_tag: str = ""


def served_tag(record: Path = paths.PACKAGE) -> tuple[str, str]:
    """(the model tag to serve, where it came from), or ("", why there is none): importing
    the service never fails for it; serving does, with that line."""
    tag = bentoml.use_arguments(ServeArgs).model_tag
    if tag:
        return tag, "--arg model_tag"
    try:
        return str(json.loads(record.read_text())["model_tag"]), str(record)
    except (OSError, ValueError, KeyError, TypeError):
        why = "run the package stage (dvc repro) or pass --arg model_tag=NAME:VERSION"
        return "", f"{record}: no model_tag recorded; {why}"


_TAG, _TAG_SOURCE = served_tag()


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
FAILED = bentoml.metrics.Counter(
    name="mlops_failed_predictions",
    documentation="Predict requests answered 5xx by the service, by reason",
    labelnames=["reason"],
)
FAILED.labels(reason="non_finite_output")  # exposed (0) before the first one
LOG_DROPPED = bentoml.metrics.Counter(
    name="mlops_request_log_dropped",
    documentation="Rows not written to the request log: its queue was full (this worker)",
)
LOG_ERRORS = bentoml.metrics.Counter(
    name="mlops_request_log_errors",
    documentation="Failed writes to the request log (this worker; rows lost, see its log)",
)


class PredictBody(BaseModel):
    """The body of POST /predict as the fast path reads it (no extra keys: anything it does
    not accept goes to BentoML, which answers as before)."""

    model_config = ConfigDict(extra="forbid")
    records: list[Record]  # type: ignore[valid-type]


# --------------------------------------------------------------------------- the model


def verified_file(stored: Any, name: str, key: str) -> Path:
    """A file of the stored model, after its sha256 matched the one recorded at packaging
    (metadata ``key``): a truncated or swapped copy is never unpickled."""
    path = Path(stored.path_of(name))
    expected = str(stored.info.metadata.get(key, ""))
    if not path.is_file():
        raise ModelError(f"{path}: missing from the stored model {stored.tag}")
    actual = file_sha256(path)
    if actual != expected:
        raise ModelError(
            f"{path}: sha256 {actual[:12]}… is not the {expected[:12] or 'none'}… recorded when "
            f"{stored.tag} was packaged: the stored copy is corrupt or changed "
            "(delete it and re-run the package stage)"
        )
    return path


def check_stored(tag: str) -> Any:
    """The stored model ``tag`` with every file it serves from checked."""
    if not tag:
        raise ModelError(_TAG_SOURCE)
    try:
        stored = bentoml.models.get(tag)
    except NotFound:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise ModelError(f"model {tag}: not in the BentoML store ({home})") from None
    verified_file(stored, paths.STORE_MODEL_FILE, "model_sha256")
    if "onnx_sha256" in stored.info.metadata:
        verified_file(stored, paths.STORE_ONNX_FILE, "onnx_sha256")
    return stored


def _unpickle(stored: Any) -> Any:
    """The pipeline of a checked stored model; one error naming the file if it does not load
    although its hash matched (written by another library version, say)."""
    import joblib

    path = stored.path_of(paths.STORE_MODEL_FILE)
    try:
        return joblib.load(path)
    except Exception as err:
        raise ModelError(f"{path}: cannot load ({type(err).__name__}: {err})") from None


def trained_at(meta: ModelMeta, stored: Any) -> datetime:
    """When the model was trained (``mlflow.trained_at`` of models/model.json), else when it
    was packaged (the BentoML model's creation time): the model age /readyz reports."""
    recorded = (meta.mlflow or {}).get("trained_at")
    when = datetime.fromisoformat(recorded) if recorded else stored.info.creation_time
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _not_finite(rows: int, bad: int, version: str) -> Response:
    FAILED.labels(reason="non_finite_output").inc()
    message = f"model {version} returned NaN or infinity for {bad} of {rows} rows"
    log.error("%s: answered 500, not logged", message)
    return reject("non_finite_output", message, status=500, loc="model")


def _dtypes() -> dict[str, str]:
    """Pandas dtypes the contract's pandera schema coerces to (what training saw)."""
    columns = schema(_CONTRACT, with_target=False).columns
    return {name: str(columns[name].dtype) for name in _INPUTS}


@bentoml.service(name="mlops_template", workers=_SERVE.workers, threads=_SERVE.threads)
class MlopsService:
    """POST /predict: a list of records -> prediction (+ probabilities) and model version.
    POST /predict_batched: the same, with concurrent requests merged (adaptive batching)."""

    # a class attribute, so the Bento packs it (none without a tag: serving then stops, naming
    # the reason, instead of BentoML looking for a model called "")
    model_ref = bentoml.models.BentoModel(_TAG) if _TAG else None

    @bentoml.on_deployment
    def check_model() -> None:
        """Once, in the `bentoml serve` process, before any worker starts: a missing or
        corrupt model stops the server with one line, not a loop of crashing workers."""
        try:
            check_stored(_TAG)
        except ModelError as err:
            raise SystemExit(f"mlops_template.service: cannot serve: {err}") from None

    def __init__(self) -> None:
        HEALTH.model_tag, HEALTH.source = _TAG, _TAG_SOURCE
        try:
            self._load()
        except Exception as err:  # any cause: answered as 503 + reason, never a restart loop
            cause = str(err) if isinstance(err, ModelError) else f"{type(err).__name__}: {err}"
            HEALTH.failure = f"model {_TAG} not loaded: {cause}"[:1000]
            log.error("%s", HEALTH.failure)

    def _load(self) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # OpenMP/BLAS threads slow small-batch prediction; use workers
        stored = check_stored(_TAG)
        self.features, self.core = split_pipeline(_unpickle(stored))
        self.meta = ModelMeta.model_validate_json(stored.info.metadata["model_meta"])
        self.runtime = "sklearn"
        if "onnx_sha256" in stored.info.metadata and _SERVE.runtime == "auto":
            onnx_bytes = Path(stored.path_of(paths.STORE_ONNX_FILE)).read_bytes()
            self.core, self.runtime = OnnxModel(onnx_bytes), "onnx"
        self.version = str(stored.tag)
        self.dtypes = _dtypes()
        # ONNX and the project's feature function: numpy arrays end to end, no DataFrame
        self.spec = None
        if self.runtime == "onnx" and getattr(self.features, "func", None) is build_features:
            self.spec = FeaturesParams.model_validate(self.features.kw_args["spec"])
        self.log = RequestLog(
            os.environ.get("MLOPS_REQUEST_LOG", _SERVE.request_log),
            on_dropped=LOG_DROPPED.inc,
            on_error=LOG_ERRORS.inc,
        )
        HEALTH.trained_at = trained_at(self.meta, stored)
        HEALTH.info = {"model_sha256": self.meta.model_sha256, "runtime": self.runtime}
        HEALTH.fast = self.fast

    @bentoml.on_startup
    def drain_on_sigterm(self) -> None:
        drain.install(_SERVE.graceful_timeout)

    @bentoml.on_shutdown
    def write_out_log(self) -> None:
        if hasattr(self, "log") and not self.log.close(_SERVE.graceful_timeout):
            log.error("request log: rows still queued after %gs", _SERVE.graceful_timeout)

    async def fast(self, body: bytes) -> Response | None:
        """A valid /predict body answered without BentoML's API layer; None otherwise."""
        try:
            records = PredictBody.model_validate(orjson.loads(body)).records
        except (orjson.JSONDecodeError, ValidationError):
            return None
        try:
            return self.answer(records)
        except Exception:  # as BentoML answers an API's exception: logged, a generic 500
            log.exception("POST /predict failed")
            error = {"error": "An unexpected error has occurred, please check the server log."}
            return Response(orjson.dumps(error), status_code=500, media_type="application/json")

    @bentoml.api
    def predict(self, records: list[Record]) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        return self.answer(records)  # type: ignore[return-value]

    def answer(self, records: list[Any]) -> Response:
        if not records:
            return reject("empty", "empty list, send at least one record")
        if len(records) > _SERVE.max_rows:
            message = f"{len(records)} rows, more than serve.max_rows={_SERVE.max_rows}"
            return reject("too_many_rows", message)
        columns = self._columns(records)
        for name in _UNIQUE:
            if len(set(columns[name])) != len(records):
                message = f"{name}: duplicate values (the data contract says unique)"
                return reject("contract", message)
        out = self._serve(columns)
        if isinstance(out, Response):
            return out
        return Response(orjson.dumps(out), media_type="application/json")

    @bentoml.api(
        batchable=True,
        max_batch_size=_SERVE.batch_max_size,
        max_latency_ms=_SERVE.batch_max_latency_ms,
    )
    def predict_batched(self, records: BatchRecords) -> list[dict[str, Any]]:
        """Rows of concurrent requests are predicted in one call; each request is validated
        on its own first (schema, size, unique ids)."""
        out = self._serve(self._columns(records))
        if isinstance(out, Response):  # a 500 (BentoML hides its text; the server log has it)
            raise bentoml.exceptions.InternalServerError(bytes(out.body).decode())
        return out

    def _columns(self, records: list[Any]) -> dict[str, list[Any]]:
        return {name: [getattr(r, name) for r in records] for name in _INPUTS}

    def _serve(self, columns: dict[str, list[Any]]) -> list[dict[str, Any]] | Response:
        if self.spec is not None:
            arrays = {name: array_column(v, self.dtypes[name]) for name, v in columns.items()}
            out = self._predict(feature_columns(arrays, self.spec))
        else:
            X = pd.DataFrame({n: typed_column(v, self.dtypes[n]) for n, v in columns.items()})
            out = self._predict(self.features.transform(X))
        if isinstance(out, Response):
            return out
        for row in out:
            PREDICTIONS.labels(label=str(row["prediction"])).inc()
        self.log.append(uuid.uuid4().hex, self.version, columns, out)
        return out

    def _predict(self, features: pd.DataFrame | dict[str, Any]) -> list[dict[str, Any]] | Response:
        if self.meta.task == "regression":
            raw = self.core.predict(features)
        else:
            raw = self.core.predict_proba(features)
        raw = np.asarray(raw, dtype="float64")
        finite = np.isfinite(raw).reshape(len(raw), -1).all(axis=1)
        if not finite.all():
            return _not_finite(len(raw), int((~finite).sum()), self.version)
        return decide(raw, self.meta).records(self.meta.classes, self.version)


MlopsService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuard,
    max_rows=_SERVE.max_rows,
    body_limit=_SERVE.body_limit,
    refusals_per_second=_SERVE.refusals_per_second,
)
