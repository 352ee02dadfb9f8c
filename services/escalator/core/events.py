"""Event contract v1, input side: the pure decoder of CloudEvents 1.0 ticket events (their pydantic models are in
:mod:`escalator.core.envelopes` and re-exported here).

A record on ``ticket-events`` carries one CloudEvent in *structured* mode (the JSON envelope is the value) or in
*binary* mode (``ce_*`` headers carry the attributes, the value is the ``data`` JSON). The record key, when present,
must equal the event's ``subject`` (the ticket id). :func:`decode_record` turns one record into an :class:`Event` or
raises :class:`DecodeError` with a machine-readable ``reason`` (used for the dead-letter topic and metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, get_args

import msgspec
import orjson
from pydantic import ValidationError

from .envelopes import (
    DATA_VALIDATORS,
    ENVELOPES,
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    MAX_TEXT,
    VALIDATORS,
    WIRE_DECODER,
    CommentedData,
    CreatedData,
    DeescalatedData,
    DlqReason,
    EscalationAcknowledgedData,
    EscalationRequestedData,
    EventData,
    IncidentResolvedData,
    RatedData,
    StatusChangedData,
    UpdatedData,
)
from .timefmt import parse_rfc3339_ms

__all__ = [
    "DecodeError",
    "Event",
    "decode_record",
    "decode_record_reference",
    "event_from_envelope",
    "trace_context",
]


#: An event's kind: the class of its data as a small integer, set when the event is built, for the engine to
#: dispatch on (compiled code reaches an interpreted module's class through a dict lookup at each use; a native
#: integer attribute is one load). ``KIND_OTHER``: data of no class below.
KIND_OTHER: Final = 0
KIND_CREATED: Final = 1
KIND_UPDATED: Final = 2
KIND_COMMENTED: Final = 3
KIND_STATUS_CHANGED: Final = 4
KIND_ESCALATION_REQUESTED: Final = 5
KIND_ESCALATION_ACKNOWLEDGED: Final = 6
KIND_RATED: Final = 7
KIND_DEESCALATED: Final = 8
KIND_INCIDENT_RESOLVED: Final = 9
_KIND_OF: Final[dict[type, int]] = {
    CreatedData: KIND_CREATED,
    UpdatedData: KIND_UPDATED,
    CommentedData: KIND_COMMENTED,
    StatusChangedData: KIND_STATUS_CHANGED,
    EscalationRequestedData: KIND_ESCALATION_REQUESTED,
    EscalationAcknowledgedData: KIND_ESCALATION_ACKNOWLEDGED,
    RatedData: KIND_RATED,
    DeescalatedData: KIND_DEESCALATED,
    IncidentResolvedData: KIND_INCIDENT_RESOLVED,
}


#: The interpreted envelopes module's constants the decoder reads per record, held in compiled statics (a name
#: imported from it is looked up in this module's dict at each use).
_MAX_TEXT: Final = MAX_TEXT
_WIRE: Final = WIRE_DECODER


def _kind_of(data: object) -> int:
    return _KIND_OF.get(type(data), KIND_OTHER)


@dataclass(slots=True, init=False)
class Event:
    """A decoded, validated ticket event as the engine sees it."""

    id: str
    source: str
    type: str
    time_ms: int
    ticket_id: str
    data: EventData
    traceparent: str | None = None  # the CloudEvents distributed-tracing extension, when valid (W3C trace context)
    kind: int = field(default=KIND_OTHER, compare=False, repr=False)  # derived from ``data``: see KIND_OTHER
    # ``data``'s fields by name: the model's own dict, once read (see data_fields); the decoder sets it when its
    # memo of validated payloads holds it, so that events of the same small payload share one read
    values: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def __init__(
        self,
        id: str,
        source: str,
        type: str,
        time_ms: int,
        ticket_id: str,
        data: EventData,
        traceparent: str | None = None,
    ) -> None:
        self.id = id
        self.source = source
        self.type = type
        self.time_ms = time_ms
        self.ticket_id = ticket_id
        self.data = data
        self.traceparent = traceparent
        self.kind = _kind_of(data)  # (``type`` is a parameter here)
        self.values = None

    def data_fields(self) -> dict[str, Any]:
        """``data``'s fields by name (the validated model's own dict; tests/unit/test_envelopes_fields.py checks
        that it holds exactly the model's fields): what the engine reads of the data. Each attribute read on a
        pydantic model goes through its ``__getattr__`` hook, a few hundred instructions; a dict read does not."""
        values = self.values
        if values is None:
            values = self.values = self.data.__dict__
        return values

    @property
    def dedup_key(self) -> str:
        return f"{self.source}\x1f{self.id}"


class DecodeError(ValueError):
    """A record that is not a valid v1 ticket event. ``reason`` is one of :data:`DecodeError.REASONS`."""

    REASONS: Final[tuple[str, ...]] = get_args(DlqReason)

    def __init__(self, reason: str, detail: str, event_id: str | None = None) -> None:
        assert reason in self.REASONS, reason
        self.reason = reason
        self.detail = detail
        self.event_id = event_id
        super().__init__(f"{reason}: {detail}")


def event_from_envelope(env: Any) -> Event:
    extra = env.model_extra or {}
    return Event(
        id=env.id,
        source=env.source,
        type=env.type,
        time_ms=parse_rfc3339_ms(env.time),
        ticket_id=env.subject,
        data=env.data,
        traceparent=trace_context(extra.get("traceparent")),
    )


def trace_context(value: object) -> str | None:
    """A W3C ``traceparent`` (``00-<32 hex>-<16 hex>-<2 hex>``, not all zeros), else ``None``: an extension
    attribute escalator carries, never a reason to refuse an event."""
    if type(value) is not str or len(value) != 55:
        return None
    if value[2] != "-" or value[35] != "-" or value[52] != "-" or value.startswith("ff"):
        return None
    digits = value[:2] + value[3:35] + value[36:52] + value[53:]
    if any(ch not in "0123456789abcdef" for ch in digits):
        return None
    if value[3:35] == "0" * 32 or value[36:52] == "0" * 16:
        return None
    return value


def _str_header(headers: Mapping[str, bytes], name: str) -> str | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("schema_violation", f"header {name} is not UTF-8") from None


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("ticket.", "function-")))
        parts.append(f"{loc or '(event)'}: {err['msg']}")
    more = exc.error_count() - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode_record(
    value: bytes | None,
    key: bytes | None = None,
    headers: Mapping[str, bytes] | None = None,
    *,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Event:
    """Decode one Kafka record (structured or binary CloudEvents mode) into an :class:`Event`."""
    if value is not None and len(value) <= max_bytes and (headers is None or "ce_specversion" not in headers):
        fast = _wire_event(value)
        if fast is not None:
            if key is not None:
                _check_key(key, fast.ticket_id, fast.id)
            return fast
    doc, etype, event_id = _document(value, headers, max_bytes)
    event = _fast_event(doc, etype)
    if event is None:
        event = _model_event(doc, etype, event_id)
    if key is not None:
        _check_key(key, event.ticket_id, event_id)
    return event


def decode_record_reference(
    value: bytes | None,
    key: bytes | None = None,
    headers: Mapping[str, bytes] | None = None,
    *,
    max_bytes: int = MAX_EVENT_BYTES,
) -> Event:
    """:func:`decode_record` without its fast path: every envelope goes through the pydantic model. The contract's
    definition; tests check that :func:`decode_record` gives exactly the same event or error for any input."""
    doc, etype, event_id = _document(value, headers, max_bytes)
    event = _model_event(doc, etype, event_id)
    if key is not None:
        _check_key(key, event.ticket_id, event_id)
    return event


def _document(
    value: bytes | None, headers: Mapping[str, bytes] | None, max_bytes: int
) -> tuple[dict[str, Any], str, str | None]:
    """Parse the record into the CloudEvent document; checks that come before schema validation."""
    if value is None:
        raise DecodeError("invalid_json", "the record has no value")
    if len(value) > max_bytes:
        raise DecodeError("oversize", f"value is {len(value)} bytes, the limit is {max_bytes}")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("invalid_json", str(exc)) from None
    if headers is not None and "ce_specversion" in headers:  # binary mode
        doc: dict[str, Any] = {}
        for name, raw in headers.items():
            if name.startswith("ce_"):
                doc[name[3:]] = _str_header({name: raw}, name)
        ctype = _str_header(headers, "content-type")
        if ctype is not None:
            doc.setdefault("datacontenttype", ctype.split(";")[0].strip())
        doc["data"] = body
    else:
        if type(body) is not dict:
            raise DecodeError("not_an_object", f"expected a JSON object, got {type(body).__name__}")
        doc = body
    event_id = doc.get("id")
    if type(event_id) is not str:
        event_id = None
    if doc.get("specversion") != "1.0":
        raise DecodeError(
            "unsupported_specversion", f"specversion must be '1.0', got {doc.get('specversion')!r}", event_id
        )
    etype = doc.get("type")
    known = _TYPE_NAMES.get(etype) if type(etype) is str else None
    if known is None:
        raise DecodeError(
            "unknown_type", f"unknown event type {etype!r}; expected one of {', '.join(EVENT_TYPES)}", event_id
        )
    if known == "ticket.escalation_requested" and doc.get("data") is None:
        doc = {**doc, "data": {}}
    return doc, known, event_id


#: Each event type's name, as one shared string: a decoded event holds it instead of the copy its record carried.
_TYPE_NAMES: Final[dict[str, str]] = {name: name for name in ENVELOPES}


def _model_event(doc: dict[str, Any], etype: str, event_id: str | None) -> Event:
    try:
        env = VALIDATORS[etype].validate_python(doc)
    except ValidationError as exc:
        raise DecodeError("schema_violation", _format_errors(exc), event_id) from None
    return event_from_envelope(env)


def _texts_fit(event_id: str, source: str, subject: str) -> bool:
    """The envelope model's bounds on the id, source and subject (``NonEmpty``: 1 to MAX_TEXT characters)."""
    return 0 < len(event_id) <= _MAX_TEXT and 0 < len(source) <= _MAX_TEXT and 0 < len(subject) <= _MAX_TEXT


def _fast_event(doc: dict[str, Any], etype: str) -> Event | None:
    """The envelope model's checks written out by hand, and only the ``data`` model validated by pydantic (building
    the envelope model costs more than validating the data). Accepts only documents the envelope model accepts, and
    builds the same :class:`Event`; anything unusual returns ``None`` and the model decides (and words the error).
    """
    event_id = doc.get("id")
    source = doc.get("source")
    subject = doc.get("subject")
    time_text = doc.get("time")
    if (
        type(event_id) is not str
        or type(source) is not str
        or type(subject) is not str
        or type(time_text) is not str
        or not _texts_fit(event_id, source, subject)
        or "data" not in doc
    ):
        return None
    ctype = doc.get("datacontenttype")
    if ctype is not None and ctype != "application/json":
        return None
    schema = doc.get("dataschema")
    if schema is not None and type(schema) is not str:
        return None
    try:
        time_ms = parse_rfc3339_ms(time_text)
        payload = _validated_data(etype, doc["data"])
    except (ValueError, ValidationError):  # ValidationError is a ValueError; both named for clarity
        return None
    return _event(event_id, source, etype, time_ms, subject, payload, trace_context(doc.get("traceparent")))


def _wire_event(value: bytes) -> Event | None:
    """The fast route of a structured-mode record: the envelope read straight from its bytes by msgspec
    (:class:`~escalator.core.envelopes.WireEnvelope`), ``data`` validated from its raw JSON (memoised for small flat
    payloads). The struct refuses any attribute but the envelope's own; what msgspec skips unread is then only an
    earlier duplicate ``data`` (plain, or spelled with ``\\u`` escapes), where it checks neither UTF-8 nor number
    ranges as orjson does. So the route is taken only for a record that cannot hold one: a compact record (its
    length is exactly that of its attributes written without whitespace or escapes, so nothing else is in it),
    or else an ASCII one with one plain ``data`` and no ``\\u`` escape. Anything else, and any record it does not
    accept, returns ``None``: the route through the models (orjson, then pydantic) decides, and words the error."""
    try:
        env = _WIRE.decode(value)
    except (msgspec.DecodeError, RecursionError):  # a ValidationError is a DecodeError
        return None
    # the attributes in one call, in the struct's order (cheaper than reading them one by one from compiled code)
    specversion, event_id, source, type_text, time_text, subject, raw, ctype, schema, traceparent, tracestate = (
        msgspec.structs.astuple(env)
    )
    data_bytes = bytes(raw)
    if len(value) != _compact_size(
        specversion, event_id, source, type_text, time_text, subject, data_bytes, ctype, schema, traceparent, tracestate
    ) and (not value.isascii() or value.count(b'"data"') != 1 or (value.find(92) >= 0 and b"\\u" in value)):
        return None
    if specversion != "1.0":
        return None
    etype = _TYPE_NAMES.get(type_text)
    if etype is None:
        return None
    if not _texts_fit(event_id, source, subject) or (ctype is not None and ctype != "application/json"):
        return None
    try:
        time_ms = parse_rfc3339_ms(time_text)
        payload = _raw_data(etype, data_bytes)
    except (ValueError, ValidationError):  # orjson's JSONDecodeError is a ValueError, as is pydantic's error
        return None
    if payload is None:
        return None
    return _event(event_id, source, etype, time_ms, subject, payload, trace_context(traceparent))


def _event(
    event_id: str, source: str, etype: str, time_ms: int, subject: str, payload: _Payload, traceparent: str | None
) -> Event:
    """The fast routes' event: its data and, when the memo holds it, the data's fields dict."""
    event = Event(event_id, source, etype, time_ms, subject, payload.data, traceparent)
    event.values = payload.values
    return event


def _compact_size(
    specversion: str,
    event_id: str,
    source: str,
    type_text: str,
    time_text: str,
    subject: str,
    data: bytes,
    ctype: str | None,
    schema: str | None,
    traceparent: str | None,
    tracestate: str | None,
) -> int:
    """The length of the shortest JSON text of these attributes: ``{"specversion":"…",…,"data":…}`` without
    whitespace or escapes (a text's length in characters is its length in bytes only when it is ASCII; any escape,
    whitespace, repeated or escaped key, or non-ASCII character makes a record of these values longer)."""
    size = 79 + len(specversion) + len(event_id) + len(source) + len(type_text) + len(time_text) + len(subject)
    size += len(data)
    if ctype is not None:
        size += 21 + len(ctype)  # ,"datacontenttype":"…"
    if schema is not None:
        size += 16 + len(schema)  # ,"dataschema":"…"
    if traceparent is not None:
        size += 17 + len(traceparent)  # ,"traceparent":"…"
    if tracestate is not None:
        size += 16 + len(tracestate)  # ,"tracestate":"…"
    return size


#: Event types whose valid payload always holds an object (a ticket's requester, the changes): never a small flat
#: payload, so never looked up in or added to the memo (hashing a ticket's unique payload would be wasted).
_NEVER_FLAT: Final = frozenset({"ticket.created", "ticket.updated"})


class _Payload:
    """A validated ``data`` model and its fields dict (``Event.values``; ``None``: not read yet), as the memos keep
    them (a compiled class: a memo hit hands over the object it holds; a tuple would be unpacked and built again)."""

    def __init__(self, data: EventData, values: dict[str, Any] | None) -> None:
        self.data = data
        self.values = values


#: The fast route's validated ``data`` of small flat payloads, with their fields dicts, per event type (``None``: a
#: type in _NEVER_FLAT), by their raw JSON: a payload seen before (``{"status":"open"}``...) is neither parsed nor
#: validated again (the models are frozen; one serves all).
_raw_validated: Final[dict[str, dict[bytes, _Payload] | None]] = {
    name: None if name in _NEVER_FLAT else {} for name in ENVELOPES
}


def _raw_data(etype: str, raw: bytes) -> _Payload | None:
    memo = _raw_validated[etype]
    if memo is not None:
        hit = memo.get(raw)
        if hit is not None:
            return hit
    data = orjson.loads(raw)
    if data is None:  # ``"data": null`` (a request without a body): the models' route says what it means
        return None
    validated: EventData = DATA_VALIDATORS[etype].validate_python(data)
    if memo is not None and _memo_key(etype, data) is not None:  # what the value-keyed memo below keeps
        if len(memo) >= _VALIDATED_LIMIT:
            memo.clear()
        payload = _Payload(validated, validated.__dict__)
        memo[raw] = payload
        return payload
    return _Payload(validated, None)


#: Validated ``data`` models of small flat payloads (``{"status": "open"}``, ``{"author": "agent", "public": true}``
#: ...), which make up most of a ticket's events, with their fields dicts. The models are frozen, so one instance
#: serves every event whose payload has the same keys, value types and values; pydantic still validates each
#: distinct payload once.
_validated: Final[dict[tuple[object, ...], _Payload]] = {}
_VALIDATED_LIMIT: Final = 4096
_MEMO_MAX_KEYS: Final = 4
_MEMO_MAX_TEXT: Final = 64


def _validated_data(etype: str, data: object) -> _Payload:
    key = _memo_key(etype, data)
    if key is None:
        validated: EventData = DATA_VALIDATORS[etype].validate_python(data)
        return _Payload(validated, None)
    hit = _validated.get(key)
    if hit is not None:
        return hit
    validated = DATA_VALIDATORS[etype].validate_python(data)
    if len(_validated) >= _VALIDATED_LIMIT:
        _validated.clear()
    payload = _Payload(validated, validated.__dict__)
    _validated[key] = payload
    return payload


def _memo_key(etype: str, data: object) -> tuple[object, ...] | None:
    """``(type, key, value type, value, ...)`` for a flat payload of a few short scalars, else ``None``. Value
    types are part of the key: ``True == 1`` and ``1 == 1.0`` in Python, not in the contract."""
    if type(data) is not dict:
        return None
    n = len(data)
    if n > _MEMO_MAX_KEYS:
        return None
    if n <= 2:  # most payloads (a status, a score, an author and a flag): the key built without a list
        first: tuple[object, ...] | None = None
        for k, v in data.items():
            t = type(v)
            if not _memo_value(v):
                return None
            if first is None:
                first = (etype, k, t, v)
            else:
                return (*first, k, t, v)
        return first if first is not None else (etype,)
    parts: list[object] = [etype]
    for k, v in data.items():
        t = type(v)
        if not _memo_value(v):
            return None
        parts.append(k)
        parts.append(t)
        parts.append(v)
    return tuple(parts)


def _memo_value(v: object) -> bool:
    """A value a memo key can hold: ``None``, a bool, an int or a short text (exact types)."""
    if type(v) is str:
        return len(v) <= _MEMO_MAX_TEXT
    return v is None or type(v) is bool or type(v) is int


def _check_key(key: bytes, subject: str, event_id: str | None) -> None:
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("key_mismatch", "record key is not UTF-8", event_id) from None
    if key_text != subject:
        raise DecodeError("key_mismatch", f"record key {key_text!r} differs from subject {subject!r}", event_id)
