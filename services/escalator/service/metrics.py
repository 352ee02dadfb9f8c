"""Prometheus metrics of the worker, all on an injected registry (tests read samples from their own registry).

Names: ``escalator_`` prefix, base units (seconds), ``_total`` counters, bounded labels only (event type, reason,
level, kind, metric, priority, policy id, partition number -- never a ticket id).

The processor reports once per batch (:meth:`Metrics.batch`, the ``Observer`` of ``escalator.stream.runtime``);
the gauges of held tickets are read at scrape time from counters the processor keeps up to date as states change
(``escalator.stream.gauges``) -- a scrape never scans tickets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..core import ClockOutcome, Emit, parse_rfc3339_ms
from ..stream.codec import PRIORITIES

if TYPE_CHECKING:
    from ..stream.gauges import PartitionGauges
    from ..stream.runtime import BatchStats

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
        self.batches = Counter("escalator_batches_total", "Batches processed.", registry=registry)
        self.batch_records = Counter(
            "escalator_batch_records_total",
            "Records consumed in batches (input and incident signals).",
            registry=registry,
        )
        self.changelog_records = Counter(
            "escalator_changelog_records_total", "State changes written to changelogs.", registry=registry
        )
        self.fenced = Counter(
            "escalator_ownership_checks_total",
            "Partitions re-validated: lease (a batch outlived the lease), gap (another writer in a changelog), "
            "released (another worker's claim holds).",
            ["reason"],
            registry=registry,
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
        self.recovery_seconds = Histogram(
            "escalator_recovery_seconds",
            "Time to recover one partition store from its changelog (after an assignment or a re-validation).",
            ["store"],
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300),
            registry=registry,
        )
        self.recovered_records = Counter(
            "escalator_recovered_records_total",
            "Changelog records read during recovery: applied, or ignored (written by an owner whose claim was "
            "replaced).",
            ["store", "result"],
            registry=registry,
        )

    # -- the processor's Observer -----------------------------------------------------------------------------------
    def on_batch(self, stats: BatchStats) -> None:
        self.batches.inc()
        self.batch_records.inc(stats.records)
        if stats.changelog_records:
            self.changelog_records.inc(stats.changelog_records)
        for etype, n in stats.consumed.items():
            self.events_consumed.labels(etype).inc(n)
        for reason, n in stats.rejected.items():
            self.events_rejected.labels(reason).inc(n)
        if stats.duplicates:
            self.events_duplicate.inc(stats.duplicates)
        if stats.purged:
            self.tickets_purged.inc(stats.purged)
        lag = self.event_lag
        for ms in stats.event_lags_ms:
            lag.observe(ms / 1000 if ms > 0 else 0.0)
        for o in stats.outcomes:
            self.observe_outcome(o)
        for emit, priority, timer in stats.emits:
            self.observe_emits((emit,), stats.produced_ms, timer=timer, priority=priority)

    def on_ready(self, ready: bool) -> None:
        self.ready.set(1 if ready else 0)

    def on_recovered(self, store: str, partition: int, seconds: float, applied: int, ignored: int) -> None:
        self.recovery_seconds.labels(store).observe(seconds)
        if applied:
            self.recovered_records.labels(store, "applied").inc(applied)
        if ignored:
            self.recovered_records.labels(store, "ignored").inc(ignored)

    def on_stall(self) -> None:
        self.recovery_stalls.inc()

    def on_fence(self, reason: str) -> None:
        self.fenced.labels(reason).inc()

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
        self,
        gauges: Callable[[], list[PartitionGauges]],
        now_ms: Callable[[], int],
        lag: Callable[[], dict[int, int]],
    ) -> None:
        self.registry.register(_StateCollector(gauges, now_ms, lag))


def _fired_ms(data: dict[str, Any]) -> int | None:
    text = data.get("fired_at")
    return parse_rfc3339_ms(text) if isinstance(text, str) else None


class _StateCollector(Collector):
    """Gauges read at scrape time from the processor's incrementally kept counts and the consumer."""

    def __init__(
        self,
        gauges: Callable[[], list[PartitionGauges]],
        now_ms: Callable[[], int],
        lag: Callable[[], dict[int, int]],
    ) -> None:
        self.gauges = gauges
        self.now_ms = now_ms
        self.lag = lag

    def collect(self) -> Iterable[GaugeMetricFamily]:
        parts = self.gauges()
        open_tickets = GaugeMetricFamily(
            "escalator_open_tickets", "Open tickets owned by this worker, by priority.", labels=["priority"]
        )
        for i, priority in enumerate(PRIORITIES):
            open_tickets.add_metric([priority], sum(g.open_by_priority[i] for g in parts))
        yield open_tickets
        now = self.now_ms()
        yield GaugeMetricFamily(
            "escalator_tickets_at_risk",
            "Open tickets with an SLA threshold within the next 15 minutes (to the minute), or overdue.",
            value=sum(g.at_risk(now, AT_RISK_HORIZON_MS) for g in parts),
        )
        yield GaugeMetricFamily(
            "escalator_table_tickets",
            "Tickets held in this worker's state stores.",
            value=sum(g.tickets for g in parts),
        )
        yield GaugeMetricFamily(
            "escalator_deadline_index_entries",
            "Tickets with a deadline or purge instant armed.",
            value=sum(g.armed for g in parts),
        )
        lag = GaugeMetricFamily(
            "escalator_consumer_lag", "Input records not yet processed, by partition.", labels=["partition"]
        )
        for partition, value in sorted(self.lag().items()):
            lag.add_metric([str(partition)], value)
        yield lag

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []
