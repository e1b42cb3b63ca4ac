"""The service's ASGI middleware: what is cheap to check runs before BentoML parses a request.

On the predict endpoints, in this order: 503 and the reason while the model failed to load;
415 for a body that is not JSON; 413 for a body over the size limit (answered before a byte of
it is read when the Content-Length says so; the rest is then read and discarded, up to
``LINGER_BYTES`` for ``LINGER_SECONDS``, so that a client still sending reads the 413 instead of a
reset connection); then the body is parsed once (orjson) and refused with 400, before any
record is validated, when it holds more than ``max_rows`` records of whatever kind (``0``,
``[]``, objects), a top-level key other than ``records``, or a key twice in one object
(:func:`parse_body`). Every 4xx there, BentoML's own parse errors included, is cut to size
(:func:`~mlops_template.serving.request_schema.bounded_error`) and counted by reason.

Refusals of oversized or non-JSON requests are throttled per client address (in each worker
process): beyond a burst of ``REFUSAL_BURST`` they wait for a token
(``serve.refusals_per_second``), so a client that sends 100k-record bodies back to back
cannot crowd out the others. A request that is served, or refused by the schema, never waits.

``/readyz`` and ``GET /version`` answer with the served model's tag and age (503 and the reason if
it did not load, or while the worker drains after SIGTERM: :mod:`~mlops_template.serving.drain`,
which counts the requests in progress here). A valid ``POST /predict`` is answered by the service's
fast path (:attr:`Health.fast`) without BentoML's API layer; whatever the fast path does not accept
goes through BentoML unchanged, so every 4xx stays BentoML's and pydantic's."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import bentoml
import orjson
from starlette.datastructures import Headers
from starlette.responses import Response

from mlops_template.serving.drain import DRAIN
from mlops_template.serving.request_schema import bounded_error

PREDICT_PATHS = ("/predict", "/predict_batched")
HEALTH_PATHS = ("/readyz", "/version")
REFUSAL_BURST = 10  # refusals a client address may have at once before they wait
MAX_WAIT_SECONDS = 10.0  # the longest a refusal is held back
MAX_ADDRESSES = 10_000  # client addresses tracked (least recently refused ones forgotten)
LINGER_BYTES = 64 * 2**20  # of a too-large body, read and discarded after its 413 at most ...
LINGER_SECONDS = 5.0  # ... for at most this long; then the connection is closed
BODY_KEYS = ("records",)  # the top-level keys of a predict body
GC_PAUSE_BYTES = 64 * 2**10  # bodies this large are parsed with the garbage collector paused

REJECTED = bentoml.metrics.Counter(
    name="mlops_rejected_requests",
    documentation="Rejected requests (HTTP 4xx on the predict endpoints), by reason",
    labelnames=["reason"],
)


@dataclass
class Health:
    """What this worker serves, or why it serves nothing (set by the service, answered here)."""

    model_tag: str = ""
    source: str = ""
    failure: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    trained_at: datetime | None = None  # the model's training time (model age in /readyz)
    # the service's answer to a valid POST /predict body (parsed), None: BentoML's way
    fast: Callable[[Any, Headers], Awaitable[Response | None]] | None = None

    @property
    def known(self) -> bool:
        return bool(self.failure or self.info)

    def age_days(self, now: datetime | None = None) -> float | None:
        if self.trained_at is None:
            return None
        return round(((now or datetime.now(UTC)) - self.trained_at).total_seconds() / 86400, 3)

    def describe(self) -> dict[str, Any]:
        status = "failed" if self.failure else "draining" if DRAIN.draining else "ready"
        body: dict[str, Any] = {
            "status": status,
            "model_tag": self.model_tag,
            "model_tag_source": self.source,
        }
        if self.info:
            body["trained_at"] = self.trained_at.isoformat() if self.trained_at else None
            body["model_age_days"] = self.age_days()
        version = bentoml.server_context.bento_version
        if version not in (None, "not available"):
            body["bento_tag"] = f"{bentoml.server_context.bento_name}:{version}"
        if self.failure:
            body["reason"] = self.failure
        return body | self.info

    def response(self) -> Response:
        status = 503 if self.failure or DRAIN.draining else 200
        return Response(orjson.dumps(self.describe()), status, media_type="application/json")


HEALTH = Health()


def reject(reason: str, message: str, status: int = 400, loc: str = "records") -> Response:
    """A 4xx in pydantic's shape, naming the field (``loc``) and the problem (``msg``)."""
    body = {
        "error": f"{loc}: {message}",
        "detail": [{"type": reason, "loc": [loc], "msg": message}],
    }
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class Throttle:
    """A token bucket per client address: ``rate`` tokens a second, at most ``burst``.
    :meth:`wait` takes a token and says how long to wait for it (0 while the burst lasts)."""

    def __init__(self, rate: float, burst: int = REFUSAL_BURST) -> None:
        self.rate, self.burst = rate, burst
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def wait(self, address: str, now: float) -> float:
        tokens, stamp = self.buckets.pop(address, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate) - 1
        tokens = max(tokens, -MAX_WAIT_SECONDS * self.rate)
        self.buckets[address] = (tokens, now)
        if len(self.buckets) > MAX_ADDRESSES:
            self.buckets.popitem(last=False)
        return max(0.0, -tokens / self.rate)


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value)
    return None


def _media_type(scope: dict[str, Any]) -> str | None:
    """The request's media type (no parameters), None without a Content-Type header."""
    value = _header(scope, b"content-type")
    return None if value is None else value.split(b";", 1)[0].strip().lower().decode("latin-1")


def _is_json(media_type: str | None) -> bool:
    """No header (BentoML reads JSON then), application/json or a ``+json`` type."""
    return media_type is None or media_type == "application/json" or media_type.endswith("+json")


async def _read_body(receive: Any, limit: int) -> bytes | None:
    """The request body, or None as soon as it grows past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that hands the already-read body over once, then waits on the
    client's (for BentoML's disconnect checks)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return dict(await receive())
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _closing(response: Response) -> Response:
    """The rest of an unread body is not wanted: close the connection after answering."""
    response.headers["connection"] = "close"
    return response


class _BoundedSend:
    """Wraps ASGI ``send``: a 4xx response is held until complete, cut to size and counted
    by reason; other responses pass unchanged."""

    def __init__(self, send: Any) -> None:
        self.send = send
        self.start: dict[str, Any] | None = None
        self.body = bytearray()

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start" and DRAIN.draining:
            # clients with a keep-alive pool reconnect (to another worker or pod)
            message = message | {"headers": [*message["headers"], (b"connection", b"close")]}
        if message["type"] == "http.response.start" and 400 <= message["status"] < 500:
            self.start = message
            return
        if message["type"] != "http.response.body" or self.start is None:
            await self.send(message)
            return
        self.body += message.get("body", b"")
        if message.get("more_body"):
            return
        body, reason = bounded_error(bytes(self.body), self.start["status"])
        REJECTED.labels(reason=reason).inc()
        headers = [(k, v) for k, v in self.start["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send(self.start | {"headers": headers})
        await self.send({"type": "http.response.body", "body": body})


# a key written with white space before its colon (the regex: 1 µs a row, 0.4 µs a row
# beyond; four `in` tests for a quote then a space cost 2.5x that)
_SPACED_KEY = re.compile(rb'"\s+:')


class DuplicateKey(ValueError):
    """A JSON object names a key twice (orjson, like most parsers, keeps the last value)."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise DuplicateKey(key)
        seen.add(key)
    return dict(pairs)


def _parsed_keys(parsed: Any) -> int:
    """Keys of the body's object and of its records (-1 when that is not what it holds; a
    list or string among the records counts its length: such a body is refused anyway)."""
    if not isinstance(parsed, dict):
        return -1
    try:
        return len(parsed) + sum(map(len, parsed.get("records", ())))
    except TypeError:
        return -1


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a parser builds objects: it would walk the
    growing heap again and again (700k empty lists: 0.1 s to parse with it off, 0.8-2.5 s
    with it on). orjson holds the GIL, so no other thread allocates meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_body(body: bytes) -> Any:
    """The parsed body (orjson; ``json`` for what orjson refuses: integers beyond 64 bits,
    NaN, which validation then refuses with its own words; a UTF-8 BOM neither takes, nor
    does BentoML); raises ValueError when neither reads it, :class:`DuplicateKey` when
    ``json`` finds a key twice. The garbage collector is paused for bodies over
    ``GC_PAUSE_BYTES`` only (pausing costs about 1 µs)."""
    if len(body) < GC_PAUSE_BYTES:
        return _parse(body)
    with _gc_paused():
        return _parse(body)


def _parse(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:  # decoded first: json.loads(bytes) would skip a BOM
        return json.loads(body.decode(), object_pairs_hook=_unique_pairs)


def check_unique_keys(body: bytes, parsed: Any) -> None:
    """Raises :class:`DuplicateKey` when an object of ``body`` names a key twice.

    orjson keeps the last value of a duplicate key, so the keys it kept are compared with the
    number of ``":`` in the raw bytes (about 1 µs for a 1-row body); only when they differ (a
    duplicate, objects nested in a record, an escaped quote before a colon in a string) or a
    key has white space before its colon is the body parsed again by ``json`` with a hook
    that raises on the first duplicate."""
    if body.count(b'":') != _parsed_keys(parsed) or _SPACED_KEY.search(body):
        with _gc_paused():
            json.loads(body.decode(), object_pairs_hook=_unique_pairs)


class RequestGuard:
    """The ASGI middleware (see the module's docstring); ``max_rows``, ``body_limit`` and
    ``refusals_per_second`` come from params.yaml ``serve``."""

    def __init__(
        self, app: Any, *, max_rows: int, body_limit: int, refusals_per_second: float
    ) -> None:
        self.app = app
        self.max_rows, self.body_limit = max_rows, body_limit
        self.throttle = Throttle(refusals_per_second)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path in HEALTH_PATHS and HEALTH.known:
            await HEALTH.response()(scope, receive, send)
        elif path not in PREDICT_PATHS or scope.get("method") != "POST":
            await self.app(scope, receive, send)
        else:
            DRAIN.started()
            try:
                await self._guard(scope, receive, _BoundedSend(send))
            except _ClientGone:
                return
            finally:
                DRAIN.finished()

    async def _guard(self, scope: Any, receive: Any, send: Any) -> None:
        refusal = self._refuse_unread(scope)
        if refusal is not None:
            if refusal.status_code == 503:
                await refusal(scope, receive, send)
                return
            await self._wait(scope)
            await _refuse_and_linger(refusal, scope, receive, send)
            return
        body = await _read_body(receive, self.body_limit)
        if body is None:
            await self._wait(scope)
            await _refuse_and_linger(self._too_large(), scope, receive, send)
            return
        # more than max_rows + 1 "{": too many records, surely (0.1 ms per MB to count)
        waited = body.count(b"{") - 1 > self.max_rows
        if waited:
            await self._wait(scope)  # before the parse, the costly part
        parsed, refusal = self._check(body)
        if refusal is not None:
            if not waited and _reason(refusal) == "too_many_rows":
                await self._wait(scope)
            await refusal(scope, receive, send)
            return
        if HEALTH.fast is not None and scope["path"] == "/predict" and parsed is not None:
            answer = await HEALTH.fast(parsed, Headers(scope=scope))
            if answer is not None:
                await answer(scope, receive, send)
                return
        await self.app(scope, _replay(body, receive), send)

    def _check(self, body: bytes) -> tuple[Any, Response | None]:
        """(the parsed body, None), or (None, a 400) for what no valid body holds: more than
        max_rows records, a top-level key but ``records``, a key twice. A small body that is
        not JSON gives (None, None): BentoML answers it."""
        try:
            parsed = parse_body(body)
        except DuplicateKey as err:
            return None, _duplicate(err)
        except (ValueError, RecursionError) as err:
            if body.count(b",") < self.max_rows:  # small: BentoML's parser says what is wrong
                return None, None
            # neither orjson nor json reads it (say, a 5,000-digit integer among a million
            # items): BentoML's parser might, then validate every item
            return None, reject("json_invalid", f"not valid JSON ({err})"[:200], loc="body")
        if not isinstance(parsed, dict):
            return None, None
        for key in parsed:
            if key not in BODY_KEYS:
                message = "Extra inputs are not permitted (a body holds records only)"
                return None, reject("extra_forbidden", message, loc=key)
        records = parsed.get("records")
        if isinstance(records, list) and len(records) > self.max_rows:
            message = f"{len(records)} rows, more than serve.max_rows={self.max_rows}"
            return None, reject("too_many_rows", message)
        try:
            check_unique_keys(body, parsed)
        except DuplicateKey as err:
            return None, _duplicate(err)
        except (ValueError, RecursionError):
            return None, None
        return parsed, None

    async def _wait(self, scope: Any) -> None:
        await asyncio.sleep(self.throttle.wait(_address(scope), time.monotonic()))

    def _refuse_unread(self, scope: Any) -> Response | None:
        if HEALTH.failure:
            return HEALTH.response()
        media_type = _media_type(scope)
        if not _is_json(media_type):
            message = f"send application/json, not {str(media_type)[:100]}"
            return _closing(reject("unsupported_media_type", message, 415, loc="content-type"))
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.body_limit:
            return self._too_large()
        return None

    def _too_large(self) -> Response:
        message = f"body larger than {self.body_limit} bytes (serve.max_body_bytes)"
        return _closing(reject("body_too_large", message, 413, loc="body"))


def _duplicate(err: DuplicateKey) -> Response:
    message = f"duplicate key {str(err)[:100]!r} (a key may appear once per object)"
    return reject("duplicate_key", message, loc="body")


def _reason(response: Response) -> str:
    return str(orjson.loads(response.body)["detail"][0]["type"])


async def _refuse_and_linger(response: Response, scope: Any, receive: Any, send: Any) -> None:
    """Answer a request whose body is not wanted, then read and discard what the client is
    still sending (at most LINGER_BYTES, for at most LINGER_SECONDS) before the connection is
    closed: closing with unread bytes makes the kernel reset the connection, and a client that
    sends its whole body before reading (Python's urllib) would see the reset, not the answer.
    The answer is complete (Content-Length) before the draining starts, so a client that reads
    while sending (requests, curl) stops early. Skipped after ``Expect: 100-continue``: such a
    client sends nothing until told to."""
    if _header(scope, b"expect") is not None:
        await response(scope, receive, send)
        return
    raw = send.send if isinstance(send, _BoundedSend) else send
    REJECTED.labels(reason=_reason(response)).inc()
    await raw(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await raw({"type": "http.response.body", "body": response.body, "more_body": True})
    with contextlib.suppress(TimeoutError, _ClientGone):
        await asyncio.wait_for(_discard(receive, LINGER_BYTES), LINGER_SECONDS)
    await raw({"type": "http.response.body", "body": b"", "more_body": False})


async def _discard(receive: Any, limit: int) -> None:
    """Read the rest of a request body and drop it, up to ``limit`` bytes."""
    size = 0
    while size <= limit:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            return


def _address(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
