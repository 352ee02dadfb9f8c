"""Wire helpers of the service: output and dead-letter headers. Pure (store values: ``escalator.stream.codec``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..core import DecodeError, Emit

__all__ = ["dlq_headers", "headers_dict", "output_headers"]


def headers_dict(headers: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> dict[str, bytes]:
    if not headers:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    return {str(k): bytes(v) if v is not None else b"" for k, v in items}


def output_headers(emit: Emit, policy_version: str) -> list[tuple[str, bytes]]:
    """Kafka headers of an output: its deterministic id (also the CloudEvent id), type and policy version."""
    ev = emit.event
    return [
        ("escalator-id", emit.id.encode()),
        ("ce_id", emit.id.encode()),
        ("ce_type", str(ev["type"]).encode()),
        ("ce_source", str(ev["source"]).encode()),
        ("ce_specversion", b"1.0"),
        ("content-type", b"application/cloudevents+json"),
        ("escalator-policy-version", policy_version.encode()),
    ]


def dlq_headers(
    original: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
    error: DecodeError,
    topic: str,
    partition: int,
    offset: int,
) -> list[tuple[str, bytes]]:
    """The original headers plus ``escalator-dlq-*`` headers naming the reason, detail and origin."""
    kept = [(k, v) for k, v in headers_dict(original).items() if not k.startswith("escalator-dlq-")]
    extra = [
        ("escalator-dlq-reason", error.reason.encode()),
        ("escalator-dlq-detail", error.detail.encode("utf-8", "replace")[:4000]),
        ("escalator-dlq-topic", topic.encode()),
        ("escalator-dlq-partition", str(partition).encode()),
        ("escalator-dlq-offset", str(offset).encode()),
    ]
    if error.event_id:
        extra.append(("escalator-dlq-event-id", error.event_id.encode("utf-8", "replace")[:1024]))  # ids may be huge
    return kept + extra
