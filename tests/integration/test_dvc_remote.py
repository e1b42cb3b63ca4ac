"""`make dvc-remote` turns on DVC's download verification: a file tampered with in the remote
is refused by `dvc pull` (non-zero exit, nothing checked out), not silently used."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.repo import make_repo, run

pytestmark = pytest.mark.integration


def test_a_tampered_object_in_the_remote_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    remote = tmp_path / "remote"
    (repo / "data").mkdir(exist_ok=True)
    (repo / "data/raw.csv").write_text("a,b\n1,2\n")
    run(repo, "dvc", "add", "-q", "data/raw.csv")
    run(
        repo, "make", "--no-print-directory", "-o", "install", "RUN=", "dvc-remote", f"URL={remote}"
    )
    run(repo, "dvc", "push", "-q")
    run(repo, "git", "add", "-A")
    run(repo, "git", "commit", "-qm", "raw data, remote")

    (stored,) = [p for p in remote.rglob("*") if p.is_file()]
    stored.write_text("a,b\n1,999\n")  # someone with write access to the bucket
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo), str(clone))
    done = run(clone, "dvc", "pull", check=False)
    assert done.returncode != 0, done.stdout
    assert not (clone / "data/raw.csv").exists()
    assert "verify = true" in (clone / ".dvc/config").read_text()  # committed, not local


def test_dvc_remote_needs_a_url(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    done = run(
        repo, "make", "--no-print-directory", "-o", "install", "RUN=", "dvc-remote", check=False
    )
    assert done.returncode != 0 and "give URL=" in done.stderr
