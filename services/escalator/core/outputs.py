"""Event contract v1, output side: what the engine asks adapters to publish, and the wire models of those events.

The engine returns *commands*:

* :class:`Emit` -- publish a CloudEvent (``escalation.raised`` / ``incident.detected`` on the escalations topic,
  ``notification.requested`` on the notifications topic). ``event`` is the complete JSON-ready CloudEvent; its ``id``
  is a pure function of the ticket's history and its ``time`` is the logical instant (never the send time), so the
  same history always gives byte-identical output (:func:`encode_event`).
* :class:`IncidentSignal` -- a ``ticket.created`` counted by an incident rule (routed to the incident detector).
* :class:`IncidentResolve` -- an input ``incident.resolved`` (routed to the incident's window).
* :class:`ClockOutcome` -- a metric cycle ended (met or breached); for metrics, reports and compliance.
* :class:`Ignored` -- the event was a duplicate, or a no-op it asked for (counted by the worker).
* :class:`FirstEscalation` -- a ticket's first ``escalation.raised``: how long after its creation (for metrics).

The pydantic models of the published events (the JSON Schemas in ``schemas/``) are in
:mod:`escalator.core.output_models`, re-exported here; this module is compiled, they are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

__all__ = [
    "ESCALATIONS",
    "NOTIFICATIONS",
    "OUTPUT_SOURCE",
    "OUTPUT_TYPES",
    "ClockOutcome",
    "Command",
    "Deferred",
    "Emit",
    "FirstEscalation",
    "Ignored",
    "IncidentResolve",
    "IncidentSignal",
    "StateCapped",
    "ThresholdSkipped",
    "cloud_event",
    "encode_event",
    "notification",
]

ESCALATIONS: Final = "escalations"
NOTIFICATIONS: Final = "notifications"
OUTPUT_SOURCE: Final = "urn:escalator"
SCHEMA_URN: Final = "urn:escalator:schema:{type}:v1"
#: Every type of output event escalator publishes.
OUTPUT_TYPES: Final = (
    "escalation.raised",
    "escalation.resolved",
    "notification.requested",
    "incident.detected",
    "incident.updated",
    "incident.resolved",
)
_SCHEMAS: Final = {t: SCHEMA_URN.format(type=t) for t in OUTPUT_TYPES}


class Deferred:
    """An output's content, kept as the facts it was decided on until the output is first read: the engine decides
    what to emit per event, and the wording -- ids, texts, recipients, timestamps, the CloudEvent dict -- is built
    once, when an adapter publishes it (a replay that only counts outputs never builds it)."""

    def build(self) -> dict[str, Any]:
        raise NotImplementedError


class Emit:
    """Publish one CloudEvent: ``channel`` (ESCALATIONS | NOTIFICATIONS), ``key`` (the Kafka record key: the ticket
    id; incidents: the group value) and ``event``, the complete JSON-ready CloudEvent -- given, or built from a
    :class:`Deferred` when first read (the same dict either way)."""

    def __init__(
        self,
        channel: str,
        key: str,
        event: dict[str, Any] | None = None,
        deferred: Deferred | None = None,
    ) -> None:
        assert (event is None) != (deferred is None)
        self.channel = channel
        self.key = key
        self._event = event
        self._deferred = deferred
        self._trace: str | None = None

    @property
    def event(self) -> dict[str, Any]:
        ev = self._event
        if ev is None:
            deferred = self._deferred
            assert deferred is not None
            ev = deferred.build()
            if self._trace is not None:
                ev["traceparent"] = self._trace
            self._event = ev
            self._deferred = None
        return ev

    def stamp(self, trace: str) -> None:
        """Carry a W3C ``traceparent`` (the CloudEvents distributed-tracing extension)."""
        if self._event is not None:
            self._event["traceparent"] = trace
        else:
            self._trace = trace

    @property
    def id(self) -> str:
        return str(self.event["id"])

    @property
    def type(self) -> str:
        return str(self.event["type"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Emit):
            return NotImplemented
        return self.channel == other.channel and self.key == other.key and self.event == other.event

    def __hash__(self) -> int:  # a mutable value (as the dataclass it was): equal by content, not hashable
        raise TypeError("unhashable type: 'Emit'")

    def __repr__(self) -> str:
        return f"Emit(channel={self.channel!r}, key={self.key!r}, event={self.event!r})"


@dataclass(slots=True, init=False)
class IncidentSignal:
    rule_id: str
    group_value: str
    ticket_id: str
    time_ms: int
    # rules with an incident lifecycle: [requester id, policy id, resolve_events, ticket snapshot] of the ticket
    member: list[Any] | None = None

    def __init__(
        self,
        rule_id: str,
        group_value: str,
        ticket_id: str,
        time_ms: int,
        member: list[Any] | None = None,
    ) -> None:
        self.rule_id = rule_id
        self.group_value = group_value
        self.ticket_id = ticket_id
        self.time_ms = time_ms
        self.member = member


@dataclass(slots=True, init=False)
class IncidentResolve:
    """An input ``incident.resolved`` for an incident of a known rule, routed to its window like a signal
    (``incident_id`` "": the incident open for the rule and group value, whichever it is)."""

    rule_id: str
    group_value: str
    incident_id: str
    time_ms: int
    by: str | None
    note: str | None
    event_id: str

    def __init__(
        self,
        rule_id: str,
        group_value: str,
        incident_id: str,
        time_ms: int,
        by: str | None,
        note: str | None,
        event_id: str,
    ) -> None:
        self.rule_id = rule_id
        self.group_value = group_value
        self.incident_id = incident_id
        self.time_ms = time_ms
        self.by = by
        self.note = note
        self.event_id = event_id


@dataclass(slots=True, init=False)
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
    agreement: str | None = None  # the agreement instance ("ola@network"); None: the customer SLA

    def __init__(
        self,
        ticket_id: str,
        metric: str,
        cycle: int,
        outcome: str,
        ended: str,
        elapsed_ms: int,
        target_ms: int | None,
        started_ms: int,
        ended_ms: int,
        priority: str,
        policy_id: str | None,
        agreement: str | None = None,
    ) -> None:
        self.ticket_id = ticket_id
        self.metric = metric
        self.cycle = cycle
        self.outcome = outcome
        self.ended = ended
        self.elapsed_ms = elapsed_ms
        self.target_ms = target_ms
        self.started_ms = started_ms
        self.ended_ms = ended_ms
        self.priority = priority
        self.policy_id = policy_id
        self.agreement = agreement


@dataclass(slots=True, init=False)
class ThresholdSkipped:
    """A threshold that ``catch_up: latest`` passed over: recorded on the clock, counted, never emitted."""

    ticket_id: str
    metric: str
    cycle: int
    threshold: str
    at_ms: int
    policy_id: str | None

    def __init__(
        self,
        ticket_id: str,
        metric: str,
        cycle: int,
        threshold: str,
        at_ms: int,
        policy_id: str | None,
    ) -> None:
        self.ticket_id = ticket_id
        self.metric = metric
        self.cycle = cycle
        self.threshold = threshold
        self.at_ms = at_ms
        self.policy_id = policy_id


@dataclass(slots=True, init=False)
class StateCapped:
    """A per-ticket bound was reached and the state kept within it (``what``: fields, field_value, tags, acks,
    escalations, instances); counted by the worker, documented in docs/engine.md."""

    ticket_id: str
    what: str

    def __init__(
        self,
        ticket_id: str,
        what: str,
    ) -> None:
        self.ticket_id = ticket_id
        self.what = what


@dataclass(slots=True, init=False)
class Ignored:
    event_id: str
    reason: str  # duplicate

    def __init__(
        self,
        event_id: str,
        reason: str,
    ) -> None:
        self.event_id = event_id
        self.reason = reason


@dataclass(slots=True, init=False)
class FirstEscalation:
    """A ticket's first escalation (customer SLA, trigger or request): ``elapsed_ms`` from its creation to the
    escalation's logical instant (``escalator_time_to_first_escalation_seconds``)."""

    ticket_id: str
    level: int
    reason: str
    elapsed_ms: int

    def __init__(self, ticket_id: str, level: int, reason: str, elapsed_ms: int) -> None:
        self.ticket_id = ticket_id
        self.level = level
        self.reason = reason
        self.elapsed_ms = elapsed_ms


Command = (
    Emit | IncidentSignal | IncidentResolve | ClockOutcome | ThresholdSkipped | StateCapped | Ignored | FirstEscalation
)
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
    agreement: dict[str, str | None] | None = None,
) -> Emit:
    """A ``notification.requested`` command (every notification the engine emits goes through here). ``agreement``
    (an agreement beside the customer SLA) is present only when given, so SLA outputs keep their bytes."""
    data: dict[str, Any] = {
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
    }
    if agreement is not None:
        data["agreement"] = agreement
    return Emit(NOTIFICATIONS, key, cloud_event("notification.requested", note_id, key, at_text, data))


def encode_event(event: dict[str, Any]) -> bytes:
    """The canonical bytes of an output event (sorted keys): identical history -> identical bytes."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)
