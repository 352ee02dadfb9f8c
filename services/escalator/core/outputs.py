"""Event contract v1, output side: what the engine asks adapters to publish, and the wire models of those events.

The engine returns *commands*:

* :class:`Emit` -- publish a CloudEvent (``escalation.raised`` / ``incident.detected`` on the escalations topic,
  ``notification.requested`` on the notifications topic). ``event`` is the complete JSON-ready CloudEvent; its ``id``
  is a pure function of the ticket's history and its ``time`` is the logical instant (never the send time), so the
  same history always gives byte-identical output (:func:`encode_event`).
* :class:`IncidentSignal` -- a ``ticket.created`` counted by an incident rule (routed to the incident detector).
* :class:`ClockOutcome` -- a metric cycle ended (met or breached); for metrics, reports and compliance.
* :class:`Ignored` -- the event was a duplicate.

The pydantic models below describe the published events; they generate the JSON Schemas in ``schemas/`` and the
tests validate every emitted event against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .events import DlqReason

__all__ = [
    "ESCALATIONS",
    "NOTIFICATIONS",
    "OUTPUT_SOURCE",
    "ClockOutcome",
    "Command",
    "DeadLetterHeaders",
    "Emit",
    "EscalationData",
    "EscalationRaised",
    "Ignored",
    "IncidentData",
    "IncidentDetected",
    "IncidentSignal",
    "NotificationData",
    "NotificationRequested",
    "encode_event",
]

ESCALATIONS = "escalations"
NOTIFICATIONS = "notifications"
OUTPUT_SOURCE = "urn:escalator"
SCHEMA_URN = "urn:escalator:schema:{type}:v1"
_SCHEMAS = {t: SCHEMA_URN.format(type=t) for t in ("escalation.raised", "notification.requested", "incident.detected")}


@dataclass(slots=True)
class Emit:
    channel: str  # ESCALATIONS | NOTIFICATIONS
    key: str  # Kafka record key: the ticket id (incidents: the group value)
    event: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])


@dataclass(slots=True)
class IncidentSignal:
    rule_id: str
    group_value: str
    ticket_id: str
    time_ms: int


@dataclass(slots=True)
class ClockOutcome:
    ticket_id: str
    metric: str
    cycle: int
    outcome: str  # met | breached
    ended: str  # achieved | stopped | cancelled
    elapsed_ms: int
    target_ms: int | None
    started_ms: int
    ended_ms: int
    priority: str
    policy_id: str | None


@dataclass(slots=True)
class Ignored:
    event_id: str
    reason: str  # duplicate


Command = Emit | IncidentSignal | ClockOutcome | Ignored
# Commands are plain slotted dataclasses, not frozen ones: a frozen dataclass costs ~10x more to build, and the engine
# builds several per event. Treat them as immutable values all the same.


def cloud_event(event_type: str, event_id: str, subject: str, time_text: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": OUTPUT_SOURCE,
        "type": event_type,
        "subject": subject,
        "time": time_text,
        "datacontenttype": "application/json",
        "dataschema": _SCHEMAS[event_type],
        "data": data,
    }


def notification(
    note_id: str,
    key: str,
    at_text: str,
    *,
    ticket_id: str | None,
    kind: str,
    recipients: list[dict[str, str]],
    severity: str,
    subject: str,
    body: str,
    policy_ref: dict[str, Any],
    escalation_id: str | None = None,
    incident_id: str | None = None,
    metric: str | None = None,
    cycle: int | None = None,
    due_at: str | None = None,
) -> Emit:
    """A ``notification.requested`` command (every notification the engine emits goes through here)."""
    return Emit(
        NOTIFICATIONS,
        key,
        cloud_event(
            "notification.requested",
            note_id,
            key,
            at_text,
            {
                "notification_id": note_id,
                "ticket_id": ticket_id,
                "kind": kind,
                "recipients": recipients,
                "severity": severity,
                "subject": subject,
                "body": body,
                "escalation_id": escalation_id,
                "incident_id": incident_id,
                "metric": metric,
                "cycle": cycle,
                "due_at": due_at,
                "fired_at": at_text,
                "policy": policy_ref,
            },
        ),
    )


def encode_event(event: dict[str, Any]) -> bytes:
    """The canonical bytes of an output event (sorted keys): identical history -> identical bytes."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


# ---------------------------------------------------------------------------------------------------------------
# Wire models (documentation and schema generation; the engine builds plain dicts for speed)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recipient(_Model):
    type: Literal["role", "team", "user", "group", "requester"]
    id: str


class PolicyRef(_Model):
    id: str | None = Field(description="The matched policy's id (null for trigger escalations on unmatched tickets).")
    version: str = Field(description="Content hash of the policy file that produced the event.")


class TicketSnapshot(_Model):
    priority: Literal["low", "normal", "high", "urgent"]
    status: Literal["new", "open", "pending", "on_hold", "solved", "closed"]
    group: str | None
    assignee: str | None
    requester_tier: str
    tags: list[str]


Metric = Literal["first_response", "next_reply", "periodic_update", "resolution"]


class EscalationData(_Model):
    escalation_id: str = Field(description="Equals the CloudEvent id; deterministic, so redelivery is harmless.")
    ticket_id: str
    level: int = Field(ge=1)
    kind: Literal["automatic", "hierarchical", "functional"]
    reason: Literal["sla_breach", "trigger", "requester_request", "incident"]
    metric: Metric | None = Field(description="The SLA metric (reason sla_breach), else null.")
    trigger: str | None = Field(description="The trigger id (reason trigger / requester_request), else null.")
    cycle: int = Field(ge=1, description="Metric cycle, or the how-many-th firing of the trigger.")
    threshold: str = Field(
        description="Which threshold fired: esc:L2, esc:L3:r1 (repeat), ack1 (ack timeout), trigger, incident."
    )
    policy: PolicyRef
    targets: list[Recipient]
    due_at: str | None = Field(description="When the SLA target was (or is) due; null for triggers.")
    fired_at: str = Field(description="The logical instant the threshold was crossed (not the send time).")
    ticket: TicketSnapshot
    incident_id: str | None = None


class NotificationData(_Model):
    notification_id: str = Field(description="Equals the CloudEvent id.")
    ticket_id: str | None = Field(description="Null for incident notifications.")
    kind: Literal["sla_warning", "sla_breach", "escalation", "requester_update", "incident"]
    recipients: list[Recipient]
    severity: Literal["info", "warning", "high", "critical"]
    subject: str
    body: str
    escalation_id: str | None = None
    incident_id: str | None = None
    metric: Metric | None = None
    cycle: int | None = None
    due_at: str | None = None
    fired_at: str
    policy: PolicyRef


class IncidentData(_Model):
    incident_id: str
    rule: str
    group_by: str
    group_value: str
    count: int = Field(ge=1, description="Tickets created in the window when the incident was detected.")
    window: str = Field(description="The rule's window, e.g. 15m.")
    level: int = Field(ge=1)
    tickets: list[str] = Field(description="Ids of the tickets in the window (at most 100, oldest first).")
    first_at: str
    fired_at: str
    targets: list[Recipient]
    policy: PolicyRef


class _OutEnvelope(_Model):
    specversion: Literal["1.0"]
    id: str
    source: Literal["urn:escalator"]
    subject: str
    time: str = Field(json_schema_extra={"format": "date-time"})
    datacontenttype: Literal["application/json"]
    dataschema: str


class EscalationRaised(_OutEnvelope):
    type: Literal["escalation.raised"]
    data: EscalationData


class NotificationRequested(_OutEnvelope):
    type: Literal["notification.requested"]
    data: NotificationData


class IncidentDetected(_OutEnvelope):
    type: Literal["incident.detected"]
    data: IncidentData


class DeadLetterHeaders(_Model):
    """Headers added to a dead-lettered record (the original key, value and headers are kept as they were)."""

    escalator_dlq_reason: DlqReason = Field(alias="escalator-dlq-reason")
    escalator_dlq_detail: str = Field(alias="escalator-dlq-detail")
    escalator_dlq_topic: str = Field(alias="escalator-dlq-topic")
    escalator_dlq_partition: str = Field(alias="escalator-dlq-partition")
    escalator_dlq_offset: str = Field(alias="escalator-dlq-offset")
    escalator_dlq_event_id: str | None = Field(default=None, alias="escalator-dlq-event-id")
