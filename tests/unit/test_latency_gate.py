"""The serving latency gate's decision (src/mlops_template/serving/latency.py): a ratio to a
reference workload, compared with the baseline commit's reports/latency.json."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from mlops_template.errors import GateFailed
from mlops_template.serving.latency import baseline, compare, timed_pair

NOW = {"serve_1row_ratio": 2.0, "runtime": "onnx", "serve_1row_p50_us": 250.0}


@pytest.mark.parametrize(
    ("base", "says"),
    [
        (None, "no baseline latency recorded"),
        ({"serve_1row_ratio": 1.5, "runtime": "sklearn"}, "runtime sklearn differs"),
        ({"serve_1row_ratio": 1.5, "runtime": "onnx"}, "passed: serve_1row_ratio 2 vs 1.5 (+33%"),
        ({"serve_1row_ratio": 4.0, "runtime": "onnx"}, "passed: serve_1row_ratio 2 vs 4 (-50%"),
    ],
)
def test_passes(base: dict | None, says: str) -> None:
    assert says in compare(NOW, base, max_increase=0.5)


def test_fails_past_the_tolerance_naming_the_key() -> None:
    with pytest.raises(GateFailed, match=r"\+100%; allowed \+50%, serve.latency_max_increase_rel"):
        compare(NOW, {"serve_1row_ratio": 1.0, "runtime": "onnx"}, max_increase=0.5)


def test_baseline_reads_the_committed_file_of_a_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q"], check=True)
    assert baseline("HEAD") is None  # no commit yet
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/latency.json").write_text(json.dumps(NOW))
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "baseline"], check=True)
    (tmp_path / "reports/latency.json").write_text("{}")  # the workspace's is not the baseline
    assert baseline("HEAD") == NOW


def test_timed_pair_times_both_alternately() -> None:
    calls: list[str] = []
    ours, ref = timed_pair(lambda: calls.append("serve"), calls=5)
    assert calls == ["serve"] * 5 and ours >= 0 and ref > 0
