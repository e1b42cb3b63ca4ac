"""Where the service writes when BentoML serves a Bento from inside the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from bentoml._internal.configuration.containers import BentoMLContainer

from mlops_template.errors import ConfigError
from mlops_template.serving.stored_model import request_log_path


@pytest.fixture
def bento_src(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory BentoML moves to when it serves a stored Bento."""
    store = tmp_path / "home/bentos"
    src = store / "proj/v1/src"
    src.mkdir(parents=True)
    monkeypatch.setattr(BentoMLContainer.bento_store_dir, "get", lambda: str(store))
    monkeypatch.chdir(src)
    return src


def test_in_a_stored_bento_a_relative_log_goes_to_the_folder_serve_started_in(
    bento_src: Path, tmp_path: Path
) -> None:
    """It went to bentos/<name>/<version>/src/logs/requests.db: into the store."""
    started = tmp_path / "elsewhere"
    assert (
        request_log_path("logs/requests.db", {"PWD": str(started)}) == started / "logs/requests.db"
    )
    env = {"PWD": str(started), "MLOPS_REQUEST_LOG": "x/log.jsonl"}
    assert request_log_path("logs/requests.db", env) == started / "x/log.jsonl"
    absolute = tmp_path / "logs/requests.db"
    assert request_log_path("ignored.db", {"MLOPS_REQUEST_LOG": str(absolute)}) == absolute


@pytest.mark.parametrize("where", ["no PWD", "PWD in the store", "absolute path in the store"])
def test_nothing_is_ever_written_into_the_store(bento_src: Path, where: str) -> None:
    env = {
        "no PWD": {},
        "PWD in the store": {"PWD": str(bento_src)},
        "absolute path in the store": {"MLOPS_REQUEST_LOG": str(bento_src / "logs/r.db")},
    }[where]
    with pytest.raises(ConfigError, match=r"inside the BentoML store.*MLOPS_REQUEST_LOG"):
        request_log_path("logs/requests.db", env)


def test_outside_the_store_the_working_directory_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From the repository, or in the image (/home/bentoml/bento/src is no store): as before."""
    monkeypatch.setattr(BentoMLContainer.bento_store_dir, "get", lambda: str(tmp_path / "store"))
    monkeypatch.chdir(tmp_path)
    assert request_log_path("logs/requests.db", {"PWD": "/elsewhere"}) == Path("logs/requests.db")
