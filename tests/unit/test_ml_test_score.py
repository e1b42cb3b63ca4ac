"""docs/ml-test-score.md stays honest: every test it names exists, each section's total is the
sum of its rows, and the final score is the minimum of the sections."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

# a generated project's quick check (the template's CI runs these: docs/template.md)
pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs/ml-test-score.md").read_text()
SECTIONS = ["Data", "Model", "Infrastructure", "Monitoring"]


def _section(name: str) -> str:
    return PAGE.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]


def _rows(name: str) -> list[list[str]]:
    rows = [line.split(" | ") for line in _section(name).splitlines() if re.match(r"\| \d ", line)]
    assert len(rows) == 7, name
    return rows


def _named_tests() -> list[tuple[str, str]]:
    """(file, test) for every `file::test` and every following `::test` of the same file."""
    found: list[tuple[str, str]] = []
    for cell in re.findall(r"`[^`]+`", PAGE):
        text = cell.strip("`")
        if "::" not in text:
            continue
        path, _, test = text.partition("::")
        if path:
            current = path
        found.append((current, test))
    return found


def test_every_named_test_exists() -> None:
    named = _named_tests()
    assert len(named) > 40
    for path, test in named:
        if path == "tests/integration/test_k8s.py" and not (ROOT / "deploy").exists():
            continue  # a project generated without Kubernetes (docs/template.md)
        source = (ROOT / path).read_text()
        assert re.search(rf"^def {re.escape(test)}\(", source, re.M), f"{path}::{test}"


@pytest.mark.parametrize("name", SECTIONS)
def test_section_totals_add_up(name: str) -> None:
    scores = [float(row[-1].split()[0].strip("| ")) for row in _rows(name)]
    total = re.search(rf"\| \*\*{name}\*\* \| \| \| \*\*([\d.]+)\*\*", _section(name))
    assert total and float(total[1]) == sum(scores)
    summary = re.search(rf"^\| {name}(?: \(.*?\))? \| ([\d.]+)", PAGE, re.M)
    assert summary and float(summary[1]) == sum(scores)
    assert sum(scores) > 5, f"{name}: the goal is more than 5 in every section"


def test_final_score_is_the_minimum() -> None:
    totals = [sum(float(r[-1].split()[0].strip("| ")) for r in _rows(n)) for n in SECTIONS]
    final = re.search(r"\*\*ML Test Score \(the minimum\)\*\* \| \*\*([\d.]+)\*\*", PAGE)
    assert final and float(final[1]) == min(totals)


def test_an_automated_row_names_a_test() -> None:
    for name in SECTIONS:
        for row in _rows(name):
            if row[-1].split()[0].strip("| ") == "1":
                assert "::" in row[-2], f"{name}: {row[1]} scores 1 without a test"
