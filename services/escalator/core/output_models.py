"""Event contract v1, output side: the pydantic models of the published events and of the dead-letter headers.
They generate the JSON Schemas in ``schemas/``, and the tests validate every emitted event against them. The engine
builds plain dicts (:mod:`escalator.core.outputs`, compiled); these models stay interpreted.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .envelopes import DlqReason
from .vocabulary import (
    EscalationKind,
    EscalationReason,
    IncidentEnding,
    Metric,
    NotificationKind,
    Priority,
    RecipientType,
    Requester,
    ResolutionReason,
    Severity,
    Status,
)

__all__ = [
    "AgreementRef",
    "DeadLetterHeaders",
    "EscalationData",
    "EscalationRaised",
    "EscalationResolved",
    "EscalationResolvedData",
    "IncidentData",
    "IncidentDetected",
    "IncidentResolved",
    "IncidentResolvedOutData",
    "IncidentUpdated",
    "IncidentUpdatedData",
    "Metric",
    "NotificationData",
    "NotificationRequested",
    "PolicyRef",
    "Recipient",
    "TicketSnapshot",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recipient(_Model):
    type: RecipientType
    id: str


class PolicyRef(_Model):
    id: str | None = Field(description="The matched policy's id (null for trigger escalations on unmatched tickets).")
    version: str = Field(description="Content hash of the policy file that produced the event.")


#: A metric the policy file defines by conditions (``metrics:``); additive to v1 beside the built-in ones.
DefinedMetric = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,49}$")]


class AgreementRef(_Model):
    id: str = Field(description="The agreement beside the customer SLA (an OLA, a regulatory clock).")
    group: str | None = Field(description="The assignment group of a per-group agreement's instance, else null.")


class TicketSnapshot(_Model):
    priority: Priority
    status: Status
    group: str | None
    assignee: str | None
    requester_tier: str
    tags: list[str]


class EscalationData(_Model):
    escalation_id: str = Field(description="Equals the CloudEvent id; deterministic, so redelivery is harmless.")
    ticket_id: str
    level: int = Field(ge=1)
    kind: EscalationKind
    reason: EscalationReason
    metric: Metric | DefinedMetric | None = Field(
        description="The SLA metric (reasons sla_breach, sla_at_risk): a built-in or one the policy defines, else null."
    )
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
    agreement: AgreementRef | None = Field(
        default=None, description="Absent for the customer SLA; set for an agreement's escalation (v1, additive)."
    )
    requested_by: Requester | None = Field(
        default=None, description="Who asked for it (reasons requester_request, agent_request; v1, additive)."
    )
    team: str | None = Field(default=None, description="The team of a requested functional escalation (additive).")
    note: str | None = Field(default=None, description="The request's reason, at most 500 characters (additive).")


class EscalationResolvedData(_Model):
    escalation_id: str = Field(
        description="The escalation.raised this closes; the event id is {escalation_id}:resolved."
    )
    ticket_id: str
    level: int = Field(ge=1)
    reason: ResolutionReason
    raised_at: str
    fired_at: str = Field(description="When it was resolved (logical instant).")
    open_ms: int = Field(ge=0, description="How long the escalation was open.")
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    by: str | None = Field(default=None, description="Who de-escalated it (reason deescalated), else null.")
    policy: PolicyRef
    agreement: AgreementRef | None = None


class NotificationData(_Model):
    notification_id: str = Field(description="Equals the CloudEvent id.")
    ticket_id: str | None = Field(description="Null for incident notifications.")
    kind: NotificationKind
    recipients: list[Recipient]
    severity: Severity
    subject: str
    body: str
    escalation_id: str | None = None
    incident_id: str | None = None
    metric: Metric | DefinedMetric | None = None
    cycle: int | None = None
    due_at: str | None = None
    fired_at: str
    policy: PolicyRef
    agreement: AgreementRef | None = Field(
        default=None, description="Absent for the customer SLA; set for an agreement's notification (v1, additive)."
    )


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


class IncidentUpdatedData(_Model):
    """Tickets joined an open incident (rules with a lifecycle): one event per instant at which any joined."""

    incident_id: str
    rule: str
    group_by: str
    group_value: str
    joined: list[str] = Field(description="The tickets that joined at this instant (listed members only, by id).")
    joined_count: int = Field(ge=1, description="How many joined at this instant, listed or not.")
    count: int = Field(ge=1, description="Members so far, including those beyond the listed bound.")
    members: int = Field(ge=0, description="Members listed by escalator (at most 100; the rest are only counted).")
    fired_at: str
    policy: PolicyRef


class IncidentResolvedOutData(_Model):
    """An open incident ended: named by an input incident.resolved, or quiet for the rule's auto_resolve_after."""

    incident_id: str
    rule: str
    group_by: str
    group_value: str
    reason: IncidentEnding
    by: str | None = Field(description="Who resolved it (reason resolved), else null.")
    note: str | None = Field(description="The input's reason, at most 500 characters, else null.")
    detected_at: str
    fired_at: str = Field(description="When it ended (logical instant).")
    open_ms: int = Field(ge=0)
    count: int = Field(ge=1, description="Members, including those beyond the listed bound.")
    tickets: list[str] = Field(description="The listed members (at most 100, in the order they joined).")
    policy: PolicyRef


class _OutEnvelope(_Model):
    specversion: Literal["1.0"]
    id: str
    source: Literal["urn:escalator"]
    subject: str
    time: str = Field(json_schema_extra={"format": "date-time"})
    datacontenttype: Literal["application/json"]
    dataschema: str
    traceparent: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
        description="CloudEvents distributed tracing: the W3C traceparent of the input event this output follows "
        "from (absent when that event had none; v1, additive).",
    )


class EscalationRaised(_OutEnvelope):
    type: Literal["escalation.raised"]
    data: EscalationData


class EscalationResolved(_OutEnvelope):
    type: Literal["escalation.resolved"]
    data: EscalationResolvedData


class NotificationRequested(_OutEnvelope):
    type: Literal["notification.requested"]
    data: NotificationData


class IncidentDetected(_OutEnvelope):
    type: Literal["incident.detected"]
    data: IncidentData


class IncidentUpdated(_OutEnvelope):
    type: Literal["incident.updated"]
    data: IncidentUpdatedData


class IncidentResolved(_OutEnvelope):
    type: Literal["incident.resolved"]
    data: IncidentResolvedOutData


class DeadLetterHeaders(_Model):
    """Headers added to a dead-lettered record (the original key, value and headers are kept as they were)."""

    escalator_dlq_reason: DlqReason = Field(alias="escalator-dlq-reason")
    escalator_dlq_detail: str = Field(alias="escalator-dlq-detail")
    escalator_dlq_topic: str = Field(alias="escalator-dlq-topic")
    escalator_dlq_partition: str = Field(alias="escalator-dlq-partition")
    escalator_dlq_offset: str = Field(alias="escalator-dlq-offset")
    escalator_dlq_event_id: str | None = Field(default=None, alias="escalator-dlq-event-id")
    # only on a copy cut to fit the dead-letter size limit (the original stays at topic/partition/offset):
    escalator_dlq_truncated: str | None = Field(
        default=None, alias="escalator-dlq-truncated", pattern=r"^(key|headers|value)?(,(key|headers|value))*$"
    )
    escalator_dlq_value_bytes: str | None = Field(default=None, alias="escalator-dlq-value-bytes", pattern=r"^[0-9]+$")
    escalator_dlq_value_sha256: str | None = Field(
        default=None, alias="escalator-dlq-value-sha256", pattern=r"^[0-9a-f]{64}$"
    )
