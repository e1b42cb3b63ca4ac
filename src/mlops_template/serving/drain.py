"""Graceful stop of a serving worker: SIGTERM drains, it does not cut requests off.

uvicorn (under ``bentoml serve``) stops accepting connections as soon as a worker gets SIGTERM:
requests a client had already sent but the worker had not yet read were reset (17 of 400 with
two workers here). :func:`install` wraps that handler: on SIGTERM the worker marks itself
draining (``/readyz`` answers 503, so a load balancer stops sending, and responses carry
``Connection: close``), keeps serving until no request has been in progress for
``QUIET_SECONDS`` (or ``serve.graceful_timeout`` has passed), and only then hands the signal to
uvicorn, which finishes what is left and runs the service's shutdown hook (the request log is
written out there).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

QUIET_SECONDS = 0.5  # no request in progress for this long: the worker has drained
POLL_SECONDS = 0.05


@dataclass
class Drain:
    """Requests in progress in this worker and when the last one started or ended."""

    active: int = 0
    last: float = 0.0
    since: float | None = None  # when SIGTERM arrived (None: serving normally)

    @property
    def draining(self) -> bool:
        return self.since is not None

    def started(self) -> None:
        self.active += 1
        self.last = time.monotonic()

    def finished(self) -> None:
        self.active -= 1
        self.last = time.monotonic()

    def idle(self, now: float, quiet: float = QUIET_SECONDS) -> bool:
        return self.active == 0 and now - self.last >= quiet


DRAIN = Drain()
Handler = Callable[[int, FrameType | None], Any]


def wait_then(drain: Drain, timeout: float, stop: Callable[[], Any]) -> None:
    """Wait until ``drain`` is idle or ``timeout`` seconds after SIGTERM, then ``stop()``."""
    assert drain.since is not None
    while True:
        now = time.monotonic()
        if drain.idle(now) or now - drain.since >= timeout:
            break
        time.sleep(POLL_SECONDS)
    if drain.active:
        log.warning("drain: %d requests still in progress after %g s", drain.active, timeout)
    stop()


def install(timeout: float, drain: Drain = DRAIN) -> bool:
    """Wrap this process's SIGTERM handler (uvicorn's) as described in the module docstring;
    a second SIGTERM stops at once. False (nothing done) outside the main thread or when no
    Python handler is installed."""
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return False
    uvicorn_handler: Handler = previous

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if drain.draining:
            uvicorn_handler(sig, frame)
            return
        drain.since = time.monotonic()
        log.info("SIGTERM: draining (at most serve.graceful_timeout=%g s)", timeout)
        stop = lambda: uvicorn_handler(sig, frame)  # noqa: E731
        threading.Thread(target=wait_then, args=(drain, timeout, stop), daemon=True).start()

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
