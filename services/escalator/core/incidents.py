"""Incident detection: many tickets about one thing (a product, a category ...) in a short time.

The ticket engine emits an :class:`~escalator.core.outputs.IncidentSignal` for every ``ticket.created`` that an
incident rule counts. Signals are routed by ``(rule, group value)`` -- in the Kafka service through a repartition
topic keyed by the group value -- to :func:`observe`, which keeps a sliding window of creation times per group and
fires ``incident.detected`` (plus an ``incident`` notification) when the window holds ``threshold`` tickets, at most
once per ``cooldown``.

The window is measured in event time, relative to the newest creation seen for the group; a ticket id is counted
once (a redelivered signal changes nothing). Incident ids are ``incident:{rule}:{group value}:{fired_at_ms}``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Final

from .durations import format_duration_ms
from .outputs import ESCALATIONS, Emit, IncidentSignal, cloud_event, notification
from .plan import IncidentRule, PolicySet
from .timefmt import format_ms

__all__ = [
    "MAX_TICKETS_LISTED",
    "IncidentWindow",
    "observe",
    "window_key",
]

MAX_TICKETS_LISTED: Final = 100


@dataclass(slots=True, init=False)
class IncidentWindow:
    rule_id: str
    group_value: str
    entries: tuple[tuple[int, str], ...] = ()  # (created_ms, ticket_id), sorted by time then id
    last_fired_ms: int | None = None
    fired: int = 0

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "group_value": self.group_value,
            "entries": [list(e) for e in self.entries],
            "last_fired_ms": self.last_fired_ms,
            "fired": self.fired,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IncidentWindow:
        return cls(
            d["rule_id"],
            d["group_value"],
            tuple((int(t), str(i)) for t, i in d["entries"]),
            d["last_fired_ms"],
            d["fired"],
        )


def window_key(rule_id: str, group_value: str) -> str:
    return f"{rule_id}\x1f{group_value}"


def observe(
    window: IncidentWindow | None, signal: IncidentSignal, policy: PolicySet
) -> tuple[IncidentWindow, list[Emit]]:
    """Count one created ticket; returns the new window state and the events to publish (if an incident fired)."""
    rule: IncidentRule | None = None
    rule_id = signal.rule_id
    for r in policy.incidents:  # plain loops: this runs for every counted creation
        if r.id == rule_id:
            rule = r
            break
    if window is None:
        window = IncidentWindow(rule_id, signal.group_value)
    if rule is None:
        return window, []
    ticket_id = signal.ticket_id
    for _, tid in window.entries:
        if tid == ticket_id:
            return window, []
    entries = list(window.entries)
    bisect.insort(entries, (signal.time_ms, signal.ticket_id))
    newest = entries[-1][0]
    horizon = newest - rule.window_ms
    # Keep only what can still count: creations inside (newest - window, newest].
    first = bisect.bisect_right(entries, (horizon, "\U0010ffff"))
    entries = entries[first:]
    out = IncidentWindow(window.rule_id, window.group_value, tuple(entries), window.last_fired_ms, window.fired)
    cooled = window.last_fired_ms is None or newest >= window.last_fired_ms + rule.cooldown_ms
    if len(entries) < rule.threshold or not cooled:
        return out, []
    out.last_fired_ms = newest
    out.fired += 1
    return out, _incident_events(rule, out, entries, newest, policy.version)


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
