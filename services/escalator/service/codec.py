"""Wire helpers of the service: table values, tick messages, output and dead-letter headers. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..core import DecodeError, Emit, TicketState

__all__ = [
    "decode_table_value",
    "decode_tick",
    "dlq_headers",
    "encode_table_value",
    "encode_tick",
    "headers_dict",
    "output_headers",
    "table_json",
]

TABLE_FORMAT = 1


def encode_table_value(partition: int, state: TicketState) -> bytes:
    """Ticket state plus the partition it lives on (the rebuild of the deadline index filters by it)."""
    return orjson.dumps({"f": TABLE_FORMAT, "p": partition, "s": state.to_dict()})


def table_json(raw: Any) -> Any:
    """A table value as JSON data: the memory store hands back the bytes written, the RocksDB store hands them
    back already JSON-decoded."""
    return orjson.loads(raw) if isinstance(raw, (bytes, bytearray, memoryview, str)) else raw


def decode_table_value(raw: bytes | str | Mapping[str, Any]) -> tuple[int, TicketState]:
    doc = table_json(raw)
    if doc.get("f") != TABLE_FORMAT:
        raise ValueError(f"unsupported table value format {doc.get('f')!r}")
    return int(doc["p"]), TicketState.from_dict(doc["s"])


def encode_tick(ticket: str, wake_ms: int) -> bytes:
    return orjson.dumps({"ticket": ticket, "wake_ms": wake_ms})


def decode_tick(raw: bytes) -> tuple[str, int]:
    doc = orjson.loads(raw)
    return str(doc["ticket"]), int(doc["wake_ms"])


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
        extra.append(("escalator-dlq-event-id", error.event_id.encode("utf-8", "replace")))
    return kept + extra
