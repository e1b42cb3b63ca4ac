"""``GET /model-card``: the card of the served model, read-only, from the model's own files in
the BentoML store (what the `package` stage stored beside the model, checked against the
sha256 it recorded). Markdown by default; JSON when the ``Accept`` header prefers
``application/json``. An ASGI middleware of its own, so it stays apart from the request guard.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from mlops_template import paths
from mlops_template.errors import ModelError
from mlops_template.serving.stored_model import verified_file

PATH = "/model-card"
MARKDOWN = "text/markdown; charset=utf-8"
JSON = "application/json"


def wants_json(accept: str) -> bool:
    """``Accept`` prefers JSON over Markdown (by q-value; ties go to the first listed)."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *options = (p.strip() for p in part.split(";"))
        q = 1.0
        for option in options:
            key, _, value = option.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media in (JSON, "text/markdown", "text/plain", "text/*", "*/*") and q > 0:
            rank = (q, -position, media)
            best = rank if best is None or rank[:2] > best[:2] else best
    return best is not None and best[2] == JSON


def read_card(tag: str) -> dict[str, bytes]:
    """The stored model's card files, each checked against its recorded sha256."""
    import bentoml

    stored = bentoml.models.get(tag)
    files = {}
    for name, key, media in (
        (paths.STORE_CARD_FILE, "model_card_sha256", MARKDOWN),
        (paths.STORE_CARD_JSON_FILE, "model_card_json_sha256", JSON),
    ):
        if key not in stored.info.metadata:
            raise ModelError(f"model {tag} was packaged without a model card (re-run package)")
        files[media] = verified_file(stored, name, key).read_bytes()
    return files


class ModelCardRoute:
    """ASGI middleware answering ``GET``/``HEAD /model-card``; everything else passes on.
    The card is read (and checked) once per worker, at the first request."""

    def __init__(self, app: Any, *, tag: str) -> None:
        self.app, self.tag = app, tag
        self.files: dict[str, bytes] | None = None

    def _response(self, accept: str) -> Response:
        if self.files is None:
            try:
                self.files = read_card(self.tag)
            except Exception as err:
                text = str(err) if isinstance(err, ModelError) else f"{type(err).__name__}: {err}"
                return Response(
                    f"no model card: {text}\n", status_code=404, media_type="text/plain"
                )
        media = JSON if wants_json(accept) else MARKDOWN
        headers = {"Vary": "Accept", "Cache-Control": "no-cache"}
        return Response(self.files[media], media_type=media, headers=headers)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != PATH:
            await self.app(scope, receive, send)
            return
        if scope.get("method") not in ("GET", "HEAD"):
            allow = {"Allow": "GET, HEAD"}
            await Response("read-only: GET\n", 405, allow, "text/plain")(scope, receive, send)
            return
        accept = dict(scope.get("headers") or []).get(b"accept", b"").decode("latin-1")
        await self._response(accept)(scope, receive, send)
