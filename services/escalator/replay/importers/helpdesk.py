"""Help-desk log of an Italian software company (activity rows) -> v1 ticket events.

The input is the help-desk ticketing log published on 4TU.ResearchData (doi:10.4121/uuid:0c60edf1-6f83-4e75-9367-
4c63b3e9d5bb, CC BY 4.0): one row per activity of a case (``Case ID``, ``Activity``, ``Resource``, ``Complete
Timestamp``) with the case's anonymised attributes at that moment (``Value n``). Rows of a case are read in timestamp
order (then file order). The mapping:

==========================  ==============================================================================
activity                    events
==========================  ==============================================================================
(first row of a case)       ``ticket.created`` at its timestamp, status ``new``, then the row's own activity
Insert ticket               nothing more (it is the creation)
Assign seriousness          ``ticket.updated`` priority, when the seriousness changed
Take in charge ticket       ``ticket.updated`` assignee = the resource (when it changed); ``ticket.status_changed``
                            ``open`` (when not open); ``ticket.commented`` by an agent, public: taking a ticket in
                            charge is the help desk's *response* (first response, next reply, periodic update)
Wait                        ``ticket.status_changed`` ``pending`` (pauses the clocks)
Require upgrade             ``ticket.status_changed`` ``on_hold`` (waiting for the customer to upgrade)
Schedule intervention       ``ticket.commented`` by an agent, public (the customer is contacted)
Create SW anomaly           ``ticket.updated`` tag ``sw_anomaly`` (an internal escalation to development; the
                            clocks keep running)
Resolve SW anomaly          ``ticket.updated`` field ``sw_anomaly`` = ``resolved``
RESOLVED, VERIFIED,         ``ticket.updated`` field ``anomaly_status`` (the linked bug's tracker state)
INVALID, DUPLICATE
Resolve ticket              ``ticket.status_changed`` ``solved``
Closed                      ``ticket.status_changed`` ``closed``
==========================  ==============================================================================

Taking a solved or closed case in charge again (or putting it in Wait / Require upgrade) is a reopen: the status
leaves solved/closed and the engine resumes the resolution clock.

Attributes (``Value n`` -> ``n``): ``seriousness_2`` -> priority (4 -> urgent, 3 -> high, 1 -> normal, 2 -> low:
inferred from handling times, since the log is anonymised -- value 4 is taken in charge in a median of seconds
and resolved in hours, 1 and 2 in days -- and kept verbatim in ``fields.seriousness``), ``service_level`` ->
requester tier ``level-n``, ``customer`` -> requester ``customer-n``, ``workgroup`` -> group ``workgroup-n``,
``product`` -> product ``product-n``, ``service_type`` -> category ``service-type-n``, ``support_section`` and
``responsible_section`` -> fields. A change of any of them between rows gives a ``ticket.updated`` (the requester
cannot change in v1: a new customer value goes to ``fields.customer``). Timestamps (``yyyy/mm/dd HH:MM:SS.fff``)
are read as UTC unless a time zone is given. Event ids are ``{case}:created`` and ``{case}:{row}:{kind}``; the
source is ``urn:helpdesk:italian-software-company``.

Rows with an unknown activity, an unreadable timestamp or missing columns are reported with their line number and
skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Final, NamedTuple

from .common import BadRow, EventWriter, ImportStats, LocalTime, TicketRows, ticket_event_line

__all__ = ["ACTIVITIES", "SOURCE", "import_helpdesk"]

SOURCE = "urn:helpdesk:italian-software-company"
SERIOUSNESS = {"4": "urgent", "3": "high", "1": "normal", "2": "low"}
ACTIVITIES = (
    "Insert ticket",
    "Assign seriousness",
    "Take in charge ticket",
    "Wait",
    "Require upgrade",
    "Schedule intervention",
    "Create SW anomaly",
    "Resolve SW anomaly",
    "RESOLVED",
    "VERIFIED",
    "INVALID",
    "DUPLICATE",
    "Resolve ticket",
    "Closed",
)
REQUIRED = ("Case ID", "Activity", "Resource", "Complete Timestamp")
_ATTRS = (
    "seriousness_2",
    "service_level",
    "customer",
    "workgroup",
    "product",
    "service_type",
    "support_section",
    "responsible_section",
)


class _Row(NamedTuple):
    time_ms: int
    line: int
    activity: str
    resource: str | None
    attrs: tuple[str | None, ...]  # in _ATTRS order, "Value n" -> "n"


def _short(text: str) -> str | None:
    text = text.strip()
    if text in ("", "?"):
        return None
    return text[6:] if text.startswith("Value ") else text


def _parse_ymd(text: str, lt: LocalTime) -> int:
    """``yyyy/mm/dd HH:MM:SS(.fff)`` -> epoch ms."""
    date_part, _, time_part = text.strip().partition(" ")
    y, m, d = date_part.split("/")
    clock, _, frac = time_part.partition(".")
    hh, mm, ss = clock.split(":")
    if len(y) != 4:
        raise ValueError(text)
    milli = int((frac + "000")[:3]) if frac else 0
    return lt.ms(int(y), int(m), int(d), int(hh), int(mm), int(ss), milli)


def import_helpdesk(
    path: str,
    writer: EventWriter,
    *,
    timezone: str = "UTC",
    on_bad: Callable[[BadRow], None] | None = None,
) -> ImportStats:
    """Stream ``path`` (CSV, optionally gzipped) into ``writer``."""
    stats = ImportStats()
    log: TicketRows[_Row] = TicketRows(
        path, REQUIRED, "help-desk log", stats, on_bad, lambda case, rows: _emit_case(case, sorted(rows), writer, stats)
    )
    col, bad = log.col, log.bad
    i_case, i_act, i_res, i_time = (col[c] for c in REQUIRED)
    attr_cols = tuple(col.get(a) for a in _ATTRS)
    lt = LocalTime(timezone)
    parse = partial(_parse_ymd, lt=lt)
    known = set(ACTIVITIES)
    try:
        for line, cells in log.rows(i_case, "missing Case ID"):
            activity = cells[i_act].strip()
            if activity not in known:
                bad(line, f"unknown activity: {activity!r}")
                continue
            t = log.instant(line, parse, cells[i_time])
            if t is None:
                continue
            attrs = tuple(None if i is None else _short(cells[i]) for i in attr_cols)
            log.add(_Row(t, line, activity, _short(cells[i_res]), attrs))
    finally:
        log.close()
    return stats


_STATUS_OF_ACTIVITY: Final = {
    "Take in charge ticket": "open",
    "Wait": "pending",
    "Require upgrade": "on_hold",
    "Resolve ticket": "solved",
    "Closed": "closed",
}


def _prefixed(prefix: str, v: str | None) -> str | None:
    return None if v is None else f"{prefix}{v}"


def _emit_case(case: str, rows: list[_Row], writer: EventWriter, stats: ImportStats) -> None:
    first = rows[0]
    _add(writer, stats, f"{case}:created", "ticket.created", case, first.time_ms, _created(first))
    status = "new"
    assignee: str | None = None
    tags: list[str] = []
    prev_attrs = first.attrs
    for index, row in enumerate(rows):
        t = row.time_ms
        changes, new_fields = _attribute_changes(prev_attrs, row.attrs)
        prev_attrs = row.attrs
        act = row.activity
        if act == "Take in charge ticket" and row.resource is not None and row.resource != assignee:
            assignee = row.resource
            changes["assignee"] = f"resource-{assignee}"
        elif act == "Create SW anomaly" and "sw_anomaly" not in tags:
            tags = [*tags, "sw_anomaly"]
            changes["tags"] = tags
        elif act == "Resolve SW anomaly":
            new_fields["sw_anomaly"] = "resolved"
        elif act in ("RESOLVED", "VERIFIED", "INVALID", "DUPLICATE"):
            new_fields["anomaly_status"] = act.lower()
        if new_fields:
            changes["fields"] = new_fields
        produced = False
        if changes:
            _add(writer, stats, f"{case}:{index}:updated", "ticket.updated", case, t, {"changes": changes})
            produced = True
        new_status = _STATUS_OF_ACTIVITY.get(act)
        if new_status is not None and new_status != status:
            _add(writer, stats, f"{case}:{index}:status", "ticket.status_changed", case, t, {"status": new_status})
            status = new_status
            produced = True
        if act in ("Take in charge ticket", "Schedule intervention"):
            comment = {"author": "agent", "public": True}
            _add(writer, stats, f"{case}:{index}:commented", "ticket.commented", case, t, comment)
            produced = True
        if not produced:
            stats.notes[f"{act}: no change" if index else f"{act}: creation"] += 1


def _created(first: _Row) -> dict[str, Any]:
    """The ``ticket.created`` data of a case, from its first row."""
    a = dict(zip(_ATTRS, first.attrs, strict=True))
    fields: dict[str, Any] = {
        k: v
        for k, v in (
            ("seriousness", a["seriousness_2"]),
            ("support_section", a["support_section"]),
            ("responsible_section", a["responsible_section"]),
        )
        if v is not None
    }
    requester: dict[str, Any] = {"id": _prefixed("customer-", a["customer"]) or "unknown"}
    if a["service_level"] is not None:
        requester["tier"] = f"level-{a['service_level']}"
    return {
        "priority": SERIOUSNESS.get(a["seriousness_2"] or "", "normal"),
        "status": "new",
        "requester": requester,
        "group": _prefixed("workgroup-", a["workgroup"]),
        "assignee": None,
        "product": _prefixed("product-", a["product"]),
        "category": _prefixed("service-type-", a["service_type"]),
        "tags": [],
        "fields": fields,
    }


def _attribute_changes(
    before: tuple[str | None, ...], after: tuple[str | None, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(changes, changed fields) between two rows' case attributes."""
    changes: dict[str, Any] = {}
    new_fields: dict[str, Any] = {}
    if after == before:
        return changes, new_fields
    old = dict(zip(_ATTRS, before, strict=True))
    for name, v in zip(_ATTRS, after, strict=True):
        if v == old[name]:
            continue
        if name == "seriousness_2":
            changes["priority"] = SERIOUSNESS.get(v or "", "normal")
            new_fields["seriousness"] = v
        elif name == "service_level" and v is not None:
            changes["requester_tier"] = f"level-{v}"
        elif name == "customer":
            new_fields["customer"] = _prefixed("customer-", v)
        elif name == "workgroup":
            changes["group"] = _prefixed("workgroup-", v)
        elif name == "product":
            changes["product"] = _prefixed("product-", v)
        elif name == "service_type":
            changes["category"] = _prefixed("service-type-", v)
        elif name in ("support_section", "responsible_section"):
            new_fields[name] = v
    return changes, new_fields


def _add(
    writer: EventWriter, stats: ImportStats, event_id: str, etype: str, ticket: str, time_ms: int, data: dict[str, Any]
) -> None:
    writer.add(time_ms, ticket_event_line(event_id, SOURCE, etype, ticket, time_ms, data))
    stats.events += 1
    stats.events_by_type[etype] += 1
