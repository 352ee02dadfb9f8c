"""Prometheus metrics of the worker, all on an injected registry (tests read samples from their own registry).

Names: ``escalator_`` prefix, base units (seconds), ``_total`` counters, bounded labels only (event type, reason,
level, kind, metric, priority, policy id, partition number -- never a ticket id).

The processor reports once per batch (:meth:`Metrics.batch`, the ``Observer`` of ``escalator.stream.runtime``);
the gauges of held tickets are read at scrape time from counters the processor keeps up to date as states change
(``escalator.stream.gauges``) -- a scrape never scans tickets.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter as CounterOf
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from ..core import ClockOutcome, Emit, FirstEscalation
from ..core.vocabulary import PRIORITIES

if TYPE_CHECKING:
    from ..stream.gauges import PartitionGauges
    from ..stream.runtime import BatchStats

__all__ = [
    "BulkHistogram",
    "Metrics",
]

# SLA durations from seconds to weeks
_SLA_BUCKETS = (60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86_400, 2 * 86_400, 7 * 86_400, 30 * 86_400)
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)
AT_RISK_HORIZON_MS = 15 * 60_000


class Metrics:
    """Every metric of the worker, registered on ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._outputs()
        self._processing()

    def _outputs(self) -> None:
        """What the worker consumed and emitted, and the SLA figures of the tickets it handled."""
        c, h = self._counter, self._bulk
        self.events_consumed = c(
            "escalator_events_consumed_total", "Input events consumed, by CloudEvent type.", "type"
        )
        self.events_rejected = c(
            "escalator_events_rejected_total", "Input records sent to the dead-letter topic, by reason.", "reason"
        )
        self.events_ignored = c(
            "escalator_events_ignored_total",
            "Input events that changed nothing, by why (e.g. unknown_escalation: a de-escalation of none open).",
            "reason",
        )
        self.state_capped = c(
            "escalator_state_capped_total",
            "Per-ticket bounds reached and kept (fields, field_value, tags, acks, escalations, instances).",
            "what",
        )
        self.events_duplicate = c(
            "escalator_events_duplicate_total", "Input events ignored as duplicates (same source and id)."
        )
        self.escalations = c("escalator_escalations_total", "Escalations raised.", "level", "kind", "reason")
        self.notifications = c("escalator_notifications_total", "Notifications requested, by kind.", "kind")
        self.incidents = c("escalator_incidents_total", "Incidents detected, by rule.", "rule")
        self.escalations_by_trigger = c(
            "escalator_escalations_by_trigger_total", "Escalations raised by a trigger, by trigger id.", "trigger"
        )
        self.escalations_resolved = c(
            "escalator_escalations_resolved_total", "escalation.resolved events, by level and why.", "level", "reason"
        )
        self.escalation_open = h(
            "escalator_escalation_open_seconds",
            "How long an escalation stayed open (raised to resolved, open time of the wall clock), by level.",
            _SLA_BUCKETS,
            "level",
        )
        self.time_to_first_escalation = h(
            "escalator_time_to_first_escalation_seconds",
            "From a ticket's creation to its first escalation.raised (event time), by its level and reason.",
            _SLA_BUCKETS,
            "level",
            "reason",
        )
        sla = ("metric", "priority", "policy")
        self.sla_breaches = c("escalator_sla_breaches_total", "SLA targets breached.", *sla)
        self.sla_warnings = c("escalator_sla_warnings_total", "SLA warnings sent.", *sla)
        self.thresholds_skipped = c(
            "escalator_thresholds_skipped_total",
            "Thresholds passed over by catch_up: latest (several due at one instant; only the latest emitted).",
            "metric",
        )
        self.sla_outcomes = c(
            "escalator_sla_outcomes_total",
            "Metric cycles ended, by outcome (met|breached).",
            "metric",
            "outcome",
            "priority",
            "policy",
        )
        self.time_to_first_response = h(
            "escalator_time_to_first_response_seconds",
            "Open (calendar) time to the first public agent reply.",
            _SLA_BUCKETS,
            "priority",
        )
        self.time_to_resolution = h(
            "escalator_time_to_resolution_seconds", "Open (calendar) time to solve.", _SLA_BUCKETS, "priority"
        )
        self.timer_lateness = h(
            "escalator_timer_lateness_seconds",
            "From a threshold's logical instant to the moment its output was produced.",
            _LATENCY_BUCKETS,
        )
        self.event_lag = h(
            "escalator_event_lag_seconds",
            "From an input event's time to the moment it was processed.",
            _LATENCY_BUCKETS,
        )

    def _processing(self) -> None:
        """How the worker is doing: batches, lateness, recovery, ownership, readiness."""
        c, h, registry = self._counter, self._bulk, self.registry
        self.batches = c("escalator_batches_total", "Batches processed.")
        self.batch_seconds = h(
            "escalator_batch_duration_seconds",
            "From the end of a poll to the commit of its batch (apply, fire, produce, flush, store, commit).",
            (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        )
        self.batch_records = c(
            "escalator_batch_records_total", "Records consumed in batches (input and incident signals)."
        )
        self.changelog_records = c("escalator_changelog_records_total", "State changes written to changelogs.")
        self.fenced = c(
            "escalator_ownership_checks_total",
            "Partitions re-validated: lease (a batch outlived the lease), gap (another writer in a changelog), "
            "released (another worker's claim holds).",
            "reason",
        )
        self.tickets_purged = c(
            "escalator_tickets_purged_total", "Closed tickets removed from the table after the retention."
        )
        self.recovery_stalls = c(
            "escalator_recovery_stalls_total",
            "Times recovery made no progress for recovery_stall_seconds and a rebalance was requested.",
        )
        self.ready = Gauge(
            "escalator_ready", "1 when recovery is complete and the deadline index is built.", registry=registry
        )
        self.policy_info = Gauge(
            "escalator_policy_info",
            "The policy versions in force (value 1): the one new tickets get, and those open tickets still use "
            "(versions for new tickets only); a version published for a later instant is not in force yet.",
            ["version"],
            registry=registry,
        )
        self.policy_rejected = c(
            "escalator_policy_records_rejected_total",
            "Policies-topic records (or edits of the policy file) not used: undecodable, schema, invalid_policy, "
            "version_mismatch. The worker keeps the versions it holds.",
            "reason",
        )
        self.recovery_seconds = Histogram(
            "escalator_recovery_seconds",
            "Time to recover one partition store from its changelog (after an assignment or a re-validation).",
            ["store"],
            buckets=(0.01, 0.1, 0.5, 1, 5, 15, 60, 300),
            registry=registry,
        )
        self.recovered_records = c(
            "escalator_recovered_records_total",
            "Changelog records read during recovery: applied, or ignored (written by an owner whose claim was "
            "replaced).",
            "store",
            "result",
        )

    def set_policy_info(self, versions: list[str]) -> None:
        """The versions in force now (value 1 each); versions no longer in force leave the gauge."""
        self.policy_info.clear()
        for v in versions:
            self.policy_info.labels(v).set(1)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, list(labels), registry=self.registry)

    def _bulk(self, name: str, documentation: str, buckets: tuple[float, ...], *labels: str) -> BulkHistogram:
        histogram = BulkHistogram(name, documentation, buckets, labels)
        self.registry.register(histogram)
        return histogram

    # -- the processor's Observer -----------------------------------------------------------------------------------
    def on_batch(self, stats: BatchStats) -> None:
        self.batches.inc()
        self.batch_seconds.observe_ms((stats.seconds * 1000,))
        self.batch_records.inc(stats.records)
        if stats.changelog_records:
            self.changelog_records.inc(stats.changelog_records)
        for etype, n in stats.consumed.items():
            self.events_consumed.labels(etype).inc(n)
        for reason, n in stats.rejected.items():
            self.events_rejected.labels(reason).inc(n)
        if stats.duplicates:
            self.events_duplicate.inc(stats.duplicates)
        for reason, n in stats.ignored.items():
            self.events_ignored.labels(reason).inc(n)
        for what, n in stats.capped.items():
            self.state_capped.labels(what).inc(n)
        for metric, n in stats.skipped.items():
            self.thresholds_skipped.labels(metric).inc(n)
        if stats.purged:
            self.tickets_purged.inc(stats.purged)
        if stats.event_lags_ms:
            self.event_lag.observe_ms(stats.event_lags_ms)
        if stats.outcomes:
            self.observe_outcomes(stats.outcomes)
        if stats.emits:
            self.observe_emits(stats.emits)
        if stats.first_escalations:
            self.observe_first_escalations(stats.first_escalations)
        if stats.timer_lateness_ms:
            self.timer_lateness.observe_ms(stats.timer_lateness_ms)

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

    def observe_emits(self, emits: Iterable[tuple[Emit, str, bool]]) -> None:
        """Count a batch's outputs, ``(output, ticket priority, fired by a timer)``: one increment per label set."""
        escalations: CounterOf[tuple[str, str, str]] = CounterOf()
        notifications: CounterOf[str] = CounterOf()
        warnings: CounterOf[tuple[str, str, str]] = CounterOf()
        breaches: CounterOf[tuple[str, str, str]] = CounterOf()
        incidents: CounterOf[str] = CounterOf()
        by_trigger: CounterOf[str] = CounterOf()
        resolved: CounterOf[tuple[str, str]] = CounterOf()
        open_ms: dict[str, list[int]] = {}
        for e, priority, _timer in emits:
            data = e.event["data"]
            etype = e.event["type"]
            if etype == "escalation.raised":
                escalations[(str(data["level"]), data["kind"], data["reason"])] += 1
                if data.get("trigger") is not None:
                    by_trigger[data["trigger"]] += 1
            elif etype == "escalation.resolved":
                resolved[(str(data["level"]), data["reason"])] += 1
                open_ms.setdefault(str(data["level"]), []).append(data["open_ms"])
            elif etype == "notification.requested":
                kind = data["kind"]
                notifications[kind] += 1
                if kind == "sla_warning":
                    warnings[(data["metric"], priority, str(data["policy"]["id"]))] += 1
                elif kind == "sla_breach":
                    breaches[(data["metric"], priority, str(data["policy"]["id"]))] += 1
            elif etype == "incident.detected":
                incidents[data["rule"]] += 1
        for labels, n in escalations.items():
            self.escalations.labels(*labels).inc(n)
        for kind, n in notifications.items():
            self.notifications.labels(kind).inc(n)
        for labels, n in warnings.items():
            self.sla_warnings.labels(*labels).inc(n)
        for labels, n in breaches.items():
            self.sla_breaches.labels(*labels).inc(n)
        for rule, n in incidents.items():
            self.incidents.labels(rule).inc(n)
        for trigger, n in by_trigger.items():
            self.escalations_by_trigger.labels(trigger).inc(n)
        for (level, why), n in resolved.items():
            self.escalations_resolved.labels(level, why).inc(n)
        for level, values in open_ms.items():
            self.escalation_open.observe_ms(values, (level,))

    def observe_first_escalations(self, firsts: Iterable[FirstEscalation]) -> None:
        by_labels: dict[tuple[str, str], list[int]] = {}
        for f in firsts:
            by_labels.setdefault((str(f.level), f.reason), []).append(f.elapsed_ms)
        for labels, values in by_labels.items():
            self.time_to_first_escalation.observe_ms(values, labels)

    def observe_outcomes(self, outcomes: Iterable[ClockOutcome]) -> None:
        counts: CounterOf[tuple[str, str, str, str]] = CounterOf()
        first_response: dict[str, list[int]] = {}
        resolution: dict[str, list[int]] = {}
        for o in outcomes:
            counts[(o.metric, o.outcome, o.priority, str(o.policy_id))] += 1
            if o.agreement is not None:  # an agreement's cycle: counted above (its own policy label), not timed
                continue
            if o.ended == "achieved" and o.metric == "first_response":
                first_response.setdefault(o.priority, []).append(o.elapsed_ms)
            elif o.ended == "achieved" and o.metric == "resolution":
                resolution.setdefault(o.priority, []).append(o.elapsed_ms)
        for labels, n in counts.items():
            self.sla_outcomes.labels(*labels).inc(n)
        for priority, values in first_response.items():
            self.time_to_first_response.observe_ms(values, (priority,))
        for priority, values in resolution.items():
            self.time_to_resolution.observe_ms(values, (priority,))

    def add_state_collector(
        self,
        gauges: Callable[[], list[PartitionGauges]],
        now_ms: Callable[[], int],
        lag: Callable[[], dict[int, int]],
    ) -> None:
        self.registry.register(_StateCollector(gauges, now_ms, lag))


class BulkHistogram(Collector):
    """A histogram observed a batch at a time (one lock and one pass per batch and label set, instead of a lock per
    value), exposed through the client library's custom-collector interface like any histogram."""

    def __init__(
        self, name: str, documentation: str, buckets: tuple[float, ...], labelnames: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.buckets = buckets
        self.labelnames = labelnames
        self.bounds_ms = [b * 1000 for b in buckets]
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}  # labels -> (counts, [sum_ms])
        self.lock = threading.Lock()

    def observe_ms(self, values_ms: Iterable[float], labels: tuple[str, ...] = ()) -> None:
        """Observe durations given in milliseconds (negative ones count as 0)."""
        bounds = self.bounds_ms
        local = [0] * (len(bounds) + 1)  # the last bucket is +Inf
        total = 0.0
        for value in values_ms:
            v = value if value > 0 else 0
            local[bisect.bisect_left(bounds, v)] += 1
            total += v
        with self.lock:
            counts, sums = self.series.setdefault(labels, ([0] * len(local), [0.0]))
            for i, n in enumerate(local):
                counts[i] += n
            sums[0] += total

    def collect(self) -> Iterable[HistogramMetricFamily]:
        with self.lock:
            series = [(labels, list(counts), sums[0] / 1000) for labels, (counts, sums) in self.series.items()]
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labelnames))
        bounds = [*(repr(float(b)) for b in self.buckets), "+Inf"]
        for labels, counts, total in series:
            running = 0
            cumulative = []
            for bound, n in zip(bounds, counts, strict=True):
                running += n
                cumulative.append((bound, running))
            family.add_metric(list(labels), cumulative, total)
        yield family

    def describe(self) -> Iterable[HistogramMetricFamily]:
        return []

    def count(self, labels: tuple[str, ...] = ()) -> int:
        with self.lock:
            found = self.series.get(labels)
            return 0 if found is None else sum(found[0])


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
