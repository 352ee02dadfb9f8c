"""ServiceNow incident event log (snapshot rows, one per update) -> v1 ticket events.

The input is the "Incident management process enriched event log" (UCI Machine Learning Repository; Amaral,
Fantinato, Reijers, Peres, 2018; CC BY 4.0): one row per update of an incident, each a snapshot of the incident's
fields. The importer sorts the rows of each incident by ``sys_updated_at`` (then ``sys_mod_count``, then file order)
and diffs consecutive snapshots:

* the incident's first snapshot gives ``ticket.created`` at ``opened_at`` (or at the first update, if that is
  earlier), status ``open``, with the snapshot's priority, assignment group, assignee, caller, contact type and
  category (``impact``, ``urgency``, ``location``, ``subcategory`` and ``u_symptom`` go to ``fields``);
* a change of priority, assignment group or assignee gives ``ticket.updated`` (at ``sys_updated_at``);
* a change of state gives ``ticket.status_changed``: New/Active -> ``open``, Awaiting * -> ``pending``,
  Resolved -> ``solved``, Closed -> ``closed``; leaving Resolved/Closed for an open or pending state is a reopen
  (the engine counts it and resumes the resolution clock);
* the first snapshot is diffed against the created ticket (status ``open``), so an incident first seen Resolved is
  solved at its first update, not at ``opened_at``.

Priorities: 1 - Critical -> urgent, 2 - High -> high, 3 - Moderate -> normal, 4 - Low -> low. Timestamps
(``d/m/yyyy H:MM``) are read as UTC unless a time zone is given. Missing values (``?``) are nulls. Event ids are
``{number}:created`` and ``{number}:{row}:{updated|status}`` (``row``: the snapshot's index within the incident in
that order), so they are stable across runs; the source is ``urn:servicenow:incident``.

Rows with an unknown state (the log has a few ``-100``) or priority, an unreadable timestamp or missing columns are
reported with their line number and skipped (the next snapshot's diff picks up their changes). The rows of one
incident must be contiguous, as in the published log; a later stray row is reported, not merged.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, TextIO

from ...core.vocabulary import DONE_STATUSES, Priority
from .common import BadRow, EventWriter, ImportStats, LocalTime, TicketRows, ticket_event_line

__all__ = ["PRIORITY_MAP", "SOURCE", "import_servicenow", "map_state"]

SOURCE = "urn:servicenow:incident"
PRIORITY_MAP: dict[str, Priority] = {
    "1 - Critical": "urgent",
    "2 - High": "high",
    "3 - Moderate": "normal",
    "4 - Low": "low",
}
_STATES = {"New": "open", "Active": "open", "Resolved": "solved", "Closed": "closed"}
REQUIRED = ("number", "incident_state", "sys_updated_at", "opened_at", "priority")
_FIELDS = (
    ("impact", "impact"),
    ("urgency", "urgency"),
    ("location", "location"),
    ("subcategory", "subcategory"),
    ("u_symptom", "symptom"),
)


def map_state(state: str) -> str | None:
    """The v1 status of a ServiceNow incident state (``None``: unknown)."""
    mapped = _STATES.get(state)
    if mapped is None and state.startswith("Awaiting "):
        return "pending"
    return mapped


def _value(text: str) -> str | None:
    text = text.strip()
    return None if text in ("", "?") else text


class _Row(NamedTuple):
    updated_ms: int
    mod: int
    line: int
    status: str
    priority: str
    group: str | None
    assignee: str | None
    reopen: int
    opened_ms: int
    made_sla: str
    cells: list[str]


def _parse_dmy(text: str, lt: LocalTime) -> int:
    """``d/m/yyyy H:MM`` (seconds optional) -> epoch ms."""
    date_part, _, time_part = text.strip().partition(" ")
    d, m, y = date_part.split("/")
    hms = time_part.split(":")
    if len(y) != 4 or len(hms) not in (2, 3):
        raise ValueError(text)
    return lt.ms(int(y), int(m), int(d), int(hms[0]), int(hms[1]), int(hms[2]) if len(hms) == 3 else 0)


def import_servicenow(
    path: str,
    writer: EventWriter,
    *,
    timezone: str = "UTC",
    on_bad: Callable[[BadRow], None] | None = None,
    labels: TextIO | None = None,
) -> ImportStats:
    """Stream ``path`` (CSV, optionally gzipped) into ``writer``. ``labels`` receives ``ticket_id,priority,made_sla``
    per incident (the last snapshot's ``made_sla``: ServiceNow's own SLA verdict)."""
    stats = ImportStats()
    label_writer = csv.writer(labels, lineterminator="\n") if labels is not None else None
    if label_writer is not None:
        label_writer.writerow(["ticket_id", "priority", "made_sla"])

    def emit(number: str, rows: list[_Row]) -> None:
        _emit_incident(number, sorted(rows), writer, stats, log.col)
        if label_writer is not None:
            last = max(rows)
            label_writer.writerow([number, last.priority, last.made_sla])

    log: TicketRows[_Row] = TicketRows(
        path, REQUIRED, "ServiceNow incident log", stats, on_bad, emit, stray_label="incident "
    )
    col, bad = log.col, log.bad
    i_num, i_state, i_upd, i_open, i_prio = (col[c] for c in REQUIRED)
    i_mod = col.get("sys_mod_count")
    i_group, i_assignee = col.get("assignment_group"), col.get("assigned_to")
    i_reopen, i_sla = col.get("reopen_count"), col.get("made_sla")
    lt = LocalTime(timezone)
    parse = partial(_parse_dmy, lt=lt)

    def cell(cells: list[str], i: int | None) -> str | None:
        return None if i is None else _value(cells[i])

    try:
        for line, cells in log.rows(i_num, "missing number", blank=("", "?")):
            state = cells[i_state].strip()
            status = map_state(state)
            if status is None:
                bad(line, f"unknown incident_state: {state!r}")
                continue
            priority = PRIORITY_MAP.get(cells[i_prio].strip())
            if priority is None:
                bad(line, f"unknown priority: {cells[i_prio]!r}")
                continue
            updated = log.instant(line, parse, cells[i_upd], "sys_updated_at")
            opened = None if updated is None else log.instant(line, parse, cells[i_open], "opened_at")
            if updated is None or opened is None:
                continue
            mod_text = cells[i_mod].strip() if i_mod is not None else ""
            reopen_text = cells[i_reopen].strip() if i_reopen is not None else ""
            log.add(
                _Row(
                    updated,
                    int(mod_text) if mod_text.isdigit() else 0,
                    line,
                    status,
                    priority,
                    cell(cells, i_group),
                    cell(cells, i_assignee),
                    int(reopen_text) if reopen_text.isdigit() else 0,
                    opened,
                    (cells[i_sla].strip().lower() if i_sla is not None else ""),
                    cells,
                )
            )
    finally:
        log.close()
    return stats


def _emit_incident(number: str, rows: list[_Row], writer: EventWriter, stats: ImportStats, col: dict[str, int]) -> None:
    first = rows[0]
    cells = first.cells

    def get(name: str) -> str | None:
        i = col.get(name)
        return None if i is None else _value(cells[i])

    created_ms = min(first.opened_ms, first.updated_ms)
    fields: dict[str, Any] = {}
    for column, name in _FIELDS:
        v = get(column)
        if v is not None:
            fields[name] = v
    contact = get("contact_type")
    data: dict[str, Any] = {
        "priority": first.priority,
        "status": "open",
        "requester": {"id": get("caller_id") or "unknown"},
        "group": first.group,
        "assignee": first.assignee,
        "channel": contact.lower() if contact else None,
        "category": get("category"),
        "product": get("cmdb_ci"),
        "fields": fields,
    }
    _add(writer, stats, f"{number}:created", "ticket.created", number, created_ms, data)
    status, priority, group, assignee, reopen = "open", first.priority, first.group, first.assignee, 0
    for index, row in enumerate(rows):
        changed = False
        changes: dict[str, Any] = {}
        if row.priority != priority:
            changes["priority"] = row.priority
        if row.group != group:
            changes["group"] = row.group
        if row.assignee != assignee:
            changes["assignee"] = row.assignee
        if changes:
            _add(
                writer,
                stats,
                f"{number}:{index}:updated",
                "ticket.updated",
                number,
                row.updated_ms,
                {"changes": changes},
            )
            changed = True
        if row.reopen > reopen and status not in DONE_STATUSES and row.status not in DONE_STATUSES:
            stats.notes["reopen_count rose without a Resolved/Closed snapshot"] += 1
        if row.status != status:
            _add(
                writer,
                stats,
                f"{number}:{index}:status",
                "ticket.status_changed",
                number,
                row.updated_ms,
                {"status": row.status},
            )
            changed = True
        if not changed:
            stats.notes["snapshot without a tracked change"] += 1
        status, priority, group, assignee = row.status, row.priority, row.group, row.assignee
        reopen = max(reopen, row.reopen)


def _add(
    writer: EventWriter, stats: ImportStats, event_id: str, etype: str, ticket: str, time_ms: int, data: dict[str, Any]
) -> None:
    writer.add(time_ms, ticket_event_line(event_id, SOURCE, etype, ticket, time_ms, data))
    stats.events += 1
    stats.events_by_type[etype] += 1
