"""The gate's fingerprint cache: every `dvc repro` runs the gate (its baseline is no DVC
dependency), so it first compares a digest of its inputs with the one stored in
reports/gate.json and repeats that decision, without importing DVC, when they match."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import yaml

from mlops_template import paths
from mlops_template.config import Params
from mlops_template.gate_rules import GateResult
from mlops_template.stages.gate.report import from_json

# Bump when what the fingerprint covers changes meaning (old reports are then decided again).
FINGERPRINT_VERSION = 1

# The code whose behaviour a stored decision depends on (beside the inputs): this package and
# the shared modules it runs.
_PACKAGE = Path(__file__).resolve().parents[2]
_SHARED = (
    "baseline_rules.py",
    "gate_rules.py",
    "config.py",
    "estimators.py",
    "errors.py",
    "io.py",
    "metric_directions.py",
    "paths.py",
)


def _code() -> list[Path]:
    return sorted(Path(__file__).parent.glob("*.py")) + [_PACKAGE / name for name in _SHARED]


def resolve_commit(ref: str) -> str | None:
    """The commit ``ref`` names now, by `git rev-parse` (milliseconds, no DVC import); None
    when git cannot say (no repository, no commits, an unknown ref): the full run says why."""
    args = ["git", "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"]
    try:
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    except OSError:
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def params_files(dvc_yaml: Path = paths.DVC_YAML) -> list[Path]:
    """params.yaml and every other params file a stage of dvc.yaml reads: the params diff in
    the report (`dvc params diff`) covers them."""
    files = {paths.PARAMS}
    try:
        stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        stages = {}
    for stage in stages.values() if isinstance(stages, dict) else ():
        entries = stage.get("params") if isinstance(stage, dict) else None
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, dict):
                files.update(Path(name) for name in entry)
    return sorted(files)


def fingerprint(params: Params, ref: str, override: bool) -> str | None:
    """A digest of everything the decision and its report depend on: the candidate files
    (metrics, dataset identity), the baseline's resolved commit (its metrics, identity and
    params are fixed by it), the gate params and task, the override, the params files and
    dvc.yaml (the params diff) and this code. None when the commit cannot be resolved
    cheaply: the gate then always runs in full."""
    commit = resolve_commit(ref)
    if commit is None:
        return None
    files = [paths.METRICS, paths.DATASET, paths.BASELINES, paths.DVC_YAML, *params_files()]
    inputs = {
        "version": FINGERPRINT_VERSION,
        "code": {str(path.relative_to(_PACKAGE)): _sha256(path) for path in _code()},
        "baseline": {"ref": ref, "commit": commit},
        "override": override,
        "task": params.data.task,
        "gate": params.gate.model_dump(mode="json"),
        "files": {str(path): _sha256(path) for path in files},
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def previous_result(key: str, path: Path = paths.GATE_JSON) -> GateResult | None:
    """The result in reports/gate.json if it was decided on inputs with fingerprint ``key``."""
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("fingerprint") != key:
            return None
        return from_json(data)
    except (OSError, ValueError, KeyError, TypeError):
        return None
