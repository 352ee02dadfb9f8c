"""What people read: the subjects and bodies of notifications, and the recipients they go to.

The engine decides *that* something is sent and with which facts; this module words it. Texts are part of the
output contract's bytes (the golden files check them), so a change here is a change to every affected output.
"""

from __future__ import annotations

from typing import Final

from .durations import format_duration_ms
from .plan import CompiledPolicy, NotifyTarget
from .state import TicketFacts
from .timefmt import format_ms_or_none

__all__ = [
    "METRIC_TEXT",
    "AtRiskWording",
    "LadderWording",
    "RequestWording",
    "TriggerWording",
    "Wording",
    "at_risk_text",
    "breach_text",
    "follow_up_text",
    "ladder_text",
    "recipients",
    "request_text",
    "requester_update_text",
    "trigger_text",
    "warning_text",
]

METRIC_TEXT: Final = {
    "first_response": "first response",
    "next_reply": "next reply",
    "periodic_update": "periodic update",
    "resolution": "resolution",
}


def _metric_text(metric: str) -> str:
    """How a metric reads in a sentence (a defined metric: its name with spaces)."""
    text = METRIC_TEXT.get(metric)
    return text if text is not None else metric.replace("_", " ")


def _ticket_line(f: TicketFacts) -> str:
    return f"({f.priority}, group {f.group or '-'}"


def warning_text(
    f: TicketFacts, metric: str, fraction: float, used_ms: int, target_ms: int, due_text: str | None
) -> tuple[str, str]:
    mtext = _metric_text(metric)
    target = format_duration_ms(target_ms)
    return (
        f"SLA warning: ticket {f.ticket_id} {mtext} {fraction:.0%} of {target} used",
        f"The {mtext} target of ticket {f.ticket_id} {_ticket_line(f)}) is due at {due_text}; "
        f"{format_duration_ms(used_ms)} of {target} open time used.",
    )


def breach_text(f: TicketFacts, metric: str, target_ms: int, at_text: str) -> tuple[str, str]:
    mtext = _metric_text(metric)
    return (
        f"SLA breached: ticket {f.ticket_id} {mtext} (target {format_duration_ms(target_ms)})",
        f"The {mtext} target of ticket {f.ticket_id} {_ticket_line(f)}) was due at {at_text} and has not been met.",
    )


def ladder_text(
    f: TicketFacts,
    metric: str,
    level: int,
    target_ms: int,
    due_text: str | None,
    overdue_ms: int,
    ack_timeout_ms: int | None,
) -> tuple[str, str]:
    """A ladder step: overdue by some time, or (``ack_timeout_ms`` given) acknowledged and still open."""
    mtext = _metric_text(metric)
    reason = (
        f"acknowledged {format_duration_ms(ack_timeout_ms)} ago and still open"
        if ack_timeout_ms is not None
        else f"overdue by {format_duration_ms(overdue_ms)}"
    )
    return (
        f"Escalation L{level}: ticket {f.ticket_id} {mtext} {reason}",
        f"Ticket {f.ticket_id} {_ticket_line(f)}, assignee {f.assignee or '-'}) missed its {mtext} target of "
        f"{format_duration_ms(target_ms)} (due {due_text}); {reason}.",
    )


def at_risk_text(
    f: TicketFacts, metric: str, level: int, target_ms: int, due_text: str | None, left_ms: int
) -> tuple[str, str]:
    """A ladder step before the target (``after`` negative): the target is not missed yet."""
    mtext = _metric_text(metric)
    left = format_duration_ms(left_ms)
    return (
        f"Escalation L{level}: ticket {f.ticket_id} {mtext} at risk ({left} left)",
        f"Ticket {f.ticket_id} {_ticket_line(f)}, assignee {f.assignee or '-'}) has {left} of open time left to "
        f"meet its {mtext} target of {format_duration_ms(target_ms)} (due {due_text}); escalated before it is missed.",
    )


def trigger_text(f: TicketFacts, level: int, trigger_id: str, kind: str, reason: str) -> tuple[str, str]:
    what = "requested escalation" if reason == "requester_request" else f"trigger {trigger_id}"
    return (
        f"Escalation L{level}: ticket {f.ticket_id} ({what})",
        f"Ticket {f.ticket_id} {_ticket_line(f)}, assignee {f.assignee or '-'}) was escalated by {what} ({kind}).",
    )


def request_text(f: TicketFacts, level: int, by: str, team: str | None, note: str | None) -> tuple[str, str]:
    """A requested escalation: who asked, to which team (a functional escalation) or level, and why."""
    whom = f"the {team} team" if team is not None else f"level {level}"
    why = f": {note}" if note else ""
    return (
        f"Escalation L{level}: ticket {f.ticket_id} (requested by the {by})",
        f"Ticket {f.ticket_id} {_ticket_line(f)}, assignee {f.assignee or '-'}) was escalated to {whom} at the "
        f"{by}'s request{why}.",
    )


def follow_up_text(f: TicketFacts) -> tuple[str, str]:
    return (
        f"How did we do with your request {f.ticket_id}?",
        f"Your request {f.ticket_id} was solved. We would like to know whether it was solved well: a rating of 1 to 5 "
        "and a word on what we could do better help us improve.",
    )


def requester_update_text(ticket_id: str) -> tuple[str, str]:
    return (
        f"Your request {ticket_id} has been escalated",
        f"We are sorry your request {ticket_id} is taking longer than it should. It has been escalated to a senior "
        "member of the team, who is looking into it now.",
    )


def recipients(f: TicketFacts, targets: tuple[NotifyTarget, ...], pol: CompiledPolicy | None) -> list[dict[str, str]]:
    """Concrete recipients. ``assignee`` falls back to the ticket's group; if nothing resolves, the first ladder
    step's static targets are used, so a notification is never addressed to nobody."""
    out: list[dict[str, str]] = []
    for t in targets:
        r: dict[str, str] | None
        if t.type == "assignee":
            r = (
                {"type": "user", "id": f.assignee}
                if f.assignee
                else {"type": "group", "id": f.group}
                if f.group
                else None
            )
        elif t.type == "ticket_group":
            r = {"type": "group", "id": f.group} if f.group else None
        elif t.type == "requester":
            r = {"type": "requester", "id": f.requester_id} if f.requester_id else None
        else:
            r = {"type": t.type, "id": t.id or ""}
        if r is not None and r not in out:
            out.append(r)
    if not out and pol is not None and pol.steps:
        out = [{"type": t.type, "id": t.id or ""} for t in pol.steps[0].notify if t.id is not None]
    if not out:
        out = [{"type": "role", "id": "support"}]
    return out


# ---------------------------------------------------------------------------------------------------------------
# An escalation's wording, kept as its facts until its outputs are read (worded once, when first published)


class Wording:
    """How an escalation reads: its subject and body, worded from the ticket's facts when first needed."""

    def text(self, f: TicketFacts) -> tuple[str, str]:
        raise NotImplementedError


class LadderWording(Wording):
    """A ladder step after the target (or, ``ack_timeout_ms`` given, an acknowledgement that timed out)."""

    def __init__(
        self, metric: str, level: int, target_ms: int, due_ms: int | None, overdue_ms: int, ack_timeout_ms: int | None
    ) -> None:
        self.metric = metric
        self.level = level
        self.target_ms = target_ms
        self.due_ms = due_ms
        self.overdue_ms = overdue_ms
        self.ack_timeout_ms = ack_timeout_ms

    def text(self, f: TicketFacts) -> tuple[str, str]:
        return ladder_text(
            f,
            self.metric,
            self.level,
            self.target_ms,
            format_ms_or_none(self.due_ms),
            self.overdue_ms,
            self.ack_timeout_ms,
        )


class AtRiskWording(Wording):
    """A ladder step before the target."""

    def __init__(self, metric: str, level: int, target_ms: int, due_ms: int | None, left_ms: int) -> None:
        self.metric = metric
        self.level = level
        self.target_ms = target_ms
        self.due_ms = due_ms
        self.left_ms = left_ms

    def text(self, f: TicketFacts) -> tuple[str, str]:
        return at_risk_text(f, self.metric, self.level, self.target_ms, format_ms_or_none(self.due_ms), self.left_ms)


class TriggerWording(Wording):
    def __init__(self, level: int, trigger_id: str, kind: str, reason: str) -> None:
        self.level = level
        self.trigger_id = trigger_id
        self.kind = kind
        self.reason = reason

    def text(self, f: TicketFacts) -> tuple[str, str]:
        return trigger_text(f, self.level, self.trigger_id, self.kind, self.reason)


class RequestWording(Wording):
    def __init__(self, level: int, by: str, team: str | None, note: str | None) -> None:
        self.level = level
        self.by = by
        self.team = team
        self.note = note

    def text(self, f: TicketFacts) -> tuple[str, str]:
        return request_text(f, self.level, self.by, self.team, self.note)
