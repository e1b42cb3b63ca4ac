"""The second half of test_your_data.py's tables (a file of its own, so that pytest-xdist's
--dist loadfile runs it on another worker)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.your_data import FIRST_HALF, TABLES, init_repro_serve

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", [name for name in TABLES if name not in FIRST_HALF])
def test_init_repro_serve(tmp_path: Path, name: str) -> None:
    init_repro_serve(tmp_path, name)
