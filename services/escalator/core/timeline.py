"""A ticket's timeline: the events applied to it and the outputs it led to, in order, the most recent
:data:`TIMELINE_KEPT` kept with its state (``/tickets/{id}/timeline``).

The worker records it (:func:`record`) after each ``apply`` and each ``advance`` that changed the ticket; the
replay has no use for it and does not. An entry is ``[instant, kind, type, id, what]``: ``kind`` is ``event`` (the
instant it was applied at -- a late event at the ticket's watermark) or ``output`` (the output's logical instant),
``what`` a short reading of it (a status, a comment's author, a notification's kind, an escalation's level and
reason). Entries of one instant keep the order they happened in: an event, then the outputs it led to.
"""

from __future__ import annotations

from typing import Any, Final

from .events import Event
from .outputs import Command, Emit
from .state import TicketState
from .timefmt import format_ms

__all__ = ["TIMELINE_KEPT", "record", "timeline_view"]

TIMELINE_KEPT: Final = 50
_TEXT_MAX: Final = 200  # an input's id or text is cut to this in an entry (the timeline stays small)


def record(s: TicketState, event: Event | None, cmds: list[Command]) -> None:
    """Append ``event`` (applied at the ticket's watermark) and the outputs among ``cmds`` to ``s.timeline``,
    keeping the most recent :data:`TIMELINE_KEPT`. ``s`` must be a state the caller owns (a new list is set)."""
    added: list[list[Any]] = []
    if event is not None:
        text = _event_text(event)[:_TEXT_MAX]
        added.append([format_ms(s.watermark_ms), "event", event.type, event.id[:_TEXT_MAX], text])
    for c in cmds:
        if type(c) is Emit:
            assert isinstance(c, Emit)
            ev = c.event
            added.append([str(ev["time"]), "output", str(ev["type"]), str(ev["id"]), _output_text(ev)])
    if not added:
        return
    kept = [*s.timeline, *added]
    s.timeline = kept[-TIMELINE_KEPT:] if len(kept) > TIMELINE_KEPT else kept


def _event_text(event: Event) -> str:
    data: Any = event.data
    if event.type == "ticket.status_changed":
        return str(data.status)
    if event.type == "ticket.commented":
        return f"{data.author}{'' if data.public else ' (private)'}"
    if event.type == "ticket.created":
        return f"{data.priority}, {data.status}"
    if event.type == "ticket.rated":
        return f"score {data.score}"
    if event.type in ("ticket.escalation_acknowledged", "ticket.deescalated"):
        return f"by {data.by}"
    if event.type == "ticket.escalation_requested":
        return f"by {data.by}" if data.by is not None else ""
    if event.type == "ticket.updated":
        return ", ".join(sorted(data.changes.model_fields_set))
    return ""


def _output_text(ev: dict[str, Any]) -> str:
    data: dict[str, Any] = ev["data"]
    etype = ev["type"]
    if etype == "escalation.raised":
        return f"L{data['level']} {data['reason']}"
    if etype == "escalation.resolved":
        return f"L{data['level']} {data['reason']}"
    if etype == "notification.requested":
        return str(data["kind"])
    return ""


def timeline_view(s: TicketState) -> dict[str, Any]:
    """The JSON of ``/tickets/{id}/timeline``."""
    return {
        "ticket_id": s.ticket_id,
        "kept": TIMELINE_KEPT,
        "entries": [{"at": e[0], "kind": e[1], "type": e[2], "id": e[3], "what": e[4]} for e in s.timeline],
    }
