"""Read-only views of a ticket's SLA state for people and tools (the service's ``/tickets/{id}``)."""

from __future__ import annotations

from .clocks import due_at, is_paused, next_at
from .engine import effective_policy, rebase, sync_instance
from .plan import PolicySet
from .state import NO_THRESHOLD, RUNNING, EscalationRecord, TicketState
from .timefmt import format_ms, format_ms_or_none
from .vocabulary import METRICS

__all__ = ["describe", "upcoming"]


def describe(state: TicketState, policy: PolicySet, now_ms: int) -> dict[str, object]:
    """A JSON-ready view of a ticket's clocks at ``now_ms`` (under ``policy``, which may be newer than the one the
    state was last planned with), with its agreements' instances beside the customer SLA."""
    s = state.clone()
    rebase(s, policy)
    view = _view(s, policy, now_ms)
    by_id = {a.id: a for a in policy.agreements}
    agreements = {}
    for key, inst in s.agreements.items():
        ag = by_id.get(key.split("@", 1)[0])
        if ag is not None:
            sync_instance(inst, s)
            agreements[key] = {
                "policy": {"id": inst.policy_id, "version": policy.version},
                "active": "left" not in inst.flags,
                **{k: v for k, v in _view(inst, ag.policies, now_ms).items() if k in ("clocks", "next_deadline")},
            }
    if agreements:
        view["agreements"] = agreements
    return view


def upcoming(state: TicketState, policy: PolicySet, until_ms: int) -> list[dict[str, object]]:
    """The ticket's thresholds due before ``until_ms`` (the ``/at-risk`` rows): the customer SLA's and its
    agreements', soonest first, each with its metric, threshold, instant, agreement and the ticket's facts."""
    s = state.clone()
    rebase(s, policy)
    rows: list[tuple[int, str, str, str | None]] = []
    sets: list[TicketState] = [s]
    for inst in s.agreements.values():
        if "left" not in inst.flags:
            sync_instance(inst, s)
            sets.append(inst)
    for t in sets:
        for c in t.clocks:
            if c.next_at_ms != NO_THRESHOLD and c.next_at_ms <= until_ms and c.next_key is not None:
                rows.append((c.next_at_ms, c.metric, c.next_key, t.instance))
    return [
        {
            "ticket_id": s.ticket_id,
            "metric": metric,
            "threshold": key,
            "due_at": format_ms(at),
            "due_ms": at,
            "agreement": instance,
            "priority": s.priority,
            "group": s.group,
            "assignee": s.assignee,
            "status": s.status,
        }
        for at, metric, key, instance in sorted(rows)
    ]


def _view(s: TicketState, policy: PolicySet, now_ms: int) -> dict[str, object]:
    pol = effective_policy(s, policy)
    clocks = []
    for m in [*METRICS, *(c.metric for c in s.clocks if c.metric not in METRICS)]:  # built-ins, then defined
        c = s.clock(m)
        if c is None:
            continue
        paused = is_paused(s, pol, m)
        elapsed = c.elapsed_ms
        if c.phase == RUNNING and not paused and pol is not None and now_ms > c.mark_ms:
            elapsed += pol.calendar.elapsed_ms(c.mark_ms, now_ms)
        target = pol.targets.get(m) if pol else None
        due = due_at(c, pol, paused)
        clocks.append(
            {
                "metric": m,
                "cycle": c.cycle,
                "status": "paused" if (c.phase == RUNNING and paused) else c.phase,
                "elapsed_seconds": elapsed / 1000,
                "target_seconds": None if target is None else target / 1000,
                "due_at": format_ms_or_none(due),
                "breached": c.breached_at_ms is not None,
                "breached_at": format_ms_or_none(c.breached_at_ms),
                "thresholds_fired": list(c.fired),
                "thresholds_skipped": list(c.skipped),
                "next_threshold": c.next_key,
                "next_at": None if c.next_at_ms == NO_THRESHOLD else format_ms(c.next_at_ms),
                "escalation_level": c.level,
                "acknowledged": bool(c.acks),
            }
        )
    upcoming = next_at(s)
    return {
        "ticket_id": s.ticket_id,
        "policy": {"id": s.policy_id, "version": policy.version},
        "ticket": s.snapshot(),
        "created_at": format_ms(s.created_ms),
        "reopen_count": s.reopen_count,
        "reassignment_count": s.reassignment_count,
        "unanswered_requester_messages": s.unanswered,
        "rating": s.rating,
        "triggers_active": list(s.triggers_on),
        "flags": list(s.flags),
        "clocks": clocks,
        "next_deadline": format_ms_or_none(upcoming),
        "escalations": [_escalation(e) for e in s.escalations],
    }


def _escalation(e: EscalationRecord) -> dict[str, object]:
    return {
        "id": e.id,
        "level": e.level,
        "cause": e.cause,
        "status": "open" if e.resolved_ms is None else "resolved",
        "raised_at": format_ms(e.raised_ms),
        "acknowledged_by": e.acked_by,
        "acknowledged_at": format_ms_or_none(e.acked_ms),
        "resolved_at": format_ms_or_none(e.resolved_ms),
        "resolution": e.resolved,
        "resolved_by": e.resolved_by,
    }
