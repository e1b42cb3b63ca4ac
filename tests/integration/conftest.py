"""Fixtures shared by the integration tests: a tiny trained and packaged copy of the project,
and a real `bentoml serve` of it on loopback (helpers in tests/integration/servers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.servers import make_project, project_env, serve


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the project with a 3000-row, 20-iteration model, packaged into a Bento."""
    root = tmp_path_factory.mktemp("project")
    env = project_env(root)
    return make_project(root, env), env


@pytest.fixture(scope="session")
def server(project: tuple[Path, dict[str, str]]) -> Iterator[str]:
    root, env = project
    yield from serve("mlops_template.serving.service:MlopsService", root, env)
