"""The BentoML service: serves exactly the model the `package` stage recorded.

Which model: ``bentoml serve ... --arg model_tag=NAME:VERSION`` if given (a Bento built by the
package stage records its model's tag this way), else the ``model_tag`` of
reports/package.json; never ``latest``, which a second project sharing the BentoML store could
replace. Responses, ``/readyz`` and ``GET /version`` carry that tag; ``GET /model-card`` serves
the card stored with that model (:mod:`~mlops_template.serving.model_card`).

The model's files are checked against the sha256 the package stage recorded before anything is
read (:mod:`~mlops_template.serving.stored_model`): ``bentoml serve`` exits with one line
when the stored copy is corrupt, and a worker whose model still fails to load answers 503 with the
reason instead of restarting forever. Nothing is unpickled: the scikit-learn pipeline is a skops
file (only trusted types are built), and with the ONNX runtime it is not even read: the feature
step is rebuilt from the recipe stored in the model's metadata.

The request schema comes from the same contract.yaml as training; the feature function runs
unchanged, then the model step runs in onnxruntime (if the `package` stage found it equal to
scikit-learn within 1e-6 on the test split) or in scikit-learn, so served predictions equal
the offline ones.

:class:`~mlops_template.serving.request_guard.RequestGuard` (ASGI middleware) checks what is
cheap to check before BentoML parses a request: the content type (415), the body size (413, unread),
the number of records (400, without validating any of them); it also bounds error bodies,
throttles repeated refusals and counts every rejection by reason.

Speed levers (measured in bench/serving.py): pydantic already enforces the contract's types,
ranges, categories and nullability, so the model input is built column-wise from the validated
records in one step (no pandera pass, no list-of-dicts DataFrame); responses are serialised with
orjson; one BLAS/OpenMP thread per worker; ``serve.workers`` processes; and
``POST /predict_batched`` merges concurrent requests (adaptive batching).

Safe rollout (``serve.strategy``, :mod:`mlops_template.serving.rollout`): a second model, the
challenger, is loaded beside the champion; ``shadow`` predicts every request with it off the
response path, ``canary`` / ``ab`` let it answer the rows whose route key hashes into
``serve.challenger_share``. Each logged and counted prediction names its role.

A valid ``/predict`` body is answered by :meth:`MlopsService.fast` from the request guard,
without BentoML's API layer (the same :meth:`MlopsService._respond`); anything else takes
BentoML's path, so errors do not change. With a single model and ONNX, a request's columns go
to the ONNX feeds as numpy arrays (:func:`~mlops_template.features.feature_columns`).

Trust: SIGTERM drains (:mod:`~mlops_template.serving.drain`) and the request log is written out
before a worker exits; model outputs that are not finite are never returned (500, counted in
``mlops_failed_predictions_total``); the log's dropped rows and failed writes are on /metrics.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypeAlias

import bentoml
import numpy as np
import orjson
import pandas as pd
from bentoml.exceptions import NotFound
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import Headers
from starlette.responses import Response

from mlops_template import paths
from mlops_template.config import load_params
from mlops_template.contract import load_contract, schema
from mlops_template.errors import MlopsError, ModelError
from mlops_template.model import ModelMeta
from mlops_template.request_log import RequestLog
from mlops_template.serving import drain
from mlops_template.serving.model_card import ModelCardRoute
from mlops_template.serving.request_guard import HEALTH, RequestGuard, reject
from mlops_template.serving.request_schema import array_column, record_model, typed_column
from mlops_template.serving.rollout import routing
from mlops_template.serving.rollout.shadow import Shadow
from mlops_template.serving.stored_model import (
    LoadedModel,
    NonFiniteOutput,
    check_stored,
    request_log_path,
    stored_model,
)

log = logging.getLogger(__name__)
_PARAMS = load_params(os.environ.get(paths.ENV_PARAMS, str(paths.PARAMS)))
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


def rollout_plan() -> tuple[routing.Rollout, str]:
    """(the rollout to run, "") or (single, why serve.strategy cannot run): like the tag,
    importing the service never fails for it; serving does."""
    if _SERVE.strategy == "single":
        return routing.Rollout(), ""
    try:
        tag = routing.challenger_tag(_SERVE.challenger, _PARAMS.tracking.registered_model)
        return routing.plan(_PARAMS, tag, _INPUTS, _CONTRACT.id), ""
    except Exception as err:  # a registry error, a bad key: one line when serving starts
        return routing.Rollout(), str(err)


_ROLLOUT, _ROLLOUT_ERROR = rollout_plan()


def readable(tag: str) -> str:
    """ "", or why the store's description of model ``tag`` cannot be read: BentoML reads it
    before any hook of ours runs (a traceback of 123 lines), so such a model is not handed to
    BentoML and serving stops with this line instead."""
    if not tag:
        return ""
    try:
        stored_model(tag)
    except ModelError as err:
        return str(err)
    except NotFound:  # check_stored says so
        pass
    return ""


_UNREADABLE = readable(_TAG) or readable(_ROLLOUT.challenger)


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
    name="mlops_predictions",
    documentation="Predictions made, by class and role (champion, challenger, shadow)",
    labelnames=["label", "role"],
)
MODEL_LATENCY = bentoml.metrics.Histogram(
    name="mlops_model_latency_seconds",
    documentation="Time of one model call (feature step + model), by role",
    labelnames=["role"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
SHADOW_FAILURES = bentoml.metrics.Counter(
    name="mlops_shadow_failures",
    documentation="Shadow predictions lost: the challenger raised (error) or its queue was full",
    labelnames=["reason"],
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


def _not_finite(err: NonFiniteOutput) -> Response:
    FAILED.labels(reason="non_finite_output").inc()
    log.error("%s: answered 500, not logged", err)
    return reject("non_finite_output", str(err), status=500, loc="model")


Rows: TypeAlias = pd.DataFrame | dict[str, Any]  # a DataFrame, or typed numpy arrays by column


def _len(X: Rows) -> int:
    return len(X) if isinstance(X, pd.DataFrame) else len(next(iter(X.values())))


def _take(X: Rows, where: list[int]) -> Rows:
    if isinstance(X, pd.DataFrame):
        return X.iloc[where].reset_index(drop=True)
    return {name: values[where] for name, values in X.items()}


def _concat(parts: list[Rows]) -> Rows:
    if isinstance(parts[0], pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def _rows(item: tuple[str, dict[str, list[Any]], Rows]) -> int:
    return _len(item[2])


def check_challenger(rollout: routing.Rollout, error: str, champion: Any) -> None:
    """The challenger is stored intact and can stand in for the ``champion`` (a checked stored
    model: same task, classes, input columns), else one line naming serve.challenger."""
    if error:
        raise ModelError(error)
    if not rollout.challenger:
        return
    stored = check_stored(rollout.challenger)
    ours = ModelMeta.model_validate_json(str(champion.info.metadata["model_meta"]))
    theirs = ModelMeta.model_validate_json(str(stored.info.metadata["model_meta"]))
    if why := routing.incompatibility(ours, theirs):
        raise ModelError(f"serve.challenger {rollout.challenger}: refused, {why}")


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
    model_ref = bentoml.models.BentoModel(_TAG) if _TAG and not _UNREADABLE else None
    challenger_ref = (
        bentoml.models.BentoModel(_ROLLOUT.challenger)
        if _ROLLOUT.challenger and not _UNREADABLE
        else None
    )

    @bentoml.on_deployment
    def check_model() -> None:
        """Once, in the `bentoml serve` process, before any worker starts: a missing or
        corrupt model stops the server with one line, not a loop of crashing workers."""
        try:
            if _UNREADABLE:
                raise ModelError(_UNREADABLE)
            check_challenger(_ROLLOUT, _ROLLOUT_ERROR, check_stored(_TAG, _TAG_SOURCE))
            request_log_path(_SERVE.request_log)
        except MlopsError as err:
            raise SystemExit(f"mlops_template.serving.service: cannot serve: {err}") from None

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
        self.champion = LoadedModel.load(_TAG, _SERVE.runtime)
        self.meta, self.version = self.champion.meta, self.champion.version
        self.challenger = (
            LoadedModel.load(_ROLLOUT.challenger, _SERVE.runtime) if _ROLLOUT.challenger else None
        )
        self.dtypes = _dtypes()
        self.log = RequestLog(  # pii is never logged; losses are counted on /metrics
            request_log_path(_SERVE.request_log),
            drop=_CONTRACT.pii_columns,
            on_dropped=LOG_DROPPED.inc,
            on_error=LOG_ERRORS.inc,
        )
        # numpy arrays instead of a DataFrame: one model, ONNX, the project's feature function
        # typed numpy arrays straight to the feature code and ONNX when every model can take
        # them (both ONNX with the project's feature step); else a DataFrame
        models = [m for m in (self.champion, self.challenger) if m is not None]
        self.arrays = all(m.spec is not None for m in models)
        self.shadow = None
        if self.challenger and _ROLLOUT.strategy == "shadow":
            failed = SHADOW_FAILURES.labels
            self.shadow = Shadow(self._shadow, lambda why: failed(reason=why).inc(), size=_rows)
        for reason in Shadow.REASONS:  # exposed at 0 before the first failure
            SHADOW_FAILURES.labels(reason=reason)
        HEALTH.trained_at = self.champion.trained_at
        HEALTH.info = {"model_sha256": self.meta.model_sha256, "runtime": self.champion.runtime}
        if self.challenger:
            HEALTH.info |= {"strategy": _ROLLOUT.strategy, "challenger": self.challenger.version}
        HEALTH.fast = self.fast

    @bentoml.on_startup
    def drain_on_sigterm(self) -> None:
        drain.install(_SERVE.graceful_timeout)

    @bentoml.on_shutdown
    def write_out_log(self) -> None:
        if hasattr(self, "log") and not self.log.close(_SERVE.graceful_timeout):
            log.error("request log: rows still queued after %gs", _SERVE.graceful_timeout)

    async def fast(self, body: Any, headers: Headers) -> Response | None:
        """A valid /predict body (parsed by the request guard) answered without BentoML's API
        layer; None otherwise."""
        try:
            records = PredictBody.model_validate(body).records
        except ValidationError:
            return None
        try:
            return self._respond(records, headers)
        except Exception:  # as BentoML answers an API's exception: logged, a generic 500
            log.exception("POST /predict failed")
            error = {"error": "An unexpected error has occurred, please check the server log."}
            return Response(orjson.dumps(error), status_code=500, media_type="application/json")

    @bentoml.api
    def predict(self, records: list[Record], ctx: bentoml.Context) -> list[dict[str, Any]]:  # type: ignore[valid-type]
        response = self._respond(records, ctx.request.headers)
        # BentoML answers an API that takes ctx with ctx's status, whatever it returns
        ctx.response.status_code = response.status_code
        return response  # type: ignore[return-value]

    def _respond(self, records: list[Any], headers: Any) -> Response:
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
        try:
            out = self._serve(columns, headers)
        except NonFiniteOutput as err:
            return _not_finite(err)
        return Response(orjson.dumps(out), media_type="application/json")

    @bentoml.api(
        batchable=True,
        max_batch_size=_SERVE.batch_max_size,
        max_latency_ms=_SERVE.batch_max_latency_ms,
    )
    def predict_batched(self, records: BatchRecords) -> list[dict[str, Any]]:
        """Rows of concurrent requests are predicted in one call; each request is validated
        on its own first (schema, size, unique ids)."""
        try:
            return self._serve(self._columns(records))
        except NonFiniteOutput as err:  # a 500 (BentoML hides its text; the server log has it)
            _not_finite(err)
            raise bentoml.exceptions.InternalServerError(str(err)) from None

    def _columns(self, records: list[Any]) -> dict[str, list[Any]]:
        return {name: [getattr(r, name) for r in records] for name in _INPUTS}

    def _serve(self, columns: dict[str, list[Any]], headers: Any = None) -> list[dict[str, Any]]:
        request_id = uuid.uuid4().hex
        X: Rows
        if self.arrays:
            X = {n: array_column(v, self.dtypes[n]) for n, v in columns.items()}
            if not self.challenger:
                return self._answer(request_id, self.champion, routing.CHAMPION, columns, X)
        else:
            X = pd.DataFrame({n: typed_column(v, self.dtypes[n]) for n, v in columns.items()})
        if _ROLLOUT.splits and self.challenger:
            mask = _ROLLOUT.to_challenger(columns, headers)
            if all(mask):  # a header key, or a 1-row request: no split needed
                return self._answer(request_id, self.challenger, routing.CHALLENGER, columns, X)
            if any(mask):
                return self._split(request_id, columns, X, mask)
        out = self._answer(request_id, self.champion, routing.CHAMPION, columns, X)
        if self.shadow:
            self.shadow.submit((request_id, columns, X))
        return out

    def _answer(
        self,
        request_id: str,
        model: LoadedModel,
        role: str,
        columns: dict[str, list[Any]],
        X: pd.DataFrame | dict[str, Any],
    ) -> list[dict[str, Any]]:
        """One model's predictions of these rows, counted, timed and logged with its role."""
        start = time.perf_counter()
        out = model.predict(X)
        seconds = time.perf_counter() - start
        MODEL_LATENCY.labels(role=role).observe(seconds)
        for row in out:
            PREDICTIONS.labels(label=str(row["prediction"]), role=role).inc()
            if self.challenger:
                row["role"] = role
        self.log.append(request_id, model.version, columns, out, role, seconds * 1e3)
        return out

    def _split(
        self, request_id: str, columns: dict[str, list[Any]], X: Rows, mask: list[bool]
    ) -> list[dict[str, Any]]:
        """canary / ab: each model answers its rows; the answers go back in request order."""
        assert self.challenger is not None
        positions = routing.split(mask)
        answers = []
        models = (self.champion, self.challenger)
        for where, model, role in zip(positions, models, routing.ROLES, strict=True):
            part = {name: [values[i] for i in where] for name, values in columns.items()}
            rows = _take(X, where)
            answers.append(self._answer(request_id, model, role, part, rows) if where else [])
        return routing.merge(positions, (answers[0], answers[1]))

    def _shadow(self, batch: list[tuple[str, dict[str, list[Any]], Rows]]) -> None:
        """Requests gathered by the shadow thread, predicted by the challenger in one call and
        logged per request (same request id as the champion's rows: compare pairs them)."""
        assert self.challenger is not None
        start = time.perf_counter()
        out = self.challenger.predict(_concat([X for _, _, X in batch]))
        seconds = time.perf_counter() - start
        MODEL_LATENCY.labels(role=routing.SHADOW).observe(seconds)
        first = 0
        for request_id, columns, X in batch:
            rows = out[first : first + _len(X)]
            first += _len(X)
            for row in rows:
                PREDICTIONS.labels(label=str(row["prediction"]), role=routing.SHADOW).inc()
            self.log.append(
                request_id, self.challenger.version, columns, rows, "shadow", seconds * 1e3
            )


MlopsService.add_asgi_middleware(  # type: ignore[attr-defined]
    RequestGuard,
    max_rows=_SERVE.max_rows,
    body_limit=_SERVE.body_limit,
    refusals_per_second=_SERVE.refusals_per_second,
)
MlopsService.add_asgi_middleware(ModelCardRoute, tag=_TAG)  # type: ignore[attr-defined]  # GET /model-card
