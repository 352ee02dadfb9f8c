"""The closed word lists of escalator, each defined once: a ``Literal`` type for mypy and the tuple of its words
(in their canonical order) for code that iterates, validates or indexes them.

Everything else -- the event contract, the policy language, the engine, the output models, the metrics, the
importers -- imports its words from here, so a new priority or status is one edit (plus the contract's changelog).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

__all__ = [
    "APPLIES_TO",
    "CATCH_UP",
    "DEFAULT_PAUSE_ON",
    "DLQ_REASONS",
    "DONE_STATUSES",
    "ENDINGS",
    "ESCALATION_KINDS",
    "ESCALATION_REASONS",
    "FOLLOW_UP",
    "GROUP_BY_ATTRIBUTES",
    "INCIDENT_ENDINGS",
    "METRICS",
    "NOTIFICATION_KINDS",
    "ON_REOPEN",
    "OUTCOMES",
    "PHASES",
    "POLICY_RECORD_REJECTS",
    "PRIORITIES",
    "RECIPIENT_TYPES",
    "REQUESTERS",
    "RESOLUTION_REASONS",
    "SEVERITIES",
    "STATUSES",
    "AppliesTo",
    "Author",
    "CatchUp",
    "DlqReason",
    "Ending",
    "EscalationKind",
    "EscalationReason",
    "IncidentEnding",
    "Metric",
    "NotificationKind",
    "OnReopen",
    "Outcome",
    "Phase",
    "PolicyRecordReject",
    "Priority",
    "RecipientType",
    "Requester",
    "ResolutionReason",
    "Severity",
    "Status",
]

#: A ticket's priority, lowest first.
Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: Final[tuple[str, ...]] = get_args(Priority)

#: A ticket's status.
Status = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
STATUSES: Final[tuple[str, ...]] = get_args(Status)
#: The statuses in which a ticket's work is done (its clocks end).
DONE_STATUSES: Final[tuple[str, ...]] = ("solved", "closed")
#: The statuses that pause the clocks unless a policy says otherwise.
DEFAULT_PAUSE_ON: Final[tuple[str, ...]] = ("pending", "on_hold")

#: The SLA metrics, in the order their thresholds fire when due at the same instant.
Metric = Literal["first_response", "next_reply", "periodic_update", "resolution"]
METRICS: Final[tuple[str, ...]] = get_args(Metric)

#: The phase of one cycle of a metric's clock.
Phase = Literal["running", "achieved", "stopped", "cancelled"]
PHASES: Final[tuple[str, ...]] = get_args(Phase)
#: How an ended cycle ended (a phase other than running).
Ending = Literal["achieved", "stopped", "cancelled"]
ENDINGS: Final[tuple[str, ...]] = get_args(Ending)
#: Whether an ended cycle met its target.
Outcome = Literal["met", "breached"]
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)

#: What a policy does with several thresholds of one clock cycle that fall due at the same instant (a re-plan, a
#: late creation): emit them all, or only the latest notification and the highest ladder step.
CatchUp = Literal["all", "latest"]
CATCH_UP: Final[tuple[str, ...]] = get_args(CatchUp)

#: Whom a published policy version applies to from its effective instant: every open ticket (re-planned at that
#: instant), or only the tickets created from then on (open ones keep the version they started with).
AppliesTo = Literal["open_tickets", "new_tickets"]
APPLIES_TO: Final[tuple[str, ...]] = get_args(AppliesTo)

#: Why a record of the policies topic was not used (the worker keeps the versions it holds): not a JSON object of
#: the policy-version schema, a policy text that does not validate, or a declared version that is not the text's.
PolicyRecordReject = Literal["undecodable", "schema", "invalid_policy", "version_mismatch"]
POLICY_RECORD_REJECTS: Final[tuple[str, ...]] = get_args(PolicyRecordReject)

#: The clock of a policy's ``follow_up`` (a feedback request after the solve): not an SLA metric.
FOLLOW_UP: Final = "follow_up"

#: What a metric's clock does when a solved or closed ticket is reopened.
OnReopen = Literal["resume", "restart", "none"]
ON_REOPEN: Final[tuple[str, ...]] = get_args(OnReopen)

#: Who wrote a comment.
Author = Literal["agent", "requester"]

EscalationKind = Literal["automatic", "hierarchical", "functional"]
ESCALATION_KINDS: Final[tuple[str, ...]] = get_args(EscalationKind)
EscalationReason = Literal["sla_breach", "sla_at_risk", "trigger", "requester_request", "agent_request", "incident"]
ESCALATION_REASONS: Final[tuple[str, ...]] = get_args(EscalationReason)

#: Why a raised escalation was resolved (``escalation.resolved``).
ResolutionReason = Literal[
    "clock_achieved",
    "clock_stopped",
    "ticket_solved",
    "ticket_closed",
    "deescalated",
    "trigger_cleared",
    "incident_resolved",
]
RESOLUTION_REASONS: Final[tuple[str, ...]] = get_args(ResolutionReason)
#: Who asked for an escalation (``ticket.escalation_requested`` ``by``; other text counts as the requester).
Requester = Literal["requester", "agent", "manager", "system"]
REQUESTERS: Final[tuple[str, ...]] = get_args(Requester)

NotificationKind = Literal["sla_warning", "sla_breach", "escalation", "requester_update", "incident", "follow_up"]
NOTIFICATION_KINDS: Final[tuple[str, ...]] = get_args(NotificationKind)
Severity = Literal["info", "warning", "high", "critical"]
SEVERITIES: Final[tuple[str, ...]] = get_args(Severity)
#: Whom a notification is addressed to, once resolved (policy targets such as ``assignee`` resolve to these).
RecipientType = Literal["role", "team", "user", "group", "requester"]
RECIPIENT_TYPES: Final[tuple[str, ...]] = get_args(RecipientType)

#: How an incident ended (``incident.resolved``): an input ``incident.resolved`` named it, or no member joined for
#: the rule's ``auto_resolve_after``.
IncidentEnding = Literal["resolved", "quiet"]
INCIDENT_ENDINGS: Final[tuple[str, ...]] = get_args(IncidentEnding)

#: The ticket attributes an incident rule may group by.
GROUP_BY_ATTRIBUTES: Final[tuple[str, ...]] = ("product", "category", "group", "channel", "requester_tier", "assignee")

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
DLQ_REASONS: Final[tuple[str, ...]] = get_args(DlqReason)
