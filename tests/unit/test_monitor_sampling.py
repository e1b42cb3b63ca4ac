"""The monitor's current batch (choice of source, sampled reading, request log, contract check)
and the pieces of a run that need no trained model; the reading itself is tested in
test_sources.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template.config import parse_params
from mlops_template.errors import ConfigError, DataError
from mlops_template.monitor import (
    RequestLogWindow,
    file_source,
    read_current,
    resolve_source,
    sql_source,
)


def test_read_current_csv_matches_columns(tmp_path: Path) -> None:
    path = tmp_path / "batch.csv"
    pd.DataFrame({"a": range(10), "b": range(10), "c": range(10)}).to_csv(path, index=False)
    frame, total = read_current(file_source(str(path)), ["a", "c"], 5, seed=0)
    assert total == 10 and list(frame.columns) == ["a", "c"] and len(frame) == 5


@pytest.mark.parametrize("source", [file_source, RequestLogWindow])
def test_missing_batch_names_the_file(tmp_path: Path, source: Any) -> None:
    with pytest.raises(DataError, match=r"nope\.parquet"):
        read_current(source(str(tmp_path / "nope.parquet")), ["a"], 5, seed=0)


def test_unreadable_batch_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet")
    with pytest.raises(DataError, match=r"^monitor file: cannot read '.*broken\.parquet'"):
        read_current(file_source(str(path)), ["a"], 5, seed=0)
    with pytest.raises(DataError, match=r"cannot tell the format of '.*batch\.txt'"):
        file_source(str(tmp_path / "batch.txt"))


def test_source_resolution(raw_params: dict[str, Any]) -> None:
    params = parse_params(raw_params)
    assert resolve_source(params) == RequestLogWindow(params.serve.request_log)
    assert resolve_source(params, current="b.csv") == file_source("b.csv")
    assert resolve_source(params, request_log="x.db") == RequestLogWindow("x.db")
    with pytest.raises(ConfigError, match=r"monitor\.sql"):
        resolve_source(params, sql=True)
    raw_params["monitor"] |= {"source": "file", "path": ""}
    with pytest.raises(ConfigError, match=r"monitor\.path"):
        resolve_source(parse_params(raw_params))


def test_monitor_params_name_bad_keys(raw_params: dict[str, Any]) -> None:
    raw_params["monitor"]["drift_share"] = 1.5
    with pytest.raises(ConfigError, match=r"monitor\.drift_share"):
        parse_params(raw_params)
    raw_params["monitor"] |= {"drift_share": 0.3, "source": "sql"}
    with pytest.raises(ConfigError, match=r"monitor\.sql\.url"):
        parse_params(raw_params)


def test_monitoring_paths_are_declared_in_the_dvc_files() -> None:
    import yaml

    from mlops_template import paths

    root = Path(__file__).resolve().parents[2]
    evaluate = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]["evaluate"]
    assert str(paths.REFERENCE) in evaluate["outs"]
    stage = yaml.safe_load((root / "monitoring/dvc.yaml").read_text())["stages"]["monitor"]
    assert stage["wdir"] == ".." and stage["cmd"] == "mlops monitor"
    declared = {next(iter(e)) for e in stage["outs"] + stage["metrics"]}
    assert declared == {
        str(p) for p in (paths.MONITOR_REPORT, paths.MONITOR_SUMMARY, paths.MONITOR_SUMMARY_MD)
    }
    assert str(paths.REFERENCE) in stage["deps"] and str(paths.MODEL) in stage["deps"]


def test_sql_batch_is_sampled_and_satisfies_the_contract(tmp_path: Path, contract: Any) -> None:
    """A real SQLite table: read in chunks, sampled, then coerced by the contract (timestamps
    come back from SQLite as text)."""
    import sqlalchemy

    from mlops_template.monitor import check_batch
    from mlops_template.synthetic import generate_transactions

    url = f"sqlite:///{tmp_path / 'batch.db'}"
    frame = generate_transactions(3_000, seed=5)
    frame.to_sql("transactions", sqlalchemy.create_engine(url), index=False)
    source = sql_source(url, "SELECT * FROM transactions")
    sample, total = read_current(source, list(contract.columns), 1_000, seed=0)
    assert total == 3_000 and len(sample) == 1_000 and set(sample.columns) == set(contract.columns)
    result = check_batch(sample, contract)
    assert result.ok and result.usable
    assert str(result.valid["timestamp"].dtype).startswith("datetime64")


def test_bad_sql_names_the_source(tmp_path: Path) -> None:
    source = sql_source(f"sqlite:///{tmp_path / 'empty.db'}", "SELECT * FROM missing")
    with pytest.raises(DataError, match=r"^monitor sql: query against '.*empty\.db' failed"):
        read_current(source, ["a"], 5, seed=0)


def _write_log(path: Path, version: str, ids: range) -> None:
    """Real writes through the service's RequestLog (one request per 10 rows)."""
    from mlops_template.request_log import RequestLog

    log = RequestLog(path)
    for start in range(ids.start, ids.stop, 10):
        chunk = list(range(start, min(start + 10, ids.stop)))
        preds = [{"prediction": 0, "probabilities": {"0": 0.9, "1": 0.1}}] * len(chunk)
        log.append(
            f"r{start}", version, {"transaction_id": chunk, "amount": [1.5] * len(chunk)}, preds
        )
    log.flush()
    assert log.errors == 0


@pytest.mark.parametrize("name", ["requests.db", "requests.jsonl"])
def test_request_log_is_read_in_chunks_by_time_and_version(tmp_path: Path, name: str) -> None:
    from datetime import UTC, datetime

    from mlops_template.request_log import iter_request_log, read_request_log

    path = tmp_path / name
    _write_log(path, "m:1", range(0, 95))
    cut = datetime.now(UTC)
    _write_log(path, "m:2", range(95, 130))
    chunks = list(iter_request_log(path, chunk_rows=20))
    assert [len(c) for c in chunks] == [20] * 6 + [10]
    whole = pd.concat(chunks, ignore_index=True)
    pd.testing.assert_frame_equal(whole, read_request_log(path))
    assert whole["transaction_id"].tolist() == list(range(130))  # oldest first
    assert set(whole["proba_1"]) == {0.1}
    recent = read_request_log(path, since=cut)
    assert recent["transaction_id"].tolist() == list(range(95, 130))
    assert set(read_request_log(path, model_version="m:1")["transaction_id"]) == set(range(95))
    assert read_request_log(path, since=cut, model_version="m:1").empty


def test_request_log_batch_is_sampled_and_windowed(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    path = tmp_path / "requests.db"
    _write_log(path, "m:1", range(0, 300))
    cut = datetime.now(UTC)
    _write_log(path, "m:1", range(300, 400))
    frame, total = read_current(RequestLogWindow(str(path)), ["transaction_id"], 50, seed=1)
    assert total == 400 and len(frame) == 50 and list(frame.columns) == ["transaction_id"]
    source = RequestLogWindow(str(path), since=cut)
    frame, total = read_current(source, ["transaction_id"], 1_000, seed=1)
    assert total == 100 and frame["transaction_id"].min() == 300
    with pytest.raises(DataError, match=r"no rows served by m:9"):
        read_current(RequestLogWindow(str(path), model_version="m:9"), ["a"], 5, seed=0)


def test_since_and_window_select_request_log_rows(raw_params: dict[str, Any]) -> None:
    from datetime import UTC, datetime, timedelta

    from mlops_template.monitor import parse_since

    assert parse_since("2026-05-01T00:00") == datetime(2026, 5, 1, tzinfo=UTC)
    since = parse_since("7d")
    ago = datetime.now(UTC) - since
    assert timedelta(days=7) <= ago < timedelta(days=7, minutes=1)
    with pytest.raises(ConfigError, match="--since 'yesterday'"):
        parse_since("yesterday")
    raw_params["monitor"] |= {"window_hours": 24, "model_version": "m:3"}
    params = parse_params(raw_params)
    source = resolve_source(params)
    assert source.model_version == "m:3" and source.since is not None
    assert timedelta(hours=24) <= datetime.now(UTC) - source.since < timedelta(hours=24, minutes=1)
    explicit = resolve_source(params, request_log="x.db", since=parse_since("2h"), model_version="")
    assert explicit.model_version == "" and explicit.since is not None
    assert datetime.now(UTC) - explicit.since < timedelta(hours=2, minutes=1)
    with pytest.raises(ConfigError, match="request log only"):
        resolve_source(params, current="b.csv", since=parse_since("2h"))


def test_empty_column_is_reported_as_drifted_not_a_traceback() -> None:
    """Evidently raises on a column with no value; a broken feed is drift, said plainly."""
    from mlops_template.config import MonitorParams
    from mlops_template.monitor import Columns, evidently_frame, measure_drift

    rng = np.random.default_rng(0)
    ref = pd.DataFrame(
        {
            "a": rng.normal(size=400),
            "b": rng.normal(size=400),
            "c": rng.choice(["x", "y"], 400),
            "p": rng.random(400),
        }
    )
    cols = Columns(["a", "b"], ["c"], "p", True)
    current = ref.sample(frac=1.0, random_state=1).assign(b=np.nan)
    drift = measure_drift(
        evidently_frame(current, cols), evidently_frame(ref, cols), cols, MonitorParams()
    )
    assert drift.drifted == ["b"] and drift.share == pytest.approx(1 / 3)
    assert drift.columns["b"]["note"] == "no value in the current batch"
    assert not drift.columns["a"]["drifted"] and not drift.prediction["drifted"]
    with pytest.raises(DataError, match="model output p has no value"):
        measure_drift(
            evidently_frame(current.assign(p=np.nan), cols),
            evidently_frame(ref, cols),
            cols,
            MonitorParams(),
        )


def test_quality_without_evaluation_metrics_names_the_file() -> None:
    from mlops_template.monitor import quality

    frame = pd.DataFrame({"y": [0, 1, 0, 1]})
    meta = {"task": "binary", "target": "y", "classes": [0, 1]}
    with pytest.raises(DataError, match=r"reports/metrics\.json: missing"):
        quality(frame, np.array([0.1, 0.8, 0.3, 0.6]), meta, None, {"roc_auc": 0.05}, 0.5)
    assert quality(frame, np.array([0.1, 0.8, 0.3, 0.6]), meta, None, {}, 0.5)["checks"] == {}


def test_model_that_cannot_score_the_batch_is_a_data_error() -> None:
    from sklearn.linear_model import LogisticRegression

    from mlops_template.monitor import score

    model = LogisticRegression().fit(pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1])
    meta = {"task": "binary", "input_columns": ["x"]}
    with pytest.raises(DataError, match="the model could not score the batch"):
        score(model, pd.DataFrame({"x": ["not a number"]}), meta)
