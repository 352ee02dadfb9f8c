"""One readable line per published event, for ``escalator tail`` (pure: no I/O, no clock).

::

    10:15:22  ESCALATION L2   T-k3f2-ladder     first_response overdue 10s  -> role:support_manager
    10:15:12  WARNING         T-k3f2-ladder     first_response 50% used, due in 10s  -> role:support
    10:15:22  BREACH          T-k3f2-ladder     first_response breached  -> role:support
    10:15:34  INCIDENT        product=mail      8 tickets in 30s  -> role:incident_manager
    10:15:36  INCIDENT +      product=mail      T-k3f2-mail09 joined: 9 tickets
    10:15:56  INCIDENT OVER   product=mail      resolved by status-page after 21.5s (mail is back up): 10 tickets

The time column is the event's logical instant (``time``, i.e. ``fired_at``), not when it was published. Columns
are padded before colouring, so lines stay aligned with or without ANSI colours. Notifications that only repeat
another event (the ``escalation`` and ``incident`` notifications, and ``requester_update``) are hidden unless
``show_all`` is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import orjson

from .core.durations import format_duration_ms
from .core.timefmt import parse_rfc3339_ms

__all__ = ["HIDDEN_KINDS", "LABEL_WIDTH", "SUBJECT_WIDTH", "format_event", "format_record"]

LABEL_WIDTH = 14
SUBJECT_WIDTH = 16
HIDDEN_KINDS = frozenset({"escalation", "incident", "requester_update"})

_RESET = "\033[0m"
_DIM = "2"
_SUBJECT = "36"  # cyan
_COLOURS = {
    "WARNING": "33",  # yellow
    "BREACH": "1;31",  # bold red
    "INCIDENT": "1;35",  # bold magenta
    "L1": "1;33",  # bold yellow
    "L2": "1;31",  # bold red
    "L3": "1;97;41",  # bold white on red (and every level above)
    "OTHER": "2",
}


def _paint(text: str, code: str, colour: bool) -> str:
    return f"\033[{code}m{text}{_RESET}" if colour and text else text


def _cell(text: str, width: int, code: str, colour: bool) -> str:
    """``text`` padded to ``width`` (never cut), coloured without colouring the padding."""
    return _paint(text, code, colour) + " " * max(0, width - len(text))


def _clock(text: Any, tz: tzinfo | None) -> str:
    try:
        ms = parse_rfc3339_ms(str(text))
    except ValueError:
        return "--:--:--"
    return datetime.fromtimestamp(ms / 1000, tz).strftime("%H:%M:%S")


def _ms(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_rfc3339_ms(text)
    except ValueError:
        return None


def _targets(items: Any) -> str:
    if not isinstance(items, list) or not items:
        return ""
    names = [f"{t.get('type')}:{t.get('id')}" for t in items if isinstance(t, Mapping)]
    return "  -> " + ", ".join(names) if names else ""


def _metric(data: Mapping[str, Any]) -> str:
    metric = str(data.get("metric") or "sla")
    cycle = data.get("cycle")
    return f"{metric}#{cycle}" if isinstance(cycle, int) and cycle > 1 else metric


def _escalation(data: Mapping[str, Any]) -> tuple[str, str, str]:
    level = data.get("level")
    label = f"ESCALATION L{level}"
    code = _COLOURS["L1"] if level == 1 else _COLOURS["L2"] if level == 2 else _COLOURS["L3"]
    reason = data.get("reason")
    threshold = str(data.get("threshold") or "")
    if reason == "trigger":
        text = f"trigger {data.get('trigger')} ({data.get('kind')})"
    elif reason in ("requester_request", "agent_request") and data.get("trigger") is None:
        to = f"to team {data.get('team')}" if data.get("team") else f"to level {level}"
        note = f": {data.get('note')}" if data.get("note") else ""
        text = f"{data.get('requested_by')} asked for escalation {to}{note}"
    elif reason == "requester_request":
        text = f"requester asked for escalation ({data.get('trigger')})"
    elif reason == "incident":
        text = f"member of {data.get('incident_id')}"
    else:
        due, fired = _ms(data.get("due_at")), _ms(data.get("fired_at"))
        overdue = fired - due if due is not None and fired is not None else 0
        text = (
            f"{_metric(data)} overdue {format_duration_ms(overdue)}"
            if overdue > 0
            else f"{_metric(data)} target missed"
        )
        if threshold.startswith("ack"):
            text += ", acknowledged but still open"
        elif ":r" in threshold:
            text += f" (repeat {threshold.rsplit(':r', 1)[1]})"
    return label, code, text


def _warning_text(event: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    note_id = str(event.get("id") or "")
    parts = note_id.rsplit(":", 2)
    used = ""
    if len(parts) == 3 and parts[1] == "warn":
        try:
            used = f" {float(parts[2]):.0%} used,"
        except ValueError:
            used = ""
    due, fired = _ms(data.get("due_at")), _ms(data.get("fired_at") or event.get("time"))
    if due is None or fired is None:
        return f"{_metric(data)}{used.rstrip(',')}"
    return f"{_metric(data)}{used} due in {format_duration_ms(max(0, due - fired))}"


def _incident_change(etype: Any, data: Mapping[str, Any]) -> tuple[str, str, str]:
    """``incident.updated`` (members joined) and ``incident.resolved`` (the incident is over)."""
    count = data.get("count")
    if etype == "incident.updated":
        raw = data.get("joined")
        joined: list[Any] = raw if isinstance(raw, list) else []
        more = int(data.get("joined_count") or 0) - len(joined)
        who = ", ".join(str(j) for j in joined) + (f" and {more} more" if more > 0 else "")
        return "INCIDENT +", _COLOURS["INCIDENT"], f"{who or f'{more} tickets'} joined: {count} tickets"
    if data.get("reason") == "quiet":
        how = "quiet"
    else:
        how = f"resolved by {data.get('by')}" if data.get("by") else "resolved"
    note = f" ({data.get('note')})" if data.get("note") else ""
    after = format_duration_ms(int(data.get("open_ms") or 0))
    return "INCIDENT OVER", _COLOURS["INCIDENT"], f"{how} after {after}{note}: {count} tickets"


def format_event(
    event: Mapping[str, Any], *, colour: bool = False, tz: tzinfo | None = UTC, show_all: bool = False
) -> str | None:
    """The line for one output CloudEvent, or ``None`` for a notification hidden by default.

    ``tz`` is the zone of the time column (``None``: the local zone).
    """
    etype = event.get("type")
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    subject = str(data.get("ticket_id") or event.get("subject") or "-")
    targets = _targets(data.get("targets"))
    if etype == "escalation.raised":
        label, code, text = _escalation(data)
    elif etype == "escalation.resolved":
        label, code = "RESOLVED", _COLOURS["OTHER"]
        by = f" by {data.get('by')}" if data.get("by") else ""
        open_for = format_duration_ms(int(data.get("open_ms") or 0))
        text = f"L{data.get('level')} escalation closed ({data.get('reason')}{by}) after {open_for}"
    elif etype == "incident.detected":
        label, code = "INCIDENT", _COLOURS["INCIDENT"]
        subject = f"{data.get('group_by')}={data.get('group_value')}"
        text = f"{data.get('count')} tickets in {data.get('window')}"
    elif etype in ("incident.updated", "incident.resolved"):
        label, code, text = _incident_change(etype, data)
        subject = f"{data.get('group_by')}={data.get('group_value')}"
    elif etype == "notification.requested":
        kind = data.get("kind")
        if kind in HIDDEN_KINDS and not show_all:
            return None
        targets = _targets(data.get("recipients"))
        if kind == "sla_warning":
            label, code, text = "WARNING", _COLOURS["WARNING"], _warning_text(event, data)
        elif kind == "sla_breach":
            label, code, text = "BREACH", _COLOURS["BREACH"], f"{_metric(data)} breached"
        else:  # escalation / incident / requester_update: the notification's own subject line
            label = "REQUESTER" if kind == "requester_update" else "NOTIFY"
            code, text = _COLOURS["OTHER"], str(data.get("subject") or kind)
            if kind == "incident":
                subject = str(event.get("subject") or "-")
    else:
        label, code, text = str(etype or "UNKNOWN").upper()[:LABEL_WIDTH], _COLOURS["OTHER"], str(event.get("id"))
    return (
        f"{_paint(_clock(event.get('time'), tz), _DIM, colour)}  {_cell(label, LABEL_WIDTH, code, colour)}  "
        f"{_cell(subject, SUBJECT_WIDTH, _SUBJECT, colour)}  {text}{targets}"
    )


def format_record(
    value: bytes | None, *, colour: bool = False, tz: tzinfo | None = UTC, show_all: bool = False
) -> str | None:
    """Like :func:`format_event` for a raw record value; a value that is not a JSON object gets a warning line."""
    try:
        event = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        size = 0 if value is None else len(value)
        return f"{'--:--:--'}  {_cell('UNREADABLE', LABEL_WIDTH, _COLOURS['OTHER'], colour)}  ({size} bytes, not JSON)"
    return format_event(event, colour=colour, tz=tz, show_all=show_all)
