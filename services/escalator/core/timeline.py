"""A ticket's timeline: the events applied to it and the outputs it led to, in order, the most recent
:data:`TIMELINE_KEPT` kept with its state (``/tickets/{id}/timeline``).

The worker records it (:func:`record`) after each ``apply`` and each ``advance`` that changed the ticket; the
replay has no use for it and does not. An entry reads (:func:`timeline_view`) ``at``, ``kind`` -- ``event`` (at the
instant it was applied: a late event at the ticket's watermark) or ``output`` (at its logical instant) -- ``type``,
``id`` and ``what``, a short reading of it (a status, a comment's author, a notification's kind, an escalation's
level and reason). Entries keep the order things happened in: an event after the thresholds that fell due before
it, then the outputs it led to. ``ESCALATOR_TIMELINE_ENTRIES`` sets how many the worker keeps (0: none).
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from .events import Event
from .outputs import OUTPUT_TYPES, Command, Emit
from .state import TicketState
from .timefmt import format_ms, parse_rfc3339_ms

__all__ = ["TIMELINE_KEPT", "entries", "record", "timeline_view"]

TIMELINE_KEPT: Final = 50
_TEXT_MAX: Final = 200  # an input's id or text is cut to this in an entry (the timeline stays small)
_OUTPUT_TYPES: Final = frozenset(OUTPUT_TYPES)


def record(s: TicketState, event: Event | None, cmds: list[Command], limit: int = TIMELINE_KEPT) -> None:
    """Append ``event`` (applied at the ticket's watermark) and the outputs among ``cmds`` to ``s.timeline`` in the
    order they happened (outputs due before the event, fired on the way to it, first), keeping the most recent
    ``limit`` (0: none). ``s`` must be a state the caller owns (a new string is set).

    Stored compactly (it travels with every state write): one JSON line ``[instant ms, type, id, what]`` per entry,
    input types without their ``ticket.`` prefix and ids without the ticket's (see :func:`_pack_id`); the lines are
    only parsed to be read (:func:`entries`), never to be stored."""
    if limit <= 0:
        return
    tid = s.ticket_id
    added: list[list[Any]] = []
    for c in cmds:
        if type(c) is Emit:
            assert isinstance(c, Emit)
            ev = c.event
            at = parse_rfc3339_ms(str(ev["time"]))
            added.append([at, str(ev["type"]), _pack_id(str(ev["id"]), tid), _output_text(ev)])
    if event is not None:
        applied = s.watermark_ms
        text = _event_text(event)[:_TEXT_MAX]
        entry = [applied, event.type.removeprefix("ticket."), _pack_id(event.id[:_TEXT_MAX], tid), text]
        before = 0  # the thresholds that fell due strictly before the event fired on the way to it
        while before < len(added) and added[before][0] < applied:
            before += 1
        added.insert(before, entry)
    if not added:
        return
    text = s.timeline + "".join([orjson.dumps(a).decode() + "\n" for a in added])
    extra = text.count("\n") - limit
    cut = 0
    while extra > 0:  # drop the oldest lines beyond the bound
        cut = text.index("\n", cut) + 1
        extra -= 1
    s.timeline = text[cut:] if cut else text


def entries(s: TicketState) -> list[list[Any]]:
    """The stored entries, oldest first (``[instant ms, type, packed id, what]``)."""
    return [orjson.loads(line) for line in s.timeline.splitlines()]


def _pack_id(event_id: str, ticket_id: str) -> str:
    """``~rest`` for ``{ticket}:rest`` (most ids), ``~`` + the id for an id that starts with ``~``, else the id."""
    if event_id.startswith(ticket_id) and event_id[len(ticket_id) : len(ticket_id) + 1] == ":":
        return "~" + event_id[len(ticket_id) + 1 :]
    return "~" + event_id if event_id.startswith("~") else event_id


def _unpack_id(packed: str, ticket_id: str) -> str:
    if packed.startswith("~~"):
        return packed[1:]
    return f"{ticket_id}:{packed[1:]}" if packed.startswith("~") else packed


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


def timeline_view(s: TicketState, limit: int = TIMELINE_KEPT) -> dict[str, Any]:
    """The JSON of ``/tickets/{id}/timeline`` (``limit``: how many entries the worker keeps)."""
    tid = s.ticket_id
    out = []
    for at, etype, packed, what in entries(s):
        output = etype in _OUTPUT_TYPES
        out.append(
            {
                "at": format_ms(at),
                "kind": "output" if output else "event",
                "type": etype if output else f"ticket.{etype}",
                "id": _unpack_id(packed, tid),
                "what": what,
            }
        )
    return {"ticket_id": tid, "kept": limit, "entries": out}
