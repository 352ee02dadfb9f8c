"""Event contract v1, input side: CloudEvents 1.0 ticket events, their pydantic models and a pure decoder.

A record on ``ticket-events`` carries one CloudEvent in *structured* mode (the JSON envelope is the value) or in
*binary* mode (``ce_*`` headers carry the attributes, the value is the ``data`` JSON). The record key, when present,
must equal the event's ``subject`` (the ticket id). :func:`decode_record` turns one record into an :class:`Event` or
raises :class:`DecodeError` with a machine-readable ``reason`` (used for the dead-letter topic and metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from .timefmt import parse_rfc3339_ms

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "CommentedData",
    "CreatedData",
    "DecodeError",
    "EscalationAcknowledgedData",
    "EscalationRequestedData",
    "Event",
    "RatedData",
    "StatusChangedData",
    "TicketChanges",
    "TicketEventEnvelope",
    "UpdatedData",
    "decode_record",
    "event_from_envelope",
]

MAX_EVENT_BYTES = 1_000_000
Priority = Literal["low", "normal", "high", "urgent"]
Status = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
FieldValue = str | int | float | bool
NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requester(_Data):
    id: NonEmpty
    tier: Annotated[str, Field(min_length=1, max_length=100)] = "standard"


class CreatedData(_Data):
    priority: Priority
    status: Status = "new"
    requester: Requester
    group: str | None = None
    assignee: str | None = None
    channel: str | None = None
    tags: list[str] = Field(default_factory=list, max_length=500)
    product: str | None = None
    category: str | None = None
    fields: dict[str, FieldValue] = Field(default_factory=dict)


class TicketChanges(_Data):
    """Attributes that changed; absent keys are unchanged. ``tags`` is the new full list; in ``fields`` a ``null``
    value removes the field. ``group``/``assignee``/``product``/``category`` may be set to ``null``."""

    priority: Priority | None = None
    group: str | None = None
    assignee: str | None = None
    tags: list[str] | None = Field(default=None, max_length=500)
    product: str | None = None
    category: str | None = None
    requester_tier: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    fields: dict[str, FieldValue | None] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> TicketChanges:
        if not self.model_fields_set:
            raise ValueError("changes must name at least one attribute")
        return self


class UpdatedData(_Data):
    changes: TicketChanges


class CommentedData(_Data):
    author: Literal["agent", "requester"]
    public: bool = True


class StatusChangedData(_Data):
    status: Status


class EscalationRequestedData(_Data):
    reason: str | None = None
    by: str | None = None


class EscalationAcknowledgedData(_Data):
    by: NonEmpty
    escalation_id: str | None = None
    level: int | None = Field(default=None, ge=1, le=99)


class RatedData(_Data):
    score: int = Field(ge=1, le=5)
    comment: str | None = None


class _Envelope(BaseModel):
    # CloudEvents extension attributes are allowed (and ignored) on the envelope.
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    time: str = Field(
        json_schema_extra={"format": "date-time"}, description="RFC 3339 timestamp with an offset (Z or +hh:mm)"
    )
    subject: NonEmpty = Field(description="The ticket id; equals the Kafka record key when one is present.")
    datacontenttype: Literal["application/json"] | None = None
    dataschema: str | None = None

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        parse_rfc3339_ms(v)
        return v


class TicketCreated(_Envelope):
    type: Literal["ticket.created"]
    data: CreatedData


class TicketUpdated(_Envelope):
    type: Literal["ticket.updated"]
    data: UpdatedData


class TicketCommented(_Envelope):
    type: Literal["ticket.commented"]
    data: CommentedData


class TicketStatusChanged(_Envelope):
    type: Literal["ticket.status_changed"]
    data: StatusChangedData


class TicketEscalationRequested(_Envelope):
    type: Literal["ticket.escalation_requested"]
    data: EscalationRequestedData = Field(default_factory=EscalationRequestedData)


class TicketEscalationAcknowledged(_Envelope):
    type: Literal["ticket.escalation_acknowledged"]
    data: EscalationAcknowledgedData


class TicketRated(_Envelope):
    type: Literal["ticket.rated"]
    data: RatedData


TicketEventEnvelope = Annotated[
    TicketCreated
    | TicketUpdated
    | TicketCommented
    | TicketStatusChanged
    | TicketEscalationRequested
    | TicketEscalationAcknowledged
    | TicketRated,
    Field(discriminator="type"),
]
ENVELOPES: dict[str, type[_Envelope]] = {
    "ticket.created": TicketCreated,
    "ticket.updated": TicketUpdated,
    "ticket.commented": TicketCommented,
    "ticket.status_changed": TicketStatusChanged,
    "ticket.escalation_requested": TicketEscalationRequested,
    "ticket.escalation_acknowledged": TicketEscalationAcknowledged,
    "ticket.rated": TicketRated,
}
EVENT_TYPES = tuple(ENVELOPES)
# The models' own validators, called directly (what ``model_validate`` does, without its per-call overhead).
_VALIDATORS = {name: model.__pydantic_validator__ for name, model in ENVELOPES.items()}
_MAX_TEXT = 1024  # NonEmpty's max_length
_DATA_VALIDATORS = {
    name: model.model_fields["data"].annotation.__pydantic_validator__  # type: ignore[union-attr]
    for name, model in ENVELOPES.items()
}
_ADAPTER: TypeAdapter[Any] = TypeAdapter(TicketEventEnvelope)

EventData = (
    CreatedData
    | UpdatedData
    | CommentedData
    | StatusChangedData
    | EscalationRequestedData
    | EscalationAcknowledgedData
    | RatedData
)


@dataclass(frozen=True, slots=True)
class Event:
    """A decoded, validated ticket event as the engine sees it."""

    id: str
    source: str
    type: str
    time_ms: int
    ticket_id: str
    data: EventData

    @property
    def dedup_key(self) -> str:
        return f"{self.source}\x1f{self.id}"


#: Why a record was dead-lettered (``processing_error``: it decoded, but applying it failed -- a bug, isolated).
DlqReason = Literal[
    "oversize",
    "invalid_json",
    "not_an_object",
    "unsupported_specversion",
    "unknown_type",
    "schema_violation",
    "key_mismatch",
    "processing_error",
]


class DecodeError(ValueError):
    """A record that is not a valid v1 ticket event. ``reason`` is one of :data:`DecodeError.REASONS`."""

    REASONS: tuple[str, ...] = get_args(DlqReason)

    def __init__(self, reason: str, detail: str, event_id: str | None = None) -> None:
        assert reason in self.REASONS, reason
        self.reason = reason
        self.detail = detail
        self.event_id = event_id
        super().__init__(f"{reason}: {detail}")


def event_from_envelope(env: _Envelope) -> Event:
    return Event(
        id=env.id,
        source=env.source,
        type=env.type,  # type: ignore[attr-defined]
        time_ms=parse_rfc3339_ms(env.time),
        ticket_id=env.subject,
        data=env.data,  # type: ignore[attr-defined]
    )


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
    headers = headers or {}
    if value is None:
        raise DecodeError("invalid_json", "the record has no value")
    if len(value) > max_bytes:
        raise DecodeError("oversize", f"value is {len(value)} bytes, the limit is {max_bytes}")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("invalid_json", str(exc)) from None
    binary_mode = "ce_specversion" in headers
    if binary_mode:
        doc: dict[str, Any] = {}
        for name, raw in headers.items():
            if name.startswith("ce_"):
                doc[name[3:]] = _str_header({name: raw}, name)
        ctype = _str_header(headers, "content-type")
        if ctype is not None:
            doc.setdefault("datacontenttype", ctype.split(";")[0].strip())
        doc["data"] = body
    else:
        if not isinstance(body, dict):
            raise DecodeError("not_an_object", f"expected a JSON object, got {type(body).__name__}")
        doc = body
    event_id = doc.get("id") if isinstance(doc.get("id"), str) else None
    if doc.get("specversion") != "1.0":
        raise DecodeError(
            "unsupported_specversion", f"specversion must be '1.0', got {doc.get('specversion')!r}", event_id
        )
    etype = doc.get("type")
    if not isinstance(etype, str) or etype not in ENVELOPES:
        raise DecodeError(
            "unknown_type", f"unknown event type {etype!r}; expected one of {', '.join(EVENT_TYPES)}", event_id
        )
    if etype == "ticket.escalation_requested" and doc.get("data") is None:
        doc = {**doc, "data": {}}
    return doc, etype, event_id


def _model_event(doc: dict[str, Any], etype: str, event_id: str | None) -> Event:
    try:
        env = _VALIDATORS[etype].validate_python(doc)
    except ValidationError as exc:
        raise DecodeError("schema_violation", _format_errors(exc), event_id) from None
    return event_from_envelope(env)


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
        or not 0 < len(event_id) <= _MAX_TEXT
        or not 0 < len(source) <= _MAX_TEXT
        or not 0 < len(subject) <= _MAX_TEXT
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
        data = _DATA_VALIDATORS[etype].validate_python(doc["data"])
    except (ValueError, ValidationError):  # ValidationError is a ValueError; both named for clarity
        return None
    return Event(event_id, source, etype, time_ms, subject, data)


def _check_key(key: bytes, subject: str, event_id: str | None) -> None:
    try:
        key_text = key.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError("key_mismatch", "record key is not UTF-8", event_id) from None
    if key_text != subject:
        raise DecodeError("key_mismatch", f"record key {key_text!r} differs from subject {subject!r}", event_id)


def validate_envelope(doc: Mapping[str, Any]) -> Any:
    """Validate a JSON-ready mapping against the whole v1 union (used by tests and tooling)."""
    return _ADAPTER.validate_python(doc)
