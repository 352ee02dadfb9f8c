"""The relay's Prometheus metrics on an injected registry. Bounded labels only: channel, reason -- never a
ticket id, a recipient or an address."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["NotifyMetrics"]

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0)


class NotifyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.delivered = Counter(
            "escalator_notify_delivered_total", "Notifications delivered, by channel.", ["channel"], registry=registry
        )
        self.failed = Counter(
            "escalator_notify_failed_total",
            "Failed delivery attempts, by channel and reason.",
            ["channel", "reason"],
            registry=registry,
        )
        self.dead_lettered = Counter(
            "escalator_notify_dead_lettered_total",
            "Notifications sent to the delivery dead-letter topic, by channel (none: unreadable records).",
            ["channel"],
            registry=registry,
        )
        self.attempts = Counter(
            "escalator_notify_attempts_total", "Delivery attempts, by channel.", ["channel"], registry=registry
        )
        self.latency = Histogram(
            "escalator_notify_delivery_latency_seconds",
            "From the notification's fired_at to its delivery.",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.digests = Counter(
            "escalator_notify_digests_total",
            "Digests delivered (one message for several notifications).",
            registry=registry,
        )
        self.suppressed = Counter(
            "escalator_notify_suppressed_total",
            "Notifications not sent, by reason (duplicate, stale, unrouted, not_triggered: a resolve for an alert "
            "whose trigger was never delivered; other_type: an output type the relay does not deliver).",
            ["reason"],
            registry=registry,
        )
        self.resolves_delivered = Counter(
            "escalator_notify_resolves_delivered_total",
            "PagerDuty resolve events delivered (one per service the trigger went to).",
            registry=registry,
        )
        self.resolves_held = Counter(
            "escalator_notify_resolves_held_total",
            "Resolves that waited for their own trigger (still queued or retrying) to settle first.",
            registry=registry,
        )
        self.ready = Gauge("escalator_notify_ready", "1 once the relay has its partitions.", registry=registry)
