"""CloudEvents over HTTP (``POST /v1/events``) -> CloudEvents documents, and every document -> the exact record the
worker accepts.

The three HTTP modes of the CloudEvents HTTP binding: *structured* (``Content-Type: application/cloudevents+json``,
the body is the event), *binary* (the attributes in ``ce-*`` headers, the body is ``data``) and *batched*
(``application/cloudevents-batch+json``, a JSON array of structured events). Whatever the mode, the gateway produces
structured-mode records, and checks each with the worker's own decoder (:func:`escalator.core.events.decode_record`)
on the very bytes it will produce: the gateway accepts exactly what the worker accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from ..core.events import DecodeError, decode_record
from .delivery import Record
from .mapping import Unmappable

__all__ = ["UnsupportedMedia", "documents", "to_record"]

STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
RECORD_HEADERS: Final = (("content-type", STRUCTURED.encode()),)
_FIELD_OF: Final = {
    "oversize": "(event)",
    "invalid_json": "(event)",
    "not_an_object": "(event)",
    "unsupported_specversion": "specversion",
    "unknown_type": "type",
    "key_mismatch": "subject",
}


class UnsupportedMedia(ValueError):
    """Neither structured, batched nor binary CloudEvents (answered 415)."""


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Unmappable("(body)", "invalid_json", f"not JSON: {exc}") from None


def documents(body: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]]:
    """The CloudEvents documents of one ``POST /v1/events`` request (structured, batched or binary mode)."""
    media = headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media == STRUCTURED:
        doc = _json(body)
        if not isinstance(doc, dict):
            raise Unmappable("(body)", "not_an_object", f"expected a JSON object, got {type(doc).__name__}")
        return [doc]
    if media == BATCH:
        batch = _json(body)
        if not isinstance(batch, list):
            raise Unmappable("(body)", "not_an_object", f"expected a JSON array, got {type(batch).__name__}")
        for i, item in enumerate(batch):
            if not isinstance(item, dict):
                raise Unmappable(f"[{i}]", "not_an_object", f"expected a JSON object, got {type(item).__name__}")
        return batch
    if "ce-specversion" in headers:
        doc = {name[3:].lower(): value for name, value in headers.items() if name.lower().startswith("ce-")}
        if media:
            doc["datacontenttype"] = media
        doc["data"] = _json(body) if body else None
        return [doc]
    raise UnsupportedMedia(
        f"unsupported Content-Type {media or '(none)'!r}: send {STRUCTURED}, {BATCH}, or binary mode (ce-* headers)"
    )


def to_record(doc: Mapping[str, Any], max_bytes: int, where: str = "") -> Record:
    """The record of one v1 event document: keyed by its subject (the ticket id), checked by the worker's decoder
    on exactly these bytes. Raises :class:`Unmappable` naming the field (``where`` prefixes it in a batch)."""
    value = orjson.dumps(doc)
    subject = doc.get("subject")
    key = subject.encode() if isinstance(subject, str) else None
    try:
        decode_record(value, key, max_bytes=max_bytes)
    except DecodeError as exc:
        field = _FIELD_OF.get(exc.reason)
        if field is None:  # schema_violation: "data.priority: Input should be ...; ..."
            field = exc.detail.partition(": ")[0] if ": " in exc.detail else "(event)"
        raise Unmappable(f"{where}{field}", exc.reason, exc.detail) from None
    assert key is not None  # decoded: the subject is a non-empty string
    return Record(key, value, RECORD_HEADERS)
