"""The challenger's predictions off the response path.

One daemon thread per worker takes work from a bounded queue: the client never waits for the
shadow model and never sees its errors. A full queue drops the work and an exception is
swallowed; both are counted (``on_failure``) and logged, the first time and then every
``LOG_EVERY``-th time, so a broken challenger cannot flood the log either.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
LOG_EVERY = 1000


class Shadow:
    """``submit(item)`` queues ``work(item)`` for the shadow thread and returns at once."""

    def __init__(
        self,
        work: Callable[[Any], None],
        on_failure: Callable[[str], None],
        max_queue: int = 1000,
    ) -> None:
        self.work, self.on_failure = work, on_failure
        self.failures = {"error": 0, "dropped": 0}
        self._queue: queue.Queue[Any] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def submit(self, item: Any) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._failed("dropped", None)

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until everything submitted so far ran (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.work(item)
            except Exception as err:  # the shadow model must never take the service down
                self._failed("error", err)

    def _failed(self, reason: str, err: BaseException | None) -> None:
        self.failures[reason] += 1
        self.on_failure(reason)
        count = self.failures[reason]
        if count == 1 or count % LOG_EVERY == 0:
            why = f": {type(err).__name__}: {err}" if err else " (queue full)"
            log.error("shadow model: %d requests %s%s", count, reason, why)
