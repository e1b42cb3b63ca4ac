"""monitoring/grafana/dashboard.json: a well-formed Grafana dashboard over the service's metrics
(that each metric is really exposed is checked against a live server in
tests/integration/test_monitor.py)."""

from __future__ import annotations

from tests.dashboard import load, metric_names, queries


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
    topics = ("request rate", "latency", "errors", "rejections", "predictions", "request log")
    for topic in topics:
        assert topic in titles, topic
    assert metric_names(d) == {
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
        "bentoml_service_request_in_progress",
        "mlops_rejected_requests_total",
        "mlops_predictions_total",
        "mlops_request_log_dropped_total",
        "mlops_request_log_errors_total",
        "mlops_failed_predictions_total",
        "mlops_model_latency_seconds_bucket",
        "mlops_shadow_failures_total",
    }
    assert any("histogram_quantile(0.99" in q for q in queries(d))


def test_dashboard_has_a_panel_per_rollout_role() -> None:
    d = load()
    roles = next(v for v in d["templating"]["list"] if v["name"] == "role")
    assert roles["query"].split(",") == ["champion", "challenger", "shadow"]
    repeated = [p for p in d["panels"] if p.get("repeat") == "role"]
    assert repeated and all('role="$role"' in t["expr"] for p in repeated for t in p["targets"])
    by_role = [q for q in queries(d) if "mlops_model_latency_seconds_bucket" in q]
    assert by_role and all("by (le, role)" in q for q in by_role)
