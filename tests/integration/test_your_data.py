"""Data the template has never seen, from `mlops init` to a served prediction with zero edits
(tests/integration/your_data.py says what each table holds and what is checked): the first
half of the tables; test_your_data_more.py runs the rest on another worker."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.your_data import FIRST_HALF, init_repro_serve

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", FIRST_HALF)
def test_init_repro_serve(tmp_path: Path, name: str) -> None:
    init_repro_serve(tmp_path, name)
