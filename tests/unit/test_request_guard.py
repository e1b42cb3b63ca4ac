"""The per-address throttle of refused requests."""

from __future__ import annotations

import pytest

from mlops_template.serving.request_guard import MAX_WAIT_SECONDS, Throttle


def test_a_burst_passes_then_refusals_are_spaced_by_the_rate():
    throttle = Throttle(rate=2.0, burst=3)
    waits = [throttle.wait("a", now=0.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]
    assert throttle.wait("b", now=0.0) == 0.0  # another address has its own bucket
    assert throttle.wait("a", now=10.0) == 0.0  # refilled


def test_waits_are_capped():
    throttle = Throttle(rate=1.0, burst=1)
    waits = [throttle.wait("a", now=0.0) for _ in range(100)]
    assert max(waits) == pytest.approx(MAX_WAIT_SECONDS)
