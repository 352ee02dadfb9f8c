"""Event contract v1, input side: the pydantic models of the CloudEvents 1.0 ticket events (the definition of the
contract and of its JSON Schemas). The decoder that applies them to Kafka records is :mod:`escalator.core.events`.

Kept apart from the decoder so that the decoder can be compiled (mypyc compiles no pydantic models).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from .timefmt import parse_rfc3339_ms
from .vocabulary import Author, DlqReason, Priority, Status

__all__ = [
    "DATA_VALIDATORS",
    "ENVELOPES",
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "MAX_TEXT",
    "VALIDATORS",
    "WIRE_DECODER",
    "CommentedData",
    "CreatedData",
    "DeescalatedData",
    "DlqReason",
    "EscalationAcknowledgedData",
    "EscalationRequestedData",
    "EventData",
    "IncidentResolvedData",
    "IncidentResolvedEvent",
    "Priority",
    "RatedData",
    "Requester",
    "Status",
    "StatusChangedData",
    "TicketChanges",
    "TicketCommented",
    "TicketCreated",
    "TicketDeescalated",
    "TicketEscalationAcknowledged",
    "TicketEscalationRequested",
    "TicketEventEnvelope",
    "TicketRated",
    "TicketStatusChanged",
    "TicketUpdated",
    "UpdatedData",
    "WireEnvelope",
    "envelope_adapter",
]

MAX_EVENT_BYTES = 1_000_000
FieldValue = str | int | float | bool
NonEmpty = Annotated[str, Field(min_length=1, max_length=1024)]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _zone(value: str | None) -> str | None:
    """An IANA time zone the calendars can use (``Europe/Amsterdam``); anything else is a schema violation."""
    if value is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as America/New_York") from None
    return value


TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)]


class Requester(_Data):
    id: NonEmpty
    tier: Annotated[str, Field(min_length=1, max_length=100)] = "standard"
    timezone: TimeZone | None = Field(
        default=None, description="The requester's IANA time zone, for calendars with timezone: requester."
    )


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
    requester_timezone: TimeZone | None = None
    fields: dict[str, FieldValue | None] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> TicketChanges:
        if not self.model_fields_set:
            raise ValueError("changes must name at least one attribute")
        return self


class UpdatedData(_Data):
    changes: TicketChanges


class CommentedData(_Data):
    author: Author
    public: bool = True


class StatusChangedData(_Data):
    status: Status
    root_cause: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="Why the ticket happened, when it is solved (v1, additive): for escalation analytics."
    )


class EscalationRequestedData(_Data):
    """Someone asks for an escalation. ``by``: requester, agent, manager or system (other text counts as the
    requester); ``level`` and ``team`` (a functional escalation to that team) are optional (v1, additive)."""

    reason: str | None = None
    by: str | None = None
    level: int | None = Field(default=None, ge=1, le=99)
    team: Annotated[str, Field(min_length=1, max_length=100)] | None = None


class DeescalatedData(_Data):
    """An agent de-escalates: the escalation named (or those at ``level`` and above, or all that are open) is
    resolved (v1, additive)."""

    by: NonEmpty
    escalation_id: str | None = None
    level: int | None = Field(default=None, ge=1, le=99)
    reason: str | None = None


class IncidentResolvedData(_Data):
    """An upstream incident or status tool says an incident escalator detected is over (v1, additive): the one
    ``incident_id`` names, or the one open for ``rule`` and ``group_value`` ("mail is back up")."""

    incident_id: NonEmpty | None = Field(
        default=None, description="The incident.detected id: incident:{rule}:{value}:{ms}."
    )
    rule: NonEmpty | None = Field(default=None, description="With group_value: the incident open for them.")
    group_value: NonEmpty | None = None
    by: str | None = Field(default=None, max_length=200)
    reason: str | None = None

    @model_validator(mode="after")
    def _names_one(self) -> IncidentResolvedData:
        if (self.incident_id is None) == (self.rule is None or self.group_value is None):
            raise ValueError("give incident_id, or rule and group_value")
        return self


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


class TicketDeescalated(_Envelope):
    type: Literal["ticket.deescalated"]
    data: DeescalatedData


class IncidentResolvedEvent(_Envelope):
    """Not about one ticket: the worker routes it to the incident's window (its ``subject`` is the incident id)."""

    type: Literal["incident.resolved"]
    data: IncidentResolvedData


TicketEventEnvelope = Annotated[
    TicketCreated
    | TicketUpdated
    | TicketCommented
    | TicketStatusChanged
    | TicketEscalationRequested
    | TicketEscalationAcknowledged
    | TicketRated
    | TicketDeescalated
    | IncidentResolvedEvent,
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
    "ticket.deescalated": TicketDeescalated,
    "incident.resolved": IncidentResolvedEvent,
}
EVENT_TYPES = tuple(ENVELOPES)
# The models' own validators, called directly (what ``model_validate`` does, without its per-call overhead).
VALIDATORS = {name: model.__pydantic_validator__ for name, model in ENVELOPES.items()}
MAX_TEXT = 1024  # NonEmpty's max_length
DATA_VALIDATORS = {
    name: model.model_fields["data"].annotation.__pydantic_validator__  # type: ignore[union-attr]
    for name, model in ENVELOPES.items()
}
envelope_adapter: TypeAdapter[Any] = TypeAdapter(TicketEventEnvelope)


class WireEnvelope(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The decoder's fast route (``events.decode_record``): a structured-mode envelope read straight from the
    record's bytes, ``data`` kept as its raw JSON. Not a definition of the contract -- the pydantic models above
    are: this only reads the attributes with their JSON types, and whatever it refuses (any other attribute, a
    wrong type, malformed JSON) goes the route through those models, which accepts or words the error. Its
    fields are read in this order (``events._wire_event``); ``gc=False``: it holds only texts and bytes."""

    specversion: str
    id: str
    source: str
    type: str
    time: str
    subject: str
    data: msgspec.Raw
    datacontenttype: str | None = None
    dataschema: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None


WIRE_DECODER: Final = msgspec.json.Decoder(WireEnvelope)

EventData = (
    CreatedData
    | UpdatedData
    | CommentedData
    | StatusChangedData
    | EscalationRequestedData
    | EscalationAcknowledgedData
    | RatedData
    | DeescalatedData
    | IncidentResolvedData
)
