from __future__ import annotations

from pathlib import Path

import pytest

from mlops_template.config import Params, load_params, parse_params
from mlops_template.errors import ConfigError
from tests.repo import DEMO_PARAMS

# a generated project's quick check (the template's CI runs these: docs/template.md)
pytestmark = pytest.mark.smoke

ROOT = Path(__file__).resolve().parents[2]


def test_committed_params_are_valid():
    """The project's params.yaml loads and names a contract that exists: the demo's, or the
    one `mlops init` wrote for the user's data (a generated project's tests never assume the
    demo)."""
    params = load_params(ROOT / "params.yaml")
    assert (ROOT / params.data.contract).is_file()


@pytest.mark.parametrize(
    ("section", "key", "value", "named"),
    [
        ("train", "model", "xgboost_deluxe", "train.model"),
        ("train", "learning_rat", 0.1, "train.learning_rat: unknown key"),
        ("data", "source", "ftp", "data.source"),
        ("data", "task", "ranking", "data.task"),
        ("train", "seed", "forty-two", "train.seed"),
    ],
)
def test_bad_values_name_the_key(raw_params, section, key, value, named):
    raw_params[section][key] = value
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_params(raw_params)


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.2])
def test_test_size_must_be_inside_zero_one(raw_params, test_size):
    raw_params["data"]["split"]["test_size"] = test_size
    with pytest.raises(ConfigError, match=r"data\.split\.test_size"):
        parse_params(raw_params)


def test_nested_model_knob_is_checked(raw_params):
    raw_params["train"]["hist_gradient_boosting"]["learning_rate"] = -1
    with pytest.raises(ConfigError, match=r"train\.hist_gradient_boosting\.learning_rate"):
        parse_params(raw_params)


def test_file_source_needs_a_path(raw_params):
    raw_params["data"]["source"] = "csv"
    with pytest.raises(ConfigError, match=r"data\.path is required"):
        parse_params(raw_params)


def test_unknown_section_is_rejected(raw_params):
    raw_params["trian"] = {}
    with pytest.raises(ConfigError, match="trian: unknown key"):
        parse_params(raw_params)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "params.yaml")


def test_defaults_are_the_shipped_params_yaml_but_for_the_dataset():
    """One home per default: the typed loader's defaults ARE params.yaml, except the knobs
    that describe the demo dataset (its feature recipe, slice column and slice checks), which
    no default could know. A key missing from params.yaml therefore changes nothing."""
    shipped = load_params(DEMO_PARAMS).model_dump()
    defaults = Params().model_dump()
    for section in ("features",):
        shipped.pop(section), defaults.pop(section)
    for key in ("slice_column", "slice_checks"):  # the demo's slices and what they must reach
        shipped["evaluate"].pop(key), defaults["evaluate"].pop(key)
    assert defaults == shipped
