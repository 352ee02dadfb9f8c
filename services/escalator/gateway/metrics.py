"""The gateway's metrics, on an injected registry. Labels are bounded: ``source`` is one of the four sources,
``outcome`` one of :data:`OUTCOMES`, ``reason`` a mapping or decoding reason -- never an id or a vendor value."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["OUTCOMES", "GatewayMetrics"]

#: How a request ended (the ``outcome`` label).
OUTCOMES: Final[tuple[str, ...]] = (
    "accepted",  # 202, every record acknowledged by the broker
    "ignored",  # 202, nothing to produce (a vendor event escalator has no use for)
    "bad_request",  # 400 / 415
    "unauthorized",  # 401
    "too_large",  # 413
    "unprocessable",  # 422, nothing produced
    "rate_limited",  # 429
    "unavailable",  # 503, the broker failed or did not answer in time
)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "escalator_gateway_requests",
            "Requests by source and outcome.",
            ["source", "outcome"],
            registry=registry,
        )
        self.mapping_failures = Counter(
            "escalator_gateway_mapping_failures",
            "Requests that could not be mapped to valid v1 events, by source and reason.",
            ["source", "reason"],
            registry=registry,
        )
        self.events = Counter(
            "escalator_gateway_events", "v1 events produced and acknowledged, by source.", ["source"], registry=registry
        )
        self.produce_seconds = Histogram(
            "escalator_gateway_produce_seconds",
            "From the first record of a request handed to the producer to the broker's last acknowledgement.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )

    def request(self, source: str, outcome: str) -> None:
        assert outcome in OUTCOMES, outcome
        self.requests.labels(source, outcome).inc()
