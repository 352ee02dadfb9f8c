"""Wire helpers of the service: output and dead-letter headers. Pure (store values: ``escalator.stream.codec``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from ..core import DecodeError, Emit

__all__ = ["dead_letter", "headers_dict", "output_headers"]


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


def _kept_headers(original: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in headers_dict(original).items() if not k.startswith("escalator-dlq-")]


def _origin_headers(error: DecodeError, origin: tuple[str, int, int]) -> list[tuple[str, bytes]]:
    topic, partition, offset = origin
    extra = [
        ("escalator-dlq-reason", error.reason.encode()),
        ("escalator-dlq-detail", error.detail.encode("utf-8", "replace")[:4000]),
        ("escalator-dlq-topic", topic.encode()),
        ("escalator-dlq-partition", str(partition).encode()),
        ("escalator-dlq-offset", str(offset).encode()),
    ]
    if error.event_id:
        extra.append(("escalator-dlq-event-id", error.event_id.encode("utf-8", "replace")[:1024]))  # ids may be huge
    return extra


#: A record header's bytes beyond its key and value (varint lengths), counted generously.
_HEADER_OVERHEAD = 10
#: What a cut dead letter keeps of the original key and headers at most (the value gets the rest); a small limit
#: keeps less (ESCALATOR_DLQ_MAX_BYTES >= 10,000 leaves room for the escalator-dlq-* headers, ~5.3 KB at most).
_KEY_KEPT = 1024
_HEADERS_KEPT = 16 * 1024


def _size(headers: Iterable[tuple[str, bytes]]) -> int:
    return sum(len(k.encode()) + len(v) + _HEADER_OVERHEAD for k, v in headers)


def dead_letter(
    key: bytes | None,
    value: bytes | None,
    original: Iterable[tuple[str, bytes]] | Mapping[str, bytes] | None,
    error: DecodeError,
    origin: tuple[str, int, int],
    max_bytes: int,
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """The dead-letter copy of a bad input record: key, value and headers as they were plus the ``escalator-dlq-*``
    headers -- cut to fit ``max_bytes`` when the original is too big to be produced again (a record the broker took
    may exceed what a producer may send: librdkafka refuses ~1 MB; a producer that refuses the copy would stop the
    worker on that record for ever). A cut copy keeps the start of the key (1 KiB), as many original headers as fit
    in 16 KiB, and the start of the value, and says so: ``escalator-dlq-truncated`` lists what was cut (``key``,
    ``headers``, ``value``), ``escalator-dlq-value-bytes`` and ``escalator-dlq-value-sha256`` describe the original
    value, which stays in the input topic at the offset the record names."""
    kept = _kept_headers(original)
    extra = _origin_headers(error, origin)
    if len(key or b"") + len(value or b"") + _size(kept) + _size(extra) <= max_bytes:
        return key, value, kept + extra
    cut: list[str] = []
    key_kept, headers_kept = min(_KEY_KEPT, max_bytes // 16), min(_HEADERS_KEPT, max_bytes // 4)
    if key is not None and len(key) > key_kept:
        key = key[:key_kept]
        cut.append("key")
    fitting: list[tuple[str, bytes]] = []
    fitting_size = 0
    for header in kept:
        fitting_size += _size([header])
        if fitting_size > headers_kept:
            cut.append("headers")
            break
        fitting.append(header)
    if value is not None:
        extra += [
            ("escalator-dlq-value-bytes", str(len(value)).encode()),
            ("escalator-dlq-value-sha256", hashlib.sha256(value).hexdigest().encode()),
        ]
    room = max_bytes - len(key or b"") - _size(fitting) - _size(extra) - _size([("escalator-dlq-truncated", b"")])
    room -= len(b"key,headers,value")
    if value is not None and len(value) > room:
        value = value[: max(room, 0)]
        cut.append("value")
    extra.append(("escalator-dlq-truncated", ",".join(cut).encode()))
    return key, value, fitting + extra
