"""Reading monitoring/grafana/dashboard.json: the metrics and labels its queries use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "monitoring/grafana/dashboard.json"


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def metric_names(dashboard: dict[str, Any]) -> set[str]:
    """Every metric a query reads (the service's metrics are prefixed bentoml_ or mlops_)."""
    return {m for q in queries(dashboard) for m in re.findall(r"\b(?:bentoml|mlops)_\w+", q)}


def label_names(dashboard: dict[str, Any]) -> set[str]:
    """Labels used in `by (...)` clauses and in `{label="..."}` matchers."""
    found: set[str] = set()
    for q in queries(dashboard):
        for group in re.findall(r"\bby \(([^)]*)\)", q):
            found |= {g.strip() for g in group.split(",")} - {"le"}
        found |= set(re.findall(r"[{,]\s*(\w+)\s*=~?\"", q))
    return found
