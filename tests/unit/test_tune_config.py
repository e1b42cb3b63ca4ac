"""Bad tune input fails before any work, naming the key."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from mlops_template.config import parse_params
from mlops_template.errors import ConfigError
from mlops_template.stages.tune import check


def _with(raw: dict[str, Any], **tune: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    raw["tune"].update(tune)
    return raw


def test_default_params_are_valid(raw_params: dict[str, Any]) -> None:
    params = parse_params(raw_params)
    assert params.tune.enabled is False
    check(params)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"method": "annealing"}, "tune.method"),
        ({"n_trials": 0}, "tune.n_trials"),
        ({"timeout_seconds": 0}, "tune.timeout_seconds"),
        (
            {"space": {"hist_gradient_boosting": {"learning_rate": {"low": 0.3, "high": 0.1}}}},
            "tune.space.hist_gradient_boosting.learning_rate",
        ),
        (
            {"space": {"hist_gradient_boosting": {"max_iter": {"choices": []}}}},
            "tune.space.hist_gradient_boosting.max_iter",
        ),
        (
            {"space": {"hist_gradient_boosting": {"max_iter": {"choices": [1], "low": 1}}}},
            "tune.space.hist_gradient_boosting.max_iter",
        ),
        ({"space": {"gbm": {}}}, "tune.space.gbm"),
        ({"models": ["gbm"]}, "tune.models"),
    ],
)
def test_invalid_tune_section_names_key(
    raw_params: dict[str, Any], override: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_params(_with(raw_params, **override))


@pytest.mark.parametrize(
    ("space", "key"),
    [
        ({}, "tune.space.hist_gradient_boosting"),
        ({"hist_gradient_boosting": {}}, "tune.space.hist_gradient_boosting"),
        (
            {"hist_gradient_boosting": {"depth": {"choices": [1, 2]}}},
            "tune.space.hist_gradient_boosting.depth",
        ),
        (
            {"hist_gradient_boosting": {"learning_rate": {"low": -1.0, "high": 0.5}}},
            "tune.space.hist_gradient_boosting.learning_rate",
        ),
    ],
)
def test_space_inconsistent_with_model_fails_in_check(
    raw_params: dict[str, Any], space: dict[str, Any], key: str
) -> None:
    params = parse_params(_with(raw_params, space=space, enabled=True))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check(params)


def test_unknown_metric_named(raw_params: dict[str, Any]) -> None:
    params = parse_params(_with(raw_params, metric="auc_roc"))
    with pytest.raises(ConfigError, match=r"tune\.metric"):
        check(params)


def test_a_kind_tune_models_adds_needs_its_space(raw_params: dict[str, Any]) -> None:
    """tune.models: [random_forest] with a space that has no random_forest section: check
    names the missing section before any work."""
    space = {"hist_gradient_boosting": {"learning_rate": {"low": 0.01, "high": 0.3}}}
    params = parse_params(_with(raw_params, space=space, models=["random_forest"], enabled=True))
    with pytest.raises(
        ConfigError, match=r"tune\.space\.random_forest: empty search space for tune\.models"
    ):
        check(params)
