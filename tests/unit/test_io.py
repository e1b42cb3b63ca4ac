"""Atomic writes end with the mode a plain open() would give (issue 22, finding 9)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlops_template import io


@pytest.fixture(params=[0o022, 0o002, 0o077, 0o027])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


WRITERS = {
    "json": lambda p: io.write_json({"a": 1.5}, p),
    "text": lambda p: io.write_text("x\n", p),
    "parquet": lambda p: io.write_parquet(pd.DataFrame({"a": [1, 2]}), p),
    "csv": lambda p: io.write_csv(pd.DataFrame({"a": [1, 2]}), p),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_new_file_gets_the_mode_of_a_plain_open(tmp_path: Path, umask: int, kind: str) -> None:
    plain = tmp_path / "plain"
    plain.write_text("x")
    target = WRITERS[kind](tmp_path / f"out.{kind}")
    assert _mode(target) == _mode(plain) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_an_existing_file_keeps_its_mode(tmp_path: Path, umask: int) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("{}")
    target.chmod(0o640)
    io.write_json({"a": 1}, target)
    assert _mode(target) == 0o640 and target.read_text().startswith("{\n")


def test_the_gate_writes_through_the_same_writer(tmp_path: Path, umask: int) -> None:
    from mlops_template.stages.gate.report import _write

    _write("{}\n", tmp_path / "reports" / "gate_ok.json")
    assert _mode(tmp_path / "reports" / "gate_ok.json") == 0o666 & ~umask
