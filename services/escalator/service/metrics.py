"""Prometheus metrics of the worker, all on an injected registry (tests read samples from their own registry).

Names: ``escalator_`` prefix, base units (seconds), ``_total`` counters, bounded labels only (event type, reason,
level, kind, metric, priority, policy id, partition number -- never a ticket id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core import ClockOutcome, Emit, parse_rfc3339_ms
from .index import DeadlineIndex

__all__ = ["Metrics"]

# SLA durations from seconds to weeks
_SLA_BUCKETS = (60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86_400, 2 * 86_400, 7 * 86_400, 30 * 86_400)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
AT_RISK_HORIZON_MS = 15 * 60_000


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.events_consumed = Counter(
            "escalator_events_consumed_total", "Input events consumed, by CloudEvent type.", ["type"], registry=registry
        )
        self.events_rejected = Counter(
            "escalator_events_rejected_total",
            "Input records sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        )
        self.events_duplicate = Counter(
            "escalator_events_duplicate_total",
            "Input events ignored as duplicates (same source and id).",
            registry=registry,
        )
        self.escalations = Counter(
            "escalator_escalations_total", "Escalations raised.", ["level", "kind", "reason"], registry=registry
        )
        self.notifications = Counter(
            "escalator_notifications_total", "Notifications requested, by kind.", ["kind"], registry=registry
        )
        self.incidents = Counter(
            "escalator_incidents_total", "Incidents detected, by rule.", ["rule"], registry=registry
        )
        self.sla_breaches = Counter(
            "escalator_sla_breaches_total", "SLA targets breached.", ["metric", "priority", "policy"], registry=registry
        )
        self.sla_warnings = Counter(
            "escalator_sla_warnings_total", "SLA warnings sent.", ["metric", "priority", "policy"], registry=registry
        )
        self.sla_outcomes = Counter(
            "escalator_sla_outcomes_total",
            "Metric cycles ended, by outcome (met|breached).",
            ["metric", "outcome", "priority", "policy"],
            registry=registry,
        )
        self.time_to_first_response = Histogram(
            "escalator_time_to_first_response_seconds",
            "Open (calendar) time to the first public agent reply.",
            ["priority"],
            buckets=_SLA_BUCKETS,
            registry=registry,
        )
        self.time_to_resolution = Histogram(
            "escalator_time_to_resolution_seconds",
            "Open (calendar) time to solve.",
            ["priority"],
            buckets=_SLA_BUCKETS,
            registry=registry,
        )
        self.timer_lateness = Histogram(
            "escalator_timer_lateness_seconds",
            "From a threshold's logical instant to the moment its output was produced.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.event_lag = Histogram(
            "escalator_event_lag_seconds",
            "From an input event's time to the moment it was processed.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.ticks_sent = Counter(
            "escalator_ticks_sent_total", "Timer ticks sent to the internal tick topic.", registry=registry
        )
        self.tickets_purged = Counter(
            "escalator_tickets_purged_total",
            "Closed tickets removed from the table after the retention.",
            registry=registry,
        )
        self.recovery_stalls = Counter(
            "escalator_recovery_stalls_total",
            "Times recovery made no progress for recovery_stall_seconds and a rebalance was requested.",
            registry=registry,
        )
        self.ready = Gauge(
            "escalator_ready", "1 when recovery is complete and the deadline index is built.", registry=registry
        )
        self.policy_info = Gauge(
            "escalator_policy_info", "The loaded policy file (value 1).", ["version"], registry=registry
        )
        self.index_rebuild_seconds = Histogram(
            "escalator_index_rebuild_seconds",
            "Time to rebuild the deadline index after a rebalance.",
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300),
            registry=registry,
        )

    def observe_emits(self, emits: Iterable[Emit], produced_ms: int, *, timer: bool, priority: str = "none") -> None:
        for e in emits:
            data = e.event["data"]
            if e.type == "escalation.raised":
                self.escalations.labels(str(data["level"]), data["kind"], data["reason"]).inc()
            elif e.type == "notification.requested":
                kind = data["kind"]
                self.notifications.labels(kind).inc()
                if kind in ("sla_warning", "sla_breach"):
                    counter = self.sla_warnings if kind == "sla_warning" else self.sla_breaches
                    counter.labels(data["metric"], priority, str(data["policy"]["id"])).inc()
            elif e.type == "incident.detected":
                self.incidents.labels(data["rule"]).inc()
            if timer:
                fired = _fired_ms(data)
                if fired is not None:
                    self.timer_lateness.observe(max(0.0, (produced_ms - fired) / 1000))

    def observe_outcome(self, o: ClockOutcome) -> None:
        self.sla_outcomes.labels(o.metric, o.outcome, o.priority, str(o.policy_id)).inc()
        if o.ended == "achieved" and o.metric == "first_response":
            self.time_to_first_response.labels(o.priority).observe(o.elapsed_ms / 1000)
        elif o.ended == "achieved" and o.metric == "resolution":
            self.time_to_resolution.labels(o.priority).observe(o.elapsed_ms / 1000)

    def add_state_collector(
        self, index: DeadlineIndex, now_ms: Callable[[], int], lag: Callable[[], dict[int, int]]
    ) -> None:
        self.registry.register(_StateCollector(index, now_ms, lag))


def _fired_ms(data: dict[str, Any]) -> int | None:
    text = data.get("fired_at")
    return parse_rfc3339_ms(text) if isinstance(text, str) else None


class _StateCollector(Collector):
    """Gauges computed at scrape time from the deadline index and the consumer."""

    def __init__(self, index: DeadlineIndex, now_ms: Callable[[], int], lag: Callable[[], dict[int, int]]) -> None:
        self.index = index
        self.now_ms = now_ms
        self.lag = lag

    def collect(self) -> Iterable[GaugeMetricFamily]:
        open_tickets = GaugeMetricFamily(
            "escalator_open_tickets", "Open tickets owned by this worker, by priority.", labels=["priority"]
        )
        counts = self.index.open_by_priority()
        for priority in ("low", "normal", "high", "urgent"):
            open_tickets.add_metric([priority], counts.get(priority, 0))
        yield open_tickets
        yield GaugeMetricFamily(
            "escalator_tickets_at_risk",
            "Open tickets with an SLA threshold within the next 15 minutes (or overdue).",
            value=self.index.at_risk(self.now_ms(), AT_RISK_HORIZON_MS),
        )
        yield GaugeMetricFamily(
            "escalator_table_tickets", "Tickets held in this worker's table partitions.", value=self.index.tickets()
        )
        yield GaugeMetricFamily(
            "escalator_deadline_index_entries", "Entries in the deadline index.", value=self.index.size()
        )
        lag = GaugeMetricFamily(
            "escalator_consumer_lag", "Input records not yet processed, by partition.", labels=["partition"]
        )
        for partition, value in sorted(self.lag().items()):
            lag.add_metric([str(partition)], value)
        yield lag

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []
