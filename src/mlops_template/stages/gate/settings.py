"""The gate's settings: baseline ref and override from the command line, the environment
(``MLOPS_GATE_BASELINE``, ``MLOPS_GATE_OVERRIDE``) or params.yaml, in that order."""

from __future__ import annotations

import os

from mlops_template import paths
from mlops_template.config import Params
from mlops_template.errors import ConfigError


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: expected 1/true/yes or 0/false/no")


def resolve_settings(
    params: Params, baseline_ref: str | None = None, override: bool | None = None
) -> tuple[str, bool]:
    """Precedence: command-line argument, then environment, then params.yaml."""
    ref = baseline_ref or os.environ.get(paths.ENV_GATE_BASELINE) or params.gate.baseline_ref
    if not override:
        env_override = _env_flag(paths.ENV_GATE_OVERRIDE)
        override = params.gate.override if env_override is None else env_override
    return ref, override
