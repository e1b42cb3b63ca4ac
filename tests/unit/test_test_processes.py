"""The test processes themselves: under pytest-xdist (``make test``) each runs scikit-learn's
OpenMP code on one thread, so the processes do not spin against each other on the cores."""

from __future__ import annotations

import os


def test_openmp_threads_follow_the_process_count() -> None:
    import sklearn.ensemble  # noqa: F401  (loads OpenMP)
    from threadpoolctl import threadpool_info

    threads = {p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp"}
    assert threads, "scikit-learn's OpenMP runtime is not loaded"
    if os.environ.get("PYTEST_XDIST_WORKER"):  # tests/conftest.py, before OpenMP loads:
        expected = int(os.environ["OMP_NUM_THREADS"])  # 1 unless set explicitly
    else:  # one test process: every core, unless OMP_NUM_THREADS says otherwise
        expected = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    assert threads == {expected}
