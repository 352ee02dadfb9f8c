"""The pure SLA/escalation core: no I/O, no clock reads, no Kafka, no metrics.

Everything here is a function of its arguments: instants come in as integer epoch milliseconds, events as decoded
:class:`Event` values, the policy as a compiled :class:`PolicySet`. The Kafka worker (wall clock) and the replay
simulator (event time) run this same code, which is why they produce identical outputs for the same events.
"""

from .calendar import Calendar
from .durations import format_duration_ms, parse_duration_ms
from .engine import advance, apply, new_ticket, next_deadline, select_policy
from .events import DecodeError, Event, decode_record
from .incidents import (
    IncidentWindow,
    next_due,
    observe,
    request_resolution,
    resolution_of,
    settle,
    window_key,
)
from .outputs import (
    ESCALATIONS,
    NOTIFICATIONS,
    ClockOutcome,
    Command,
    Emit,
    FirstEscalation,
    Ignored,
    IncidentResolve,
    IncidentSignal,
    StateCapped,
    ThresholdSkipped,
    encode_event,
)
from .plan import PolicySet
from .policy import PolicyError, load_policy_text
from .state import Clock, TicketState
from .timefmt import format_ms, parse_rfc3339_ms
from .views import describe
from .vocabulary import METRICS

__all__ = [
    "ESCALATIONS",
    "METRICS",
    "NOTIFICATIONS",
    "Calendar",
    "Clock",
    "ClockOutcome",
    "Command",
    "DecodeError",
    "Emit",
    "Event",
    "FirstEscalation",
    "Ignored",
    "IncidentResolve",
    "IncidentSignal",
    "IncidentWindow",
    "PolicyError",
    "PolicySet",
    "StateCapped",
    "ThresholdSkipped",
    "TicketState",
    "advance",
    "apply",
    "decode_record",
    "describe",
    "encode_event",
    "format_duration_ms",
    "format_ms",
    "load_policy_text",
    "new_ticket",
    "next_deadline",
    "next_due",
    "observe",
    "parse_duration_ms",
    "parse_rfc3339_ms",
    "request_resolution",
    "resolution_of",
    "select_policy",
    "settle",
    "window_key",
]
