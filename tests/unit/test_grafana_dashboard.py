"""monitoring/grafana/dashboard.json: a well-formed Grafana dashboard over the service's metrics
(that each metric is really exposed is checked against a live server in
tests/integration/test_monitor.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
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


def test_dashboard_structure() -> None:
    d = load()
    assert d["uid"] and d["title"] and d["schemaVersion"] >= 36
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    for panel in d["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_dashboard_covers_traffic_latency_errors_rejections_predictions() -> None:
    d = load()
    titles = " ".join(p["title"].lower() for p in d["panels"])
    for topic in ("request rate", "latency", "errors", "rejections", "predictions"):
        assert topic in titles, topic
    assert metric_names(d) == {
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
        "bentoml_service_request_in_progress",
        "mlops_rejected_requests_total",
        "mlops_predictions_total",
    }
    assert any("histogram_quantile(0.99" in q for q in queries(d))
