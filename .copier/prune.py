"""copier migration, run on every `copier update` (copier.yml `_migrations`): delete the files
the old template version generated that the new one does not, unless the user changed them.

copier's update writes the new version over the project and re-applies the user's changes, but
never deletes: a package folder whose answer changed (`package_name`) or a module the template
moved stays behind, and an old copy of a package shadows nothing but confuses everyone.

``before``: render the old version with the old answers (both read from the answers file,
not yet rewritten) and store each file's sha256 in the git directory.
``after``: render the new version with the new answers; every path the old render had and the
new one lacks is deleted if its bytes are still the old render's, and named on stderr if the
user changed it (then it is theirs to move). Empty folders left behind go too.
``adopt SRC`` (a task after `copier copy --data adopt=true` over a clone made before copier):
delete the tracked files the template no longer generates whose bytes are the template's own at
that path in its history (SRC: the template's clone), i.e. modules a later version moved; the
user's files, and files copier.yml never generates (dvc.lock, outputs), stay.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from copier import run_copy
from pathspec import PathSpec

ANSWERS = Path(".copier-answers.yml")


def _manifest_path() -> Path:
    git_path = subprocess.run(
        ["git", "rev-parse", "--git-path", "copier-prune.json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(git_path)


def _render(answers: dict[str, Any]) -> dict[str, str]:
    """sha256 of every file the template at ``answers['_commit']`` generates with them."""
    data = {k: v for k, v in answers.items() if not k.startswith("_")}
    with tempfile.TemporaryDirectory(prefix="copier-prune.") as tmp:
        run_copy(
            answers["_src_path"],
            tmp,
            data=data,
            vcs_ref=answers["_commit"],
            defaults=True,
            quiet=True,
            unsafe=True,
            skip_tasks=True,
            overwrite=True,
        )
        root = Path(tmp)
        return {
            path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in root.rglob("*")
            if path.is_file() and not path.is_symlink()
        }


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def before() -> None:
    answers = yaml.safe_load(ANSWERS.read_text())
    _manifest_path().write_text(json.dumps(_render(answers)))


def after() -> int:
    manifest = _manifest_path()
    if not manifest.exists():
        print("prune: no record of the old version (before-migration did not run)", file=sys.stderr)
        return 0
    old = json.loads(manifest.read_text())
    new = _render(yaml.safe_load(ANSWERS.read_text()))
    for rel in sorted(set(old) - set(new)):
        path = Path(rel)
        if not path.is_file():
            continue
        if _sha256(path) != old[rel]:
            print(
                f"prune: kept {rel}: the template no longer generates it, but you changed it",
                file=sys.stderr,
            )
            continue
        _delete(rel, "no longer generated")
    manifest.unlink()
    return 0


def _git(*args: str, cwd: str | Path = ".") -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
    ).stdout


def _delete(rel: str, why: str) -> None:
    path = Path(rel)
    path.unlink()
    print(f"prune: deleted {rel} ({why})", file=sys.stderr)
    for parent in path.parents:
        if parent == Path(".") or any(parent.iterdir()):
            break
        parent.rmdir()


def adopt(src: Path) -> None:
    config = yaml.safe_load((src / "copier.yml").read_text())
    never = PathSpec.from_lines(
        "gitwildmatch", [p for p in config.get("_exclude", []) if "{" not in p]
    )
    generated = set(_render(yaml.safe_load(ANSWERS.read_text())))
    for rel in _git("ls-files", "-z").split("\0"):
        if not rel or rel in generated or never.match_file(rel) or not Path(rel).is_file():
            continue
        blob = _git("hash-object", "--", rel).strip()
        seen = _git(
            "log", "--all", "--format=%H", "-1", f"--find-object={blob}", "--", rel, cwd=src
        )
        if seen.strip():
            _delete(rel, "the template's own file, no longer generated")


if __name__ == "__main__":
    stage = sys.argv[1] if len(sys.argv) > 1 else ""
    if stage == "before":
        before()
    elif stage == "after":
        sys.exit(after())
    elif stage == "adopt" and len(sys.argv) == 3:
        adopt(Path(sys.argv[2]))
    else:
        sys.exit(f"usage: prune.py before|after|adopt SRC (got {sys.argv[1:]})")
