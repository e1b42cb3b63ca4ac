""".copier/names.py, the extension that renders the working repository as a template: our
names become the answers, comment directives keep or drop lines, and everything else, Jinja
syntax of workflows and dashboards included, comes out byte for byte."""

from __future__ import annotations

import importlib.util

import jinja2
import pytest

from tests.repo import ROOT

spec = importlib.util.spec_from_file_location("names", ROOT / ".copier/names.py")
assert spec and spec.loader
names = importlib.util.module_from_spec(spec)
spec.loader.exec_module(names)

ANSWERS = {
    "package_name": "fraud_scoring",
    "distribution_name": "fraud-scoring",
    "service_class": "FraudScoringService",
    "include_demo": False,
    "project_name": "Fraud scoring",
}


def render(source: str, **answers: object) -> str:
    env = jinja2.Environment(keep_trailing_newline=True, extensions=[names.RenameExtension])
    env.loader = jinja2.DictLoader({"file.txt": source})
    return env.get_template("file.txt").render({**ANSWERS, **answers})


def test_our_names_become_the_answers() -> None:
    source = "from mlops_template.serving.service import MlopsService  # mlops-template-model\n"
    assert render(source) == (
        "from fraud_scoring.serving.service import FraudScoringService  # fraud-scoring-model\n"
    )


@pytest.mark.parametrize(
    "text",
    [
        "run: echo ${{ github.sha }} {% raw %} {%- endraw %} {# c #} {{ x }}\n",
        '{"expr": "{{ legend }}", "p": "{% if %}"}',
        "{%\n%}\n{{\n",
        "",
        "no newline at the end",
    ],
)
def test_everything_else_is_kept_byte_for_byte(text: str) -> None:
    assert render(text) == text


def test_directives_keep_or_drop_blocks_and_write_lines() -> None:
    source = (
        "<!-- [copier] next: # {{ project_name }} -->\n"
        "# mlops-template\n"
        "a\n"
        "  # [copier] if include_demo\n"
        "demo\n"
        "# [copier] else\n"
        "# [copier] put:   source: csv  # {{ package_name }}\n"
        "# [copier] endif\n"
        "b\n"
    )
    assert render(source) == "# Fraud scoring\na\n  source: csv  # fraud_scoring\nb\n"
    assert render(source, include_demo=True) == "# Fraud scoring\na\ndemo\nb\n"


def test_a_path_part_only_has_its_names_replaced() -> None:
    env = jinja2.Environment(extensions=[names.RenameExtension])
    assert env.from_string("src/mlops_template").render(ANSWERS) == "src/fraud_scoring"
    assert env.from_string("{{ 1 + 1 }}").render() == "2"  # copier's own strings stay Jinja


def test_the_answers_file_template_is_jinja() -> None:
    source = (ROOT / names.ANSWERS_TEMPLATE).read_text()
    env = jinja2.Environment(extensions=[names.RenameExtension])
    env.loader = jinja2.DictLoader({names.ANSWERS_TEMPLATE: source})
    env.filters["to_nice_yaml"] = lambda value: f"{value}\n"
    out = env.get_template(names.ANSWERS_TEMPLATE).render(_copier_answers={"a": 1})
    assert "{'a': 1}" in out
