"""Real Dask LocalClusters on loopback (slow: `make test-scale`, not in `make test`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/scale/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.scale)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes of one thread and 1.5 GiB each, the scheduler on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        memory_limit="1.5GiB",
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as local:
        yield local
