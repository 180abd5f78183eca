"""The Grafana dashboard and Prometheus scrape config only use metrics fleetsim really exports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.metrics import FleetMetrics

DASHBOARDS = Path(__file__).resolve().parent.parent / "dashboards"
UNITS = {"s", "short", "reqps", "kwatt", "kwatth"}

_METRIC = re.compile(r"\bfleetsim_[A-Za-z0-9_]+")
# `metric{...}`: the label matchers of one selector.
_SELECTOR = re.compile(r"\b(fleetsim_[A-Za-z0-9_]+)\{([^}]*)\}")
_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _dashboard() -> dict[str, Any]:
    return json.loads((DASHBOARDS / "fleetsim.json").read_text())


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # panels nested in collapsed rows


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def _exported(metrics: FleetMetrics) -> dict[str, set[str]]:
    """Every series name the registry exposes, mapped to the label names it can carry.

    prometheus_client drops `_total` from a counter family's name and exposes `<name>_total`;
    a histogram exposes `_bucket` (with `le`), `_sum` and `_count`. Labels come from the
    samples, so only labels of series that were recorded are known.
    """
    out: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        labels: set[str] = set()
        for sample in family.samples:
            labels.update(k for k in sample.labels if k != "le")
        if family.type == "counter":
            out[family.name + "_total"] = labels
        elif family.type == "histogram":
            out[family.name + "_bucket"] = labels | {"le"}
            out[family.name + "_sum"] = labels
            out[family.name + "_count"] = labels
        else:
            out[family.name] = labels
    return out


def _recorded() -> FleetMetrics:
    """A FleetMetrics with one series of each kind, so every label name shows up."""
    metrics = FleetMetrics()
    metrics.call_done("1.6", "Heartbeat", "result", 0.01, 0.005)
    metrics.call_handled("1.6", "Reset", "handled")
    metrics.invalid_frame("1.6", "in", "Reset", "schema")
    metrics.connected(0.02, reconnect=False)
    metrics.schedule_lag(0.001)
    return metrics


def unknown_metrics(exprs: list[str], exported: set[str]) -> set[str]:
    return {name for expr in exprs for name in _METRIC.findall(expr)} - exported


def unknown_labels(expr: str, exported: dict[str, set[str]]) -> set[str]:
    """Label names an expression matches on or groups by that none of its metrics carry."""
    names = set(_METRIC.findall(expr))
    known = set().union(*(exported.get(n, set()) for n in names)) if names else set()
    used = set()
    for _, matchers in _SELECTOR.findall(expr):
        used.update(_MATCHER.findall(matchers))
    for grouping in _GROUPING.findall(expr):
        used.update(label.strip() for label in grouping.split(",") if label.strip())
    return used - known


def test_every_referenced_metric_is_exported() -> None:
    exprs = _exprs(_dashboard())
    assert exprs
    exported = set(_exported(FleetMetrics()))
    assert "fleetsim_ocpp_messages_total" in exported
    assert "fleetsim_ocpp_call_duration_seconds_bucket" in exported
    assert unknown_metrics(exprs, exported) == set()


def test_checks_can_fail() -> None:
    exported = _exported(_recorded())
    renamed = ["sum(rate(fleetsim_ocpp_call_latency_seconds_bucket[5m]))"]
    assert unknown_metrics(renamed, set(exported)) == {"fleetsim_ocpp_call_latency_seconds_bucket"}
    # A counter's bare family name and a histogram's base name are not series.
    bare = ["sum(fleetsim_connects)", "sum(fleetsim_connect_duration_seconds)"]
    assert unknown_metrics(bare, set(exported)) == set(_METRIC.findall(" ".join(bare)))
    wrong_label = 'sum by (charger) (rate(fleetsim_ocpp_messages_total{status="x"}[5m]))'
    assert unknown_labels(wrong_label, exported) == {"charger", "status"}


def test_every_label_used_exists() -> None:
    exported = _exported(_recorded())
    for expr in _exprs(_dashboard()):
        assert unknown_labels(expr, exported) == set(), expr


def test_every_panel_has_title_datasource_target_and_unit() -> None:
    dashboard = _dashboard()
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert len(panels) >= 12
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel.get("title"), panel
        assert panel.get("description"), panel["title"]
        datasource = panel.get("datasource") or {}
        assert datasource.get("uid") == "${datasource}", panel["title"]
        assert datasource.get("type") == "prometheus", panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit") in UNITS, panel["title"]
        targets = panel.get("targets") or []
        assert targets, panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert (target.get("datasource") or {}).get("uid") == "${datasource}", panel["title"]


def test_every_expression_aggregates_across_instances() -> None:
    for expr in _exprs(_dashboard()):
        if expr.startswith("label_values("):
            continue
        # Either an aggregation over all series, or a quantile of buckets summed by le.
        assert re.match(r"(sum|max)\b", expr) or re.match(
            r"histogram_quantile\([0-9.]+, sum by \(le\b", expr
        ), expr
        for selector in re.findall(r"\bfleetsim_\w+_bucket\b", expr):
            assert "histogram_quantile" in expr, selector
        # No series split by instance or job: shards are summed.
        assert not re.search(r"\b(instance|job)\b", expr), expr


def test_template_variables() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("version", "action"):
        query = variables[name]["query"]
        text = query["query"] if isinstance(query, dict) else query
        assert text.startswith("label_values(fleetsim_ocpp_messages_total"), name
        assert text.endswith(f", {name})"), name
        assert (variables[name].get("datasource") or {}).get("uid") == "${datasource}", name
    assert dashboard["refresh"] == "5s"
    assert 36 <= dashboard["schemaVersion"] <= 41


@pytest.fixture
def scrape() -> dict[str, Any]:
    return yaml.safe_load((DASHBOARDS / "prometheus.yml").read_text())


def test_scrape_config_targets_loopback_only(scrape: dict[str, Any]) -> None:
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    job = jobs["fleetsim"]
    assert job.get("scrape_interval", scrape["global"]["scrape_interval"]) == "5s"
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert "127.0.0.1:9464" in targets
    for config in jobs.values():
        for static in config.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                assert host == "127.0.0.1" and port.isdigit(), target
