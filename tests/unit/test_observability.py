"""The dashboard, recording rules and alerts against the code: the checked-in dashboard is what tools/dashboards.py
generates, every metric they read exists in a process's catalogue (built in-process from the metrics classes) with
the labels they use, every rule has promtool unit tests (firing and not firing for alerts), every alert a runbook.
promtool itself runs in tests/integration/test_promtool.py."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from tools import dashboards

from escalator.gateway.metrics import GatewayMetrics
from escalator.notify.metrics import NotifyMetrics
from escalator.service.metrics import BulkHistogram, Metrics

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana"
RECORDED = re.compile(r"\b[a-z_]+:escalator_[a-z0-9_]+:[a-z0-9_]+\b")
RAW = re.compile(r"\bescalator_[a-z0-9_]+\b")
SCRAPE_LABELS = {"job", "instance"}


def _rules(name: str) -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / name).read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _catalogue_objects() -> list[object]:
    """Every metrics object of the three processes, each on its own registry (their names may not collide)."""
    registry = CollectorRegistry()
    worker = Metrics(registry)
    worker.add_state_collector(list, lambda: 0, lambda: {0: 0})
    return [worker, GatewayMetrics(CollectorRegistry()), NotifyMetrics(CollectorRegistry())]


@cache
def catalogue() -> dict[str, frozenset[str]]:
    """Exposed series name -> label names, for the worker, the gateway and the relay (suffixes included: counters'
    ``_total``, histograms' ``_bucket`` (with ``le``) / ``_sum`` / ``_count``)."""
    found: dict[str, frozenset[str]] = {}
    for owner in _catalogue_objects():
        for metric in vars(owner).values():
            if isinstance(metric, MetricWrapperBase):
                kind, name, labels = metric._type, metric._name, tuple(metric._labelnames)
            elif isinstance(metric, BulkHistogram):
                kind, name, labels = "histogram", metric.name, metric.labelnames
            else:
                continue
            found.update(_exposed(kind, name, labels))
    worker_registry = _catalogue_objects()[0].registry  # type: ignore[attr-defined]
    for family in worker_registry.collect():  # the gauges read at scrape time (a custom collector)
        if family.type == "gauge" and family.name not in found:
            found[family.name] = frozenset(k for s in family.samples for k in s.labels)
    return found


def _exposed(kind: str, name: str, labels: tuple[str, ...]) -> dict[str, frozenset[str]]:
    plain = frozenset(labels)
    if kind == "counter":
        return {f"{name.removesuffix('_total')}_total": plain}
    if kind == "histogram":
        return {f"{name}_bucket": plain | {"le"}, f"{name}_sum": plain, f"{name}_count": plain}
    return {name: plain}


def recorded() -> dict[str, frozenset[str]]:
    """Recording rule name -> its labels, read from its level (``job_priority:...`` keeps job and priority)."""
    return {rule["record"]: frozenset(rule["record"].split(":")[0].split("_")) for rule in _rules("rules.yml")}


def every_expression() -> list[tuple[str, str]]:
    """(where, PromQL) for every dashboard panel query, recording rule and alert."""
    found = [(f"dashboard panel {title!r}", expr) for title, expr in dashboards.expressions()]
    found += [(f"rules.yml {r['record']}", r["expr"]) for r in _rules("rules.yml")]
    found += [(f"alerts.yml {r['alert']}", r["expr"]) for r in _rules("alerts.yml")]
    return found


def _labels_used(expr: str) -> set[str]:
    """Label names in matchers and in by/without/on/ignoring clauses."""
    used = set()
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        used |= {label.strip() for label in clause.split(",") if label.strip()}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        used |= set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    return used


def test_the_checked_in_dashboard_is_the_generators_output() -> None:
    assert dashboards.OUTPUT.read_text() == dashboards.render(), "deploy/grafana is stale: run `make dashboards`"


def test_the_dashboard_covers_what_on_call_needs() -> None:
    text = " ".join(expr for _, expr in dashboards.expressions())
    for needed in (
        "escalator_events_consumed",
        "escalator_events_rejected",
        "escalator_sla_breaches",
        "escalator_sla_warnings",
        "breached_ratio_1h",
        "breached_ratio_1d",
        "escalator_escalations",
        "escalator_tickets_at_risk",
        "escalator_open_tickets",
        "escalator_timer_lateness_seconds:p50",
        "escalator_timer_lateness_seconds:p99",
        "escalator_event_lag_seconds",
        "max by (partition) (escalator_consumer_lag)",
        "escalator_recovery_seconds",
        "by (instance) (escalator_ready)",
        "escalator_policy_info",
        "escalator_gateway_",
        "escalator_notify_",
    ):
        assert needed in text, f"no dashboard panel reads {needed}"
    titles = [panel["title"] for panel in json.loads(dashboards.render())["panels"]]
    assert len(set(titles)) == len(titles), "two panels with one title"


def test_the_catalogue_is_read_from_the_processes() -> None:
    names = catalogue()
    assert names["escalator_sla_breaches_total"] == {"metric", "priority", "policy"}
    assert names["escalator_timer_lateness_seconds_bucket"] == {"le"}
    assert names["escalator_gateway_requests_total"] == {"source", "outcome"}
    assert names["escalator_consumer_lag"] == {"partition"}
    assert "escalator_notify_ready" in names and "escalator_open_tickets" in names


@pytest.mark.parametrize(("where", "expr"), every_expression(), ids=lambda v: v if " " in v else "")
def test_every_metric_and_label_used_exists(where: str, expr: str) -> None:
    names, rules = catalogue(), recorded()
    unknown_rules = set(RECORDED.findall(expr)) - set(rules)
    assert not unknown_rules, f"{where} reads recording rules rules.yml does not define: {unknown_rules}"
    raw = set(RAW.findall(RECORDED.sub(" ", expr)))
    unknown = raw - set(names)
    assert not unknown, f"{where} reads metrics no process exports: {sorted(unknown)}"
    allowed = set(SCRAPE_LABELS)
    for metric in raw:
        allowed |= names[metric]
    for rule in RECORDED.findall(expr):
        allowed |= rules[rule]
    assert _labels_used(expr) <= allowed, f"{where} uses labels its metrics lack: {_labels_used(expr) - allowed}"
    assert raw or RECORDED.search(expr), f"{where} reads no escalator metric"


def test_recording_rules_are_named_after_the_labels_they_keep() -> None:
    for rule in _rules("rules.yml"):
        level = set(rule["record"].split(":")[0].split("_"))
        outer = re.match(r"\s*\(?\s*(?:sum|histogram_quantile\([^,]+,\s*sum)\s+by\s*\(([^)]*)\)", rule["expr"])
        assert outer, rule["record"]
        kept = {label.strip() for label in outer.group(1).split(",")} - {"le"}
        assert kept == level, f"{rule['record']} keeps {kept}"


def _promtool_tests(name: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load((PROMETHEUS / "tests" / name).read_text())["tests"])


def test_every_alert_has_a_promtool_test_firing_and_one_not_firing() -> None:
    firing, quiet = set(), set()
    for case in _promtool_tests("alerts_test.yml"):
        for check in case.get("alert_rule_test", ()):
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules("alerts.yml")}
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


def test_every_recording_rule_has_a_promtool_test_of_its_value() -> None:
    tested = {
        check["expr"]
        for case in _promtool_tests("rules_test.yml")
        for check in case.get("promql_expr_test", ())
        if check["exp_samples"]
    }
    assert set(recorded()) - tested == set()


def test_every_alert_has_a_runbook_in_docs_operations() -> None:
    headings = set(re.findall(r"^### (\w+)", (ROOT / "docs" / "operations.md").read_text(), flags=re.MULTILINE))
    alerts = {rule["alert"] for rule in _rules("alerts.yml")}
    assert alerts - headings == set(), "docs/operations.md has no runbook section (### Name) for these"


def test_grafana_provisioning_points_at_the_generated_dashboard() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "escalator.yaml").read_text())
    (entry,) = provider["providers"]
    assert entry["type"] == "file" and entry["options"]["path"].endswith("/escalator")
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text())
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    board = json.loads(dashboards.OUTPUT.read_text())
    assert board["uid"] == dashboards.UID
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource"}
