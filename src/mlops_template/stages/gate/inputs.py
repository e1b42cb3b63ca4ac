"""The gate's inputs: the workspace's metrics and dataset identity, and the baseline's
through git (`git show`) and DVC (`dvc metrics diff` / `dvc params diff`)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlops_template import paths
from mlops_template.errors import ConfigError, DataError
from mlops_template.gate_rules import NO_BASELINE, Baseline


def read_candidate(path: Path = paths.METRICS) -> dict[str, Any]:
    """The workspace's metrics; {} when the file is missing (every gated metric then fails).
    A file that is not a JSON object is bad data (DataError, exit 3), not a failed gate."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON ({err}); re-run the evaluate stage") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
    return data


def _parse_identity(text: str, source: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{source}: not valid JSON ({err}); re-run the evaluate stage") from None
    contract = data.get("contract") if isinstance(data, dict) else None
    if not (isinstance(contract, dict) and "name" in contract and {"target", "task"} <= set(data)):
        raise DataError(
            f"{source}: expected a dataset identity {{contract: {{name, version}}, target, "
            f"task}}, got {text.strip()[:120]!r}"
        )
    return data


def read_identity(path: Path = paths.DATASET) -> dict[str, Any] | None:
    """What the workspace's metrics were measured on (written by evaluate); None if absent."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return _parse_identity(text, str(path))


def read_identity_at(commit: str, path: Path = paths.DATASET) -> dict[str, Any] | None:
    """The dataset identity committed at ``commit`` (`git show`); None when that commit has no
    such file (metrics committed before identities were recorded: unknown dataset)."""
    spec = f"{commit}:./{path.as_posix()}"  # ./ : relative to the project, also in a subfolder
    english = os.environ | {"LC_ALL": "C"}  # the "does not exist" message below, untranslated
    try:
        done = subprocess.run(
            ["git", "show", spec], capture_output=True, text=True, check=False, env=english
        )
    except OSError as err:
        raise DataError(f"cannot run git to read {path} at {commit[:8]}: {err}") from None
    if done.returncode == 0:
        return _parse_identity(done.stdout, f"{path} at {commit[:8]}")
    if "does not exist" in done.stderr or "exists on disk, but not in" in done.stderr:
        return None
    raise DataError(f"git show {spec} failed: {done.stderr.strip()}")


def _flatten_params(diff: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for file, keys in diff.items():
        prefix = "" if file == str(paths.PARAMS) else f"{file}:"
        for key, change in keys.items():
            out[prefix + key] = {"old": change.get("old"), "new": change.get("new")}
    return out


def _baseline_error(diff: Mapping[str, Any], ref: str, metrics_path: Path) -> Exception | None:
    """What DVC met reading ``metrics_path`` at ``ref``; None when it was read or is simply
    absent there (a first run: no baseline)."""
    errors = diff.get("errors", {}).get(ref)
    if isinstance(errors, Exception):  # the whole revision (e.g. its dvc.yaml) was unreadable
        return errors
    err = (errors or {}).get(str(metrics_path))
    return None if err is None or isinstance(err, FileNotFoundError) else err


def read_baseline(ref: str, metrics_path: Path = paths.METRICS) -> Baseline:
    """The metrics committed at ``ref`` and the params diff against it, through DVC
    (`dvc metrics diff <ref>` / `dvc params diff <ref>`). A repository without commits or a
    ref without the metrics file has no baseline (the gate passes with a note); an unknown ref
    is a ConfigError (in CI: fetch the base branch); a baseline DVC cannot read is a DataError
    -- never a silent "no baseline"."""
    from dvc.exceptions import DvcException, NotDvcRepoError
    from dvc.repo import Repo
    from dvc.scm import RevError
    from scmrepo.exceptions import RevError as ScmRevError

    try:
        repo = Repo()
    except NotDvcRepoError:
        return Baseline(ref, note=f"{NO_BASELINE}: not inside a DVC repository")
    with repo:
        if repo.scm.no_commits:
            return Baseline(ref, note=f"{NO_BASELINE}: the repository has no commits yet")
        try:
            commit = repo.scm.resolve_rev(ref)
            metrics = repo.metrics.diff(a_rev=ref, all=True)
            params = repo.params.diff(a_rev=ref, all=False)
        except (RevError, ScmRevError):
            raise ConfigError(
                f"gate.baseline_ref: unknown git revision {ref!r} (fetch it first, e.g. "
                "`git fetch origin main`; in CI check out with fetch-depth: 0)"
            ) from None
        except DvcException as err:
            raise DataError(f"DVC could not read the baseline at {ref!r}: {err}") from None
    if unreadable := _baseline_error(metrics, ref, metrics_path):
        raise DataError(
            f"{metrics_path} at {ref!r} ({commit[:8]}) is unreadable "
            f"({type(unreadable).__name__}: {unreadable}); the gate needs a readable baseline"
        )
    old = {
        name: change["old"]
        for name, change in metrics.get("diff", {}).get(str(metrics_path), {}).items()
        if change.get("old") is not None
    }
    params_diff = _flatten_params(params.get("diff", {}))
    if not old:
        note = f"{NO_BASELINE}: {ref} has no committed {metrics_path} (first run?)"
        return Baseline(ref, commit, None, params_diff, note)
    return Baseline(ref, commit, old, params_diff)
