"""Incident detection: many tickets about one thing (a product, a category ...) in a short time.

The ticket engine emits an :class:`~escalator.core.outputs.IncidentSignal` for every ``ticket.created`` that an
incident rule counts. Signals are routed by ``(rule, group value)`` -- in the Kafka service through a repartition
topic keyed by the group value -- to :func:`observe`, which keeps a sliding window of creation times per group and
fires ``incident.detected`` (plus an ``incident`` notification) when the window holds ``threshold`` tickets, at most
once per ``cooldown``.

The window is measured in event time, relative to the newest creation seen for the group; a ticket id is counted
once (a redelivered signal changes nothing). Incident ids are ``incident:{rule}:{group value}:{fired_at_ms}``.

**The incident lifecycle** (a rule with ``members``, ``escalate_members``, ``auto_resolve_after`` or
``requester_updates``; nothing of it happens otherwise). A detected incident stays *open*: its members are the
creations that tripped it and every later creation the rule counts while it is open (at most
:data:`MAX_MEMBERS` listed, the rest counted). Members that join at one instant are announced together by one
``incident.updated`` once that instant is complete; with ``escalate_members`` each listed member is escalated
(reason ``incident``, ``incident_id`` set). The incident ends when an input ``incident.resolved`` names it
(:func:`request_resolution`; naming no open incident is an :class:`Ignored` ``unknown_incident``) or when no member
joined for ``auto_resolve_after``: ``incident.resolved``, ``escalation.resolved`` (``incident_resolved``) for the
members whose policy has ``resolve_events``, and with ``requester_updates`` a note to each member's requester.

Everything happens in event time: :func:`settle` does what is due up to an instant (callers -- the Kafka
partition at its watermark, the simulator before each event and at the end -- call it with the same instants'
worth of input, so live and replay agree). :func:`observe` and :func:`request_resolution` settle the window up to
just before their own instant first: everything at one instant is applied before that instant is settled.

The order of the input at one instant matters -- the creation that reaches the threshold trips the detection
(``incident.detected`` lists the window up to it, the later ones of the instant join as members) and a resolution
before a detection at its instant names no open incident -- so both callers feed a window in ``(time, ticket)``
order: at one instant the resolutions first, then the creations by ticket id, never in arrival order.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Final

from .durations import format_duration_ms
from .envelopes import IncidentResolvedData
from .events import Event
from .messages import recipients
from .outputs import (
    ESCALATIONS,
    Command,
    Emit,
    Ignored,
    IncidentResolve,
    IncidentSignal,
    cloud_event,
    notification,
)
from .plan import IncidentRule, PolicySet
from .state import TicketState
from .timefmt import format_ms

__all__ = [
    "MAX_MEMBERS",
    "MAX_TICKETS_LISTED",
    "IncidentWindow",
    "next_due",
    "observe",
    "parse_incident_id",
    "request_resolution",
    "resolution_of",
    "settle",
    "window_key",
]

MAX_TICKETS_LISTED: Final = 100
MAX_MEMBERS: Final = 100  # members listed (and escalated) per incident; later ones are counted
_NOTE_MAX: Final = 500

# A member as kept by an open incident: [ticket, requester, policy id, resolve_events, joined_ms, escalated]
# A member's details while waiting to join (``info`` of the window's entries, ``pending``):
#     [ticket, requester, policy id, resolve_events, ticket snapshot]


@dataclass(slots=True, init=False)
class IncidentWindow:
    rule_id: str
    group_value: str
    entries: tuple[tuple[int, str], ...] = ()  # (created_ms, ticket_id), sorted by time then id
    last_fired_ms: int | None = None
    fired: int = 0
    # -- the lifecycle (rules that have one); all at their defaults otherwise
    info: tuple[list[Any], ...] = ()  # details of the entries (at most MAX_MEMBERS), in the entries' order
    incident_id: str | None = None  # the open incident
    detected_ms: int = 0
    members: tuple[list[Any], ...] = ()  # listed members, in the order they joined
    count: int = 0  # members, listed or not
    last_join_ms: int = 0
    pending: tuple[list[Any], ...] = ()  # joined at ``pending_ms``, not announced yet (None details: beyond bound)
    pending_ms: int = 0
    updates: int = 0  # incident.updated sent for the open incident
    resolving: list[Any] | None = None  # [time_ms, by, note, event id]: an input incident.resolved, not yet due

    def __init__(
        self,
        rule_id: str,
        group_value: str,
        entries: tuple[tuple[int, str], ...] = (),
        last_fired_ms: int | None = None,
        fired: int = 0,
    ) -> None:
        self.rule_id = rule_id
        self.group_value = group_value
        self.entries = entries
        self.last_fired_ms = last_fired_ms
        self.fired = fired
        self.info = ()
        self.incident_id = None
        self.detected_ms = 0
        self.members = ()
        self.count = 0
        self.last_join_ms = 0
        self.pending = ()
        self.pending_ms = 0
        self.updates = 0
        self.resolving = None

    def copy(self) -> IncidentWindow:
        w = IncidentWindow(self.rule_id, self.group_value, self.entries, self.last_fired_ms, self.fired)
        w.info = self.info
        w.incident_id = self.incident_id
        w.detected_ms = self.detected_ms
        w.members = self.members
        w.count = self.count
        w.last_join_ms = self.last_join_ms
        w.pending = self.pending
        w.pending_ms = self.pending_ms
        w.updates = self.updates
        w.resolving = self.resolving
        return w

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "rule_id": self.rule_id,
            "group_value": self.group_value,
            "entries": [list(e) for e in self.entries],
            "last_fired_ms": self.last_fired_ms,
            "fired": self.fired,
        }
        if self.info:
            d["info"] = list(self.info)
        if self.incident_id is not None:
            d["incident"] = [
                self.incident_id,
                self.detected_ms,
                list(self.members),
                self.count,
                self.last_join_ms,
                list(self.pending),
                self.pending_ms,
                self.updates,
                self.resolving,
            ]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IncidentWindow:
        w = cls(
            d["rule_id"],
            d["group_value"],
            tuple((int(t), str(i)) for t, i in d["entries"]),
            d["last_fired_ms"],
            d["fired"],
        )
        w.info = tuple(d.get("info", ()))
        inc = d.get("incident")
        if inc is not None:
            w.incident_id, w.detected_ms, w.count, w.last_join_ms = inc[0], inc[1], inc[3], inc[4]
            w.members, w.pending, w.pending_ms, w.updates = tuple(inc[2]), tuple(inc[5]), inc[6], inc[7]
            w.resolving = inc[8]
        return w


def window_key(rule_id: str, group_value: str) -> str:
    return f"{rule_id}\x1f{group_value}"


def _rule(policy: PolicySet, rule_id: str) -> IncidentRule | None:
    for r in policy.incidents:  # plain loops: this runs for every counted creation
        if r.id == rule_id:
            return r
    return None


def parse_incident_id(incident_id: str, policy: PolicySet) -> tuple[str, str] | None:
    """``(rule, group value)`` of an id ``incident:{rule}:{value}:{ms}`` whose rule the policy has (the longest
    matching rule id, as rule ids and values may hold colons), else ``None``."""
    if not incident_id.startswith("incident:"):
        return None
    body, _, ms = incident_id[len("incident:") :].rpartition(":")
    if not ms.isdigit():
        return None
    best: str | None = None
    for r in policy.incidents:
        if body.startswith(r.id + ":") and len(body) > len(r.id) + 1 and (best is None or len(r.id) > len(best)):
            best = r.id
    return None if best is None else (best, body[len(best) + 1 :])


def resolution_of(event: Event, policy: PolicySet) -> IncidentResolve | Ignored:
    """What an input ``incident.resolved`` asks of the incident windows (routed by rule and group value), or a
    counted no-op when its id names no incident rule of the policy (``unknown_incident``)."""
    data = event.data
    assert isinstance(data, IncidentResolvedData)
    if data.incident_id is not None:
        parsed = parse_incident_id(data.incident_id, policy)
    else:
        assert data.rule is not None and data.group_value is not None
        parsed = (data.rule, data.group_value)
    if parsed is None or not _is_lifecycle(policy, parsed[0]):
        return Ignored(event.id, "unknown_incident")
    named = data.incident_id or ""  # "": whichever is open
    return IncidentResolve(parsed[0], parsed[1], named, event.time_ms, data.by, data.reason, event.id)


def _is_lifecycle(policy: PolicySet, rule_id: str) -> bool:
    rule = _rule(policy, rule_id)
    return rule is not None and rule.lifecycle


def observe(
    window: IncidentWindow | None, signal: IncidentSignal, policy: PolicySet
) -> tuple[IncidentWindow, list[Emit]]:
    """Count one created ticket; returns the new window state and the events to publish (if an incident fired, or
    -- rules with a lifecycle -- what fell due before the signal's instant)."""
    rule = _rule(policy, signal.rule_id)
    if window is None:
        window = IncidentWindow(signal.rule_id, signal.group_value)
    if rule is None:
        return window, []
    ticket_id = signal.ticket_id
    for _, tid in window.entries:
        if tid == ticket_id:
            return window, []
    before: list[Emit] = []
    if rule.lifecycle:
        window, before = settle(window, signal.time_ms - 1, policy)
        if window.incident_id is not None:
            return _join(window, signal), before
    entries = list(window.entries)
    bisect.insort(entries, (signal.time_ms, signal.ticket_id))
    newest = entries[-1][0]
    horizon = newest - rule.window_ms
    # Keep only what can still count: creations inside (newest - window, newest].
    first = bisect.bisect_right(entries, (horizon, "\U0010ffff"))
    entries = entries[first:]
    out = window.copy()
    out.entries = tuple(entries)
    if rule.lifecycle:
        out.info = _keep_info(window.info, entries, signal)
    cooled = window.last_fired_ms is None or newest >= window.last_fired_ms + rule.cooldown_ms
    if len(entries) < rule.threshold or not cooled:
        return out, before
    out.last_fired_ms = newest
    out.fired += 1
    emits = _incident_events(rule, out, entries, newest, policy.version)
    if rule.lifecycle:
        emits.extend(_open(rule, out, entries, newest, policy.version))
    return out, before + emits


def _keep_info(info: tuple[list[Any], ...], entries: list[tuple[int, str]], signal: IncidentSignal) -> tuple[Any, ...]:
    """The details of the entries still in the window, plus the new one's while fewer than MAX_MEMBERS are kept."""
    inside = {tid for _, tid in entries}
    kept = [i for i in info if i[0] in inside]
    if signal.member is not None and len(kept) < MAX_MEMBERS:
        kept.append([signal.ticket_id, *signal.member])
    return tuple(kept)


def _join(window: IncidentWindow, signal: IncidentSignal) -> IncidentWindow:
    """A creation while the incident is open: a member, announced when its instant is settled."""
    tid = signal.ticket_id
    if any(m[0] == tid for m in window.members) or any(p[0] == tid for p in window.pending):
        return window
    out = window.copy()
    entries = list(window.entries)
    bisect.insort(entries, (signal.time_ms, tid))
    out.entries = tuple(entries)
    listed = len(window.members) + sum(1 for p in window.pending if len(p) > 1)
    details = [tid, *signal.member] if signal.member is not None and listed < MAX_MEMBERS else [tid]
    out.pending = (*window.pending, details)
    out.pending_ms = max(signal.time_ms, window.last_join_ms, window.pending_ms if window.pending else 0)
    return out


def next_due(window: IncidentWindow, policy: PolicySet) -> int | None:
    """The earliest instant :func:`settle` has something to do at (``None``: nothing until new input)."""
    if window.incident_id is None:
        return None
    due: list[int] = []
    if window.pending:
        due.append(window.pending_ms)
    if window.resolving is not None:
        due.append(int(window.resolving[0]))
    rule = _rule(policy, window.rule_id)
    if rule is not None and rule.auto_resolve_ms is not None:
        due.append(max(window.last_join_ms, window.pending_ms if window.pending else 0) + rule.auto_resolve_ms)
    return min(due) if due else None


def settle(window: IncidentWindow, until_ms: int, policy: PolicySet) -> tuple[IncidentWindow, list[Emit]]:
    """Do what is due at or before ``until_ms``: announce the members that joined, resolve the incident when an
    input asked for it or it was quiet for ``auto_resolve_after``."""
    due = next_due(window, policy)
    if due is None or due > until_ms:
        return window, []
    rule = _rule(policy, window.rule_id)
    if rule is None:
        return window, []
    w = window.copy()
    out: list[Emit] = []
    if w.pending and w.pending_ms <= until_ms:
        out.extend(_announce(rule, w, policy.version))
    end: tuple[int, str, str | None, str | None] | None = None
    if w.resolving is not None and int(w.resolving[0]) <= until_ms:
        end = (int(w.resolving[0]), "resolved", w.resolving[1], w.resolving[2])
    if rule.auto_resolve_ms is not None:
        quiet = w.last_join_ms + rule.auto_resolve_ms
        if quiet <= until_ms and (end is None or quiet < end[0]):
            end = (quiet, "quiet", None, None)
    if end is not None:
        out.extend(_resolve(rule, w, end, policy.version))
    return w, out


def request_resolution(
    window: IncidentWindow | None, req: IncidentResolve, policy: PolicySet
) -> tuple[IncidentWindow | None, list[Command]]:
    """An input ``incident.resolved``: the open incident it names (``incident_id`` "": the one open) ends at its
    instant (once that instant is settled: members joining at the same instant join first). Naming no open
    incident is a counted no-op."""
    out: list[Command] = []
    if window is not None:
        window, emits = settle(window, req.time_ms - 1, policy)
        out.extend(emits)
    named = req.incident_id
    if window is None or window.incident_id is None or named not in ("", window.incident_id) or window.resolving:
        out.append(Ignored(req.event_id, "unknown_incident"))
        return window, out
    w = window.copy()
    at = max(req.time_ms, w.last_join_ms, w.pending_ms if w.pending else 0)
    w.resolving = [at, req.by, None if req.note is None else req.note[:_NOTE_MAX], req.event_id]
    return w, out


# ---------------------------------------------------------------------------------------------------------------
# What an open incident publishes


def _policy_ref(version: str) -> dict[str, Any]:
    return {"id": None, "version": version}


def _open(rule: IncidentRule, w: IncidentWindow, entries: list[tuple[int, str]], at: int, version: str) -> list[Emit]:
    """The incident just detected stays open: the creations that tripped it are its members (escalated)."""
    assert w.last_fired_ms is not None
    w.incident_id = f"incident:{rule.id}:{w.group_value}:{at}"
    w.detected_ms = at
    w.count = len(entries)
    w.last_join_ms = at
    w.updates = 0
    w.pending = ()
    w.resolving = None
    by_ticket = {i[0]: i for i in w.info}
    listed = [by_ticket[tid] for _, tid in entries if tid in by_ticket][:MAX_MEMBERS]
    w.info = ()
    w.members = tuple([i[0], i[1], i[2], i[3], at, rule.escalate_level > 0] for i in listed)
    out: list[Emit] = []
    if rule.escalate_level > 0:
        for details in listed:
            out.extend(_escalate_member(rule, w.incident_id, details, at, version))
    return out


def _announce(rule: IncidentRule, w: IncidentWindow, version: str) -> list[Emit]:
    """``incident.updated`` for the members that joined at ``pending_ms`` (and their escalations)."""
    assert w.incident_id is not None
    at = w.pending_ms
    joined = sorted(w.pending, key=lambda p: str(p[0]))
    listed = [p for p in joined if len(p) > 1]
    w.pending = ()
    w.count += len(joined)
    w.last_join_ms = at
    w.updates += 1
    w.members = (*w.members, *([p[0], p[1], p[2], p[3], at, rule.escalate_level > 0] for p in listed))
    at_text = format_ms(at)
    update = cloud_event(
        "incident.updated",
        f"{w.incident_id}:updated:{w.updates}",
        w.group_value,
        at_text,
        {
            "incident_id": w.incident_id,
            "rule": rule.id,
            "group_by": rule.group_by,
            "group_value": w.group_value,
            "joined": [str(p[0]) for p in listed],
            "joined_count": len(joined),
            "count": w.count,
            "members": len(w.members),
            "fired_at": at_text,
            "policy": _policy_ref(version),
        },
    )
    out = [Emit(ESCALATIONS, w.group_value, update)]
    if rule.escalate_level > 0:
        for details in listed:
            out.extend(_escalate_member(rule, w.incident_id, details, at, version))
    return out


def _member_state(details: list[Any], at: int) -> TicketState:
    """Enough of a member ticket to address and describe its escalation (from its creation's snapshot)."""
    snap: dict[str, Any] = details[4]
    return TicketState(
        str(details[0]),
        at,
        priority=snap["priority"],
        status=snap["status"],
        requester_id=details[1],
        requester_tier=snap["requester_tier"],
        group=snap["group"],
        assignee=snap["assignee"],
        tags=tuple(snap["tags"]),
    )


def _escalate_member(rule: IncidentRule, incident_id: str, details: list[Any], at: int, version: str) -> list[Emit]:
    """``escalation.raised`` (reason ``incident``) for one member, and the notification of its recipients."""
    s = _member_state(details, at)
    tid = s.ticket_id
    esc_id = f"{tid}:{incident_id}"
    at_text = format_ms(at)
    targets = recipients(s.facts(), rule.escalate_notify, None)
    policy_ref = {"id": details[2], "version": version}
    level = rule.escalate_level
    raised = cloud_event(
        "escalation.raised",
        esc_id,
        tid,
        at_text,
        {
            "escalation_id": esc_id,
            "ticket_id": tid,
            "level": level,
            "kind": "automatic",
            "reason": "incident",
            "metric": None,
            "trigger": None,
            "cycle": 1,
            "threshold": "incident",
            "policy": policy_ref,
            "targets": targets,
            "due_at": None,
            "fired_at": at_text,
            "ticket": s.snapshot(),
            "incident_id": incident_id,
        },
    )
    note = notification(
        f"{esc_id}:notify",
        tid,
        at_text,
        ticket_id=tid,
        kind="escalation",
        recipients=targets,
        severity="critical" if level >= 2 else "high",
        subject=f"[L{level}] Ticket {tid} is part of incident {incident_id}",
        body=f"Ticket {tid} joined incident {incident_id} (rule {rule.id}); it is escalated to level {level} "
        "until the incident is resolved.",
        policy_ref=policy_ref,
        escalation_id=esc_id,
        incident_id=incident_id,
    )
    return [Emit(ESCALATIONS, tid, raised), note]


def _resolve(
    rule: IncidentRule, w: IncidentWindow, end: tuple[int, str, str | None, str | None], version: str
) -> list[Emit]:
    """The incident ends: ``incident.resolved``, its notification, the members' escalations resolved and, with
    ``requester_updates``, a note to each member's requester. The window forgets the incident."""
    assert w.incident_id is not None
    at, reason, by, note = end
    incident_id = w.incident_id
    at_text = format_ms(at)
    policy_ref = _policy_ref(version)
    resolved = cloud_event(
        "incident.resolved",
        f"{incident_id}:resolved",
        w.group_value,
        at_text,
        {
            "incident_id": incident_id,
            "rule": rule.id,
            "group_by": rule.group_by,
            "group_value": w.group_value,
            "reason": reason,
            "by": by,
            "note": note,
            "detected_at": format_ms(w.detected_ms),
            "fired_at": at_text,
            "open_ms": at - w.detected_ms,
            "count": w.count,
            "tickets": [str(m[0]) for m in w.members],
            "policy": policy_ref,
        },
    )
    targets = [{"type": t.type, "id": t.id or ""} for t in rule.notify if t.id is not None] or [
        {"type": "role", "id": "incident_manager"}
    ]
    why = f"resolved by {by}" if by is not None else "resolved" if reason == "resolved" else "quiet"
    out = [
        Emit(ESCALATIONS, w.group_value, resolved),
        notification(
            f"{incident_id}:resolved:notify",
            w.group_value,
            at_text,
            ticket_id=None,
            kind="incident",
            recipients=targets,
            severity="info",
            subject=f"Incident over: {rule.group_by} {w.group_value} ({w.count} tickets)",
            body=f"Incident {incident_id} ended at {at_text} ({why}) after {format_duration_ms(at - w.detected_ms)}.",
            policy_ref=policy_ref,
            incident_id=incident_id,
        ),
    ]
    for m in w.members:
        out.extend(_member_resolved(rule, incident_id, m, at, by, version))
    w.incident_id = None
    w.members = ()
    w.count = 0
    w.pending = ()
    w.updates = 0
    w.resolving = None
    return out


def _member_resolved(
    rule: IncidentRule, incident_id: str, m: list[Any], at: int, by: str | None, version: str
) -> list[Emit]:
    tid, requester, policy_id, resolve_events, joined_ms, escalated = m
    at_text = format_ms(at)
    out: list[Emit] = []
    esc_id = f"{tid}:{incident_id}"
    policy_ref = {"id": policy_id, "version": version}
    if escalated and resolve_events:
        data = {
            "escalation_id": esc_id,
            "ticket_id": tid,
            "level": rule.escalate_level,
            "reason": "incident_resolved",
            "raised_at": format_ms(joined_ms),
            "fired_at": at_text,
            "open_ms": at - joined_ms,
            "acknowledged_by": None,
            "acknowledged_at": None,
            "by": by,
            "policy": policy_ref,
        }
        out.append(Emit(ESCALATIONS, tid, cloud_event("escalation.resolved", f"{esc_id}:resolved", tid, at_text, data)))
    if rule.requester_updates and requester is not None:
        out.append(
            notification(
                f"{esc_id}:requester",
                tid,
                at_text,
                ticket_id=tid,
                kind="requester_update",
                recipients=[{"type": "requester", "id": requester}],
                severity="info",
                subject=f"Update on your request {tid}: the underlying problem is fixed",
                body=f"The problem behind your request {tid}, which affected other customers too, has been resolved. "
                "If anything still does not work for you, reply to this message.",
                policy_ref=policy_ref,
                escalation_id=esc_id if escalated else None,
                incident_id=incident_id,
            )
        )
    return out


def _incident_events(
    rule: IncidentRule, window: IncidentWindow, entries: list[tuple[int, str]], at: int, version: str
) -> list[Emit]:
    incident_id = f"incident:{rule.id}:{window.group_value}:{at}"
    at_text = format_ms(at)
    targets = [{"type": t.type, "id": t.id or ""} for t in rule.notify if t.id is not None] or [
        {"type": "role", "id": "incident_manager"}
    ]
    policy_ref = {"id": None, "version": version}
    count = len(entries)
    window_text = format_duration_ms(rule.window_ms)
    incident = cloud_event(
        "incident.detected",
        incident_id,
        window.group_value,
        at_text,
        {
            "incident_id": incident_id,
            "rule": rule.id,
            "group_by": rule.group_by,
            "group_value": window.group_value,
            "count": count,
            "window": window_text,
            "level": rule.level,
            "tickets": [tid for _, tid in entries[:MAX_TICKETS_LISTED]],
            "first_at": format_ms(entries[0][0]),
            "fired_at": at_text,
            "targets": targets,
            "policy": policy_ref,
        },
    )
    note = notification(
        f"{incident_id}:notify",
        window.group_value,
        at_text,
        ticket_id=None,
        kind="incident",
        recipients=targets,
        severity="critical",
        subject=f"Possible incident: {count} new tickets for {rule.group_by} {window.group_value} in {window_text}",
        body=(
            f"Rule {rule.id}: {count} tickets with {rule.group_by} = {window.group_value} were created between "
            f"{format_ms(entries[0][0])} and {at_text} (threshold {rule.threshold} in {window_text})."
        ),
        policy_ref=policy_ref,
        incident_id=incident_id,
    )
    return [Emit(ESCALATIONS, window.group_value, incident), note]
