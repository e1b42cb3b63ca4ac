"""Model quality on a labelled batch, compared with the evaluation metrics
(reports/metrics.json): a drop beyond ``monitor.quality_drop`` fails the check."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_template import metrics, paths
from mlops_template.errors import ConfigError, DataError


def quality(
    frame: pd.DataFrame,
    output: np.ndarray,
    meta: dict[str, Any],
    baseline: dict[str, float] | None,
    allowed: dict[str, float],
    threshold: float,
) -> dict[str, Any]:
    """Metrics on the labelled batch vs the evaluation metrics; a drop beyond ``allowed`` fails."""
    if baseline is None and allowed:
        raise DataError(
            f"{paths.METRICS}: missing, so the labelled batch's quality has nothing to be compared "
            "with (pull or reproduce the evaluate stage, or empty monitor.quality_drop)"
        )
    baseline = baseline or {}
    classes = np.asarray(meta["classes"]) if meta.get("classes") is not None else None
    current = metrics.score(
        meta["task"], frame[meta["target"]].to_numpy(), output, classes, threshold
    )
    checks: dict[str, Any] = {}
    for name, limit in sorted(allowed.items()):
        if name not in current or name not in baseline:
            raise ConfigError(
                f"monitor.quality_drop.{name}: not a metric of this task "
                f"(known: {', '.join(sorted(baseline))})"
            )
        now, before = current[name], baseline[name]
        drop = (before - now) if metrics.HIGHER_IS_BETTER[name] else (now - before)
        failed = bool(np.isfinite(drop) and drop > limit)
        checks[name] = {
            "baseline": before,
            "current": now,
            "drop": round(drop, 6),
            "allowed": limit,
            "failed": failed,
        }
    return {"metrics": current, "checks": checks}
