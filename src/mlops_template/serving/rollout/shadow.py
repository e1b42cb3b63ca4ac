"""The challenger's predictions off the response path.

One daemon thread per worker takes work from a bounded queue: the client never waits for the
shadow model and never sees its errors. It gathers what arrives within ``max_wait`` seconds
(until ``max_size`` rows: ``size(item)``) and hands it over as one batch: one model call per batch
instead of one per request, so the shadow holds the worker's GIL briefly and rarely (one call
per request doubled the 1-row p50 in bench/rollout.py). A full queue drops the work and an
exception is swallowed; both are counted per request (``on_failure``) and logged, the first
time and then every ``LOG_EVERY``-th time, so a broken challenger cannot flood the log either.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
LOG_EVERY = 1000


class Shadow:
    """``submit(item)`` queues ``work(item)`` for the shadow thread and returns at once."""

    REASONS = ("error", "dropped")

    def __init__(
        self,
        work: Callable[[list[Any]], None],
        on_failure: Callable[[str], None],
        max_queue: int = 1000,
        max_wait: float = 0.05,
        max_size: int = 256,
        size: Callable[[Any], int] = lambda item: 1,
    ) -> None:
        self.work, self.on_failure, self.size = work, on_failure, size
        self.max_wait, self.max_size = max_wait, max_size
        self.failures = dict.fromkeys(self.REASONS, 0)
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
            batch, done = self._gather()
            if batch:
                try:
                    self.work(batch)
                except Exception as err:  # the shadow model must never take the service down
                    for _ in batch:
                        self._failed("error", err)
            for event in done:
                event.set()

    def _gather(self) -> tuple[list[Any], list[threading.Event]]:
        """The next batch: what arrives within ``max_wait`` of its first item (flush markers
        end it early, and are set once the batch ran)."""
        batch: list[Any] = []
        done: list[threading.Event] = []
        size = 0
        item = self._queue.get()
        deadline = time.monotonic() + self.max_wait
        while True:
            if isinstance(item, threading.Event):
                done.append(item)
                return batch, done
            batch.append(item)
            size += self.size(item)
            wait = deadline - time.monotonic()
            if size >= self.max_size or wait <= 0:
                return batch, done
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                return batch, done

    def _failed(self, reason: str, err: BaseException | None) -> None:
        self.failures[reason] += 1
        self.on_failure(reason)
        count = self.failures[reason]
        if count == 1 or count % LOG_EVERY == 0:
            why = f": {type(err).__name__}: {err}" if err else " (queue full)"
            log.error("shadow model: %d requests %s%s", count, reason, why)
