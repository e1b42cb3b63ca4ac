"""Model staleness: a model trained longer ago than monitor.max_model_age_days says retrain."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops_template.config import MonitorParams
from mlops_template.monitor import retrain_reasons
from mlops_template.monitor.core import model_age
from mlops_template.monitor.drift import Drift

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
CALM = Drift(0.0, [], {"amount": {"drifted": False}}, {"drifted": False, "column": "proba_1"})


def _meta(trained_at: str | None) -> dict:
    return {"mlflow": {"run_id": "r", "trained_at": trained_at} if trained_at else None}


def test_age_is_days_since_training() -> None:
    age = model_age(_meta("2026-11-20T12:00:00+00:00"), NOW)
    assert age == {"days": 10.0, "trained_at": "2026-11-20T12:00:00+00:00"}
    assert model_age(_meta(None), NOW)["days"] is None


def test_an_old_model_is_a_retrain_reason_and_a_young_one_is_not() -> None:
    params = MonitorParams(max_model_age_days=90)
    old = model_age(_meta("2026-07-01T00:00:00+00:00"), NOW)
    reasons = retrain_reasons(CALM, None, params, old)
    assert len(reasons) == 1 and reasons[0].startswith("model age 152.5 days > ")
    assert "monitor.max_model_age_days 90" in reasons[0]
    young = model_age(_meta("2026-11-01T00:00:00+00:00"), NOW)
    assert retrain_reasons(CALM, None, params, young) == []


def test_no_limit_or_no_record_never_says_retrain() -> None:
    old = model_age(_meta("2020-01-01T00:00:00+00:00"), NOW)
    assert retrain_reasons(CALM, None, MonitorParams(max_model_age_days=None), old) == []
    unknown = model_age(_meta(None), NOW)
    assert retrain_reasons(CALM, None, MonitorParams(), unknown) == []


def test_model_json_is_read_only_through_model_meta(tmp_path) -> None:
    """registry and the model's age read models/model.json through ModelMeta: one parse of
    trained_at (naive times are UTC), one error for a file that is not a model description."""
    import pytest

    from mlops_template.errors import RegistryError
    from mlops_template.model import ModelMeta
    from mlops_template.registry import trained_model

    path = tmp_path / "model.json"
    base = {"task": "binary", "model": "linear", "target": "y", "input_columns": ["a"]}
    meta = ModelMeta.model_validate(base | {"contract": {"name": "c"}})
    meta.model_copy(update={"mlflow": {"version": 3, "run_id": "r1"}}).write(path)
    assert trained_model(path).version == 3 and trained_model(path).run_id == "r1"
    naive = meta.model_copy(update={"mlflow": {"trained_at": "2026-11-20T12:00:00"}})
    assert naive.trained_at is not None and naive.trained_at.isoformat().endswith("+00:00")
    assert model_age(naive.model_dump(), NOW)["trained_at"] == naive.trained_at.isoformat()
    meta.write(path)
    with pytest.raises(RegistryError, match=r"no mlflow\.version"):
        trained_model(path)
    path.write_text('{"mlflow": {"version": 3}}')  # not a model description
    with pytest.raises(RegistryError, match="not a model description"):
        trained_model(path)
