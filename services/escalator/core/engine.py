"""The SLA / escalation engine: pure, deterministic, clock-injected.

Three functions make up the whole API the adapters (Kafka worker, replay simulator) use:

* ``apply(state, event, policy) -> (state, commands)`` -- one ticket event;
* ``advance(state, now_ms, policy) -> (state, commands)`` -- fire every threshold whose instant is ``<= now_ms``;
* ``next_deadline(state, policy) -> ms | None`` -- the instant of the next threshold, for the timer index.

Time rules (see docs/engine.md):

* Each threshold has a logical instant: the earliest instant at which its clock's elapsed open time reaches it.
  Outputs carry that instant (``fired_at``), whatever the wall clock says when they are produced.
* An event at instant ``t`` is applied after every threshold strictly before ``t`` and before those at exactly ``t``
  (a reply at exactly the deadline meets it).
* A ticket's ``watermark`` is the latest instant it has acted on (an applied event or a fired threshold). An event
  older than its ticket's watermark is late: it is applied at the watermark (the past cannot be unsent).
  ``advance`` moves the watermark only through the thresholds it fires, so splitting ``advance`` into smaller
  steps, or advancing other tickets, never changes the outputs of the events that follow.
"""

from __future__ import annotations

from typing import Final

from .durations import format_duration_ms
from .events import (
    CommentedData,
    CreatedData,
    EscalationAcknowledgedData,
    Event,
    RatedData,
    StatusChangedData,
    UpdatedData,
)
from .outputs import (
    ESCALATIONS,
    ClockOutcome,
    Command,
    Emit,
    Ignored,
    IncidentSignal,
    cloud_event,
    notification,
)
from .plan import CompiledPolicy, Matcher, NotifyTarget, PolicySet, Threshold
from .state import ACHIEVED, CANCELLED, RUNNING, STOPPED, Clock, TicketState
from .timefmt import format_ms
from .vocabulary import DEFAULT_PAUSE_ON, DONE_STATUSES, METRICS

__all__ = ["SEEN_IDS_KEPT", "advance", "apply", "describe", "new_ticket", "next_deadline", "select_policy"]

SEEN_IDS_KEPT: Final = 64
_METRIC_ORDER: Final = {m: i for i, m in enumerate(METRICS)}
_DEFAULT_PAUSE: Final = frozenset(DEFAULT_PAUSE_ON)
_METRIC_TEXT: Final = {
    "first_response": "first response",
    "next_reply": "next reply",
    "periodic_update": "periodic update",
    "resolution": "resolution",
}


# ---------------------------------------------------------------------------------------------------------------
# Public API


def apply(
    state: TicketState | None, event: Event, policy: PolicySet, *, in_place: bool = False
) -> tuple[TicketState, list[Command]]:
    """Apply one ticket event. ``state`` is ``None`` for a ticket seen for the first time.

    ``state`` is left unchanged and a new state returned, unless ``in_place`` is true: then ``state`` itself is
    updated and returned (no copy), for a caller that owns the state and keeps only the result (the simulator).
    The commands are the same either way.
    """
    key = event.dedup_key
    if state is not None and key in state.seen:
        return state, [Ignored(event.id, "duplicate")]
    cmds: list[Command] = []
    was_implicit = False
    if state is None:
        s = new_ticket(event, policy)
        at = event.time_ms
    else:
        was_implicit = "implicit" in state.flags  # read before ``s`` (which may be ``state``) changes
        s = state if in_place else state.clone()
        if s.policy_version != policy.version:
            _rebase(s, policy)
        at = event.time_ms if event.time_ms > s.watermark_ms else s.watermark_ms
        _fire_due(s, policy, at, False, cmds)
        if isinstance(event.data, CreatedData):
            s.flags = _add_flag(s.flags, "created_late" if "implicit" in s.flags else "duplicate_created")
            s.flags = tuple(f for f in s.flags if f != "implicit")
    created = isinstance(event.data, CreatedData)
    if state is None and created:
        _signal_incidents(s, policy, at, cmds)
    else:
        if created and "created_late" in s.flags and was_implicit:
            _signal_incidents(s, policy, at, cmds)
        _mutate(s, event, at, policy, cmds)
    _evaluate_triggers(s, policy, at, cmds)
    _fire_due(s, policy, at, True, cmds)
    s.watermark_ms = at
    s.last_event_ms = event.time_ms if event.time_ms > s.last_event_ms else s.last_event_ms
    seen = (*s.seen, key)
    s.seen = seen if len(seen) <= SEEN_IDS_KEPT else seen[-SEEN_IDS_KEPT:]
    return s, cmds


def advance(
    state: TicketState, now_ms: int, policy: PolicySet, *, in_place: bool = False
) -> tuple[TicketState, list[Command]]:
    """Fire every threshold due at or before ``now_ms``, each at its own logical instant, in time order.
    ``in_place`` as for :func:`apply`."""
    if state.policy_version == policy.version:
        nxt = _next_at(state)
        if nxt is None or nxt > now_ms:
            return state, []
    s = state if in_place else state.clone()
    _rebase(s, policy)
    cmds: list[Command] = []
    _fire_due(s, policy, now_ms, True, cmds)
    return s, cmds


def next_deadline(state: TicketState, policy: PolicySet) -> int | None:
    """The instant of the ticket's next threshold (``None``: nothing pending, e.g. paused or all met)."""
    if state.policy_version != policy.version:
        s = state.clone()
        _rebase(s, policy)
        return _next_at(s)
    return _next_at(state)


def select_policy(state: TicketState, policy: PolicySet) -> CompiledPolicy | None:
    """The first policy whose ``match`` holds for the ticket (``None`` when none does)."""
    for p in policy.policies:
        if p.matcher.empty or _matches(p.matcher, state):
            return p
    return None


def new_ticket(event: Event, policy: PolicySet) -> TicketState:
    """The state of a ticket first seen in ``event``: from ``ticket.created``, or implicit (flagged) otherwise."""
    at = event.time_ms
    s = TicketState(ticket_id=event.ticket_id, created_ms=at, watermark_ms=at, last_event_ms=at)
    data = event.data
    if isinstance(data, CreatedData):
        _take_attributes(s, data)
        s.status = data.status
    else:
        s.status = "open"
        s.flags = ("implicit",)
    pol = select_policy(s, policy)
    s.policy_id = pol.id if pol else None
    s.policy_version = policy.version
    s.clocks = {
        "first_response": Clock("first_response", 1, RUNNING, at, 0, at),
        "resolution": Clock("resolution", 1, RUNNING, at, 0, at),
    }
    if s.status in DONE_STATUSES:
        for m in ("first_response", "resolution"):
            c = s.clocks[m].copy()
            c.phase = STOPPED if m == "first_response" else ACHIEVED
            c.ended_ms = at
            s.clocks[m] = c
        if s.status == "closed":
            s.closed_ms = at
    _reschedule_all(s, pol)
    return s


def describe(state: TicketState, policy: PolicySet, now_ms: int) -> dict[str, object]:
    """A JSON-ready view of a ticket's clocks at ``now_ms`` (the ``/tickets/{id}`` view)."""
    s = state.clone()
    _rebase(s, policy)
    pol = policy.by_id(s.policy_id)
    paused = _is_paused(s, pol)
    clocks = []
    for m in METRICS:
        c = s.clocks.get(m)
        if c is None:
            continue
        elapsed = c.elapsed_ms
        if c.phase == RUNNING and not paused and pol is not None and now_ms > c.mark_ms:
            elapsed += pol.calendar.elapsed_ms(c.mark_ms, now_ms)
        target = pol.targets.get(m) if pol else None
        due = _due_at(c, pol, paused)
        clocks.append(
            {
                "metric": m,
                "cycle": c.cycle,
                "status": "paused" if (c.phase == RUNNING and paused) else c.phase,
                "elapsed_seconds": elapsed / 1000,
                "target_seconds": None if target is None else target / 1000,
                "due_at": None if due is None else format_ms(due),
                "breached": c.breached_at_ms is not None,
                "breached_at": None if c.breached_at_ms is None else format_ms(c.breached_at_ms),
                "thresholds_fired": list(c.fired),
                "next_threshold": c.next_key,
                "next_at": None if c.next_at_ms is None else format_ms(c.next_at_ms),
                "escalation_level": c.level,
                "acknowledged": bool(c.acks),
            }
        )
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
        "next_deadline": None if _next_at(s) is None else format_ms(_next_at(s)),  # type: ignore[arg-type]
    }


# ---------------------------------------------------------------------------------------------------------------
# Event handling


def _mutate(s: TicketState, event: Event, at: int, ps: PolicySet, cmds: list[Command]) -> None:
    data = event.data
    pol = ps.by_id(s.policy_id)
    if isinstance(data, CommentedData):
        if not data.public:
            return
        if data.author == "agent":
            s.agent_replies += 1
            s.unanswered = 0
            for m in ("first_response", "next_reply", "periodic_update"):
                _end(s, m, ACHIEVED, at, pol, cmds)
            if s.status not in DONE_STATUSES:
                _start_cycle(s, "periodic_update", at, pol)
        else:
            s.unanswered += 1
            if s.status not in DONE_STATUSES and not _running(s, "next_reply") and not _running(s, "first_response"):
                _start_cycle(s, "next_reply", at, pol)
        return
    if isinstance(data, StatusChangedData):
        _set_status(s, data.status, at, pol, cmds)
        return
    if isinstance(data, UpdatedData):
        ch = data.changes
        fields_set = ch.model_fields_set
        if "priority" in fields_set and ch.priority is not None:
            s.priority = ch.priority
        if "group" in fields_set and ch.group != s.group:
            if s.group is not None:
                s.reassignment_count += 1
            s.group = ch.group
        if "assignee" in fields_set:
            s.assignee = ch.assignee
        if "tags" in fields_set:
            s.tags = tuple(dict.fromkeys(ch.tags or ()))
        if "product" in fields_set:
            s.product = ch.product
        if "category" in fields_set:
            s.category = ch.category
        if "requester_tier" in fields_set and ch.requester_tier is not None:
            s.requester_tier = ch.requester_tier
        if "fields" in fields_set and ch.fields:
            merged = dict(s.fields)
            for k, v in ch.fields.items():
                if v is None:
                    merged.pop(k, None)
                else:
                    merged[k] = v
            s.fields = merged
        _reselect(s, ps, at)
        return
    if isinstance(data, CreatedData):
        s.created_ms = min(s.created_ms, event.time_ms)
        _take_attributes(s, data)
        if data.status != s.status and "duplicate_created" not in s.flags:
            _set_status(s, data.status, at, pol, cmds)
        _reselect(s, ps, at)
        return
    if isinstance(data, RatedData):
        s.rating = data.score
        return
    if isinstance(data, EscalationAcknowledgedData):
        s.escalation_requested = False
        _acknowledge(s, data, at, pol)
        return
    # ticket.escalation_requested
    s.escalation_requested = True


def _take_attributes(s: TicketState, data: CreatedData) -> None:
    """The attributes a ``ticket.created`` sets (status is handled by the caller)."""
    s.priority = data.priority
    s.requester_id = data.requester.id
    s.requester_tier = data.requester.tier
    s.group, s.assignee, s.channel = data.group, data.assignee, data.channel
    s.product, s.category = data.product, data.category
    s.tags = tuple(dict.fromkeys(data.tags))
    s.fields = dict(data.fields)


def _signal_incidents(s: TicketState, ps: PolicySet, at: int, cmds: list[Command]) -> None:
    for rule in ps.incidents:
        if not _matches(rule.matcher, s):
            continue
        value = s.attribute(rule.group_by)
        if value is None or value == "":
            continue
        cmds.append(IncidentSignal(rule.id, str(value), s.ticket_id, at))


def _set_status(s: TicketState, status: str, at: int, pol: CompiledPolicy | None, cmds: list[Command]) -> None:
    old = s.status
    if status == old:
        return
    was_paused = _is_paused(s, pol)
    _checkpoint_all(s, at, pol, was_paused)
    s.status = status
    if status == "solved":
        _end(s, "resolution", ACHIEVED, at, pol, cmds)
        _end(s, "first_response", STOPPED, at, pol, cmds)
        _end(s, "next_reply", STOPPED, at, pol, cmds)
        _end(s, "periodic_update", CANCELLED, at, pol, cmds)
    elif status == "closed":
        _end(s, "resolution", ACHIEVED, at, pol, cmds)
        _end(s, "first_response", STOPPED, at, pol, cmds)
        _end(s, "next_reply", STOPPED, at, pol, cmds)
        _end(s, "periodic_update", CANCELLED, at, pol, cmds)
        s.closed_ms = at
        s.escalation_requested = False
    elif old in DONE_STATUSES:
        # Reopen: the resolution clock resumes the same cycle with the open time it had.
        s.reopen_count += 1
        s.closed_ms = None
        c = s.clocks.get("resolution")
        if c is not None:
            c = c.copy()
            c.phase, c.ended_ms, c.mark_ms = RUNNING, None, at
            s.clocks["resolution"] = c
    if status == "solved":
        s.escalation_requested = False
    _reschedule_all(s, pol)


def _acknowledge(s: TicketState, data: EscalationAcknowledgedData, at: int, pol: CompiledPolicy | None) -> None:
    paused = _is_paused(s, pol)
    for m in METRICS:
        c = s.clocks.get(m)
        if c is None or c.level == 0 or c.phase != RUNNING:
            continue
        if data.escalation_id is not None and not data.escalation_id.startswith(f"{s.ticket_id}:{m}:{c.cycle}:"):
            continue
        if data.level is not None and c.level < data.level:
            continue
        c = _checkpoint(c, at, pol, paused)
        c.acks = (*c.acks, c.elapsed_ms)
        s.clocks[m] = _schedule(c, pol, paused)


def _reselect(s: TicketState, ps: PolicySet, at: int) -> None:
    old = ps.by_id(s.policy_id)
    new = select_policy(s, ps)
    if new is old:
        return
    # Running clocks keep their elapsed time (measured on the old policy's calendar up to now) and take the new
    # targets from here on; thresholds already fired stay fired, any now overdue fire at once.
    _checkpoint_all(s, at, old, _is_paused(s, old))
    s.policy_id = new.id if new else None
    _reschedule_all(s, new)


# ---------------------------------------------------------------------------------------------------------------
# Clocks


def _running(s: TicketState, metric: str) -> bool:
    c = s.clocks.get(metric)
    return c is not None and c.phase == RUNNING


def _is_paused(s: TicketState, pol: CompiledPolicy | None) -> bool:
    return s.status in (pol.pause_on if pol is not None else _DEFAULT_PAUSE)


def _checkpoint(c: Clock, at: int, pol: CompiledPolicy | None, paused: bool) -> Clock:
    """A copy of a running clock with its open time accumulated up to ``at``."""
    c = c.copy()
    if at > c.mark_ms:
        if not paused and pol is not None:
            c.elapsed_ms += pol.calendar.elapsed_ms(c.mark_ms, at)
        elif not paused:
            c.elapsed_ms += at - c.mark_ms
        c.mark_ms = at
    return c


def _checkpoint_all(s: TicketState, at: int, pol: CompiledPolicy | None, paused: bool) -> None:
    clocks = s.clocks
    for m, c in list(clocks.items()):
        # A clock already checkpointed at ``at`` (or later) would only be copied unchanged: keep sharing it.
        if c.phase == RUNNING and at > c.mark_ms:
            clocks[m] = _checkpoint(c, at, pol, paused)


def _start_cycle(s: TicketState, metric: str, at: int, pol: CompiledPolicy | None) -> None:
    prev = s.clocks.get(metric)
    cycle = prev.cycle + 1 if prev is not None else 1
    s.clocks[metric] = _schedule(Clock(metric, cycle, RUNNING, at, 0, at), pol, _is_paused(s, pol))


def _end(s: TicketState, metric: str, phase: str, at: int, pol: CompiledPolicy | None, cmds: list[Command]) -> None:
    c = s.clocks.get(metric)
    if c is None or c.phase != RUNNING:
        return
    c = _checkpoint(c, at, pol, _is_paused(s, pol))
    c.phase, c.ended_ms, c.next_at_ms, c.next_key = phase, at, None, None
    s.clocks[metric] = c
    target = pol.targets.get(metric) if pol is not None else None
    cmds.append(
        ClockOutcome(  # positional (ticket_id, metric, cycle, outcome, ended, elapsed_ms, target_ms, started_ms,
            # ended_ms, priority, policy_id): keyword arguments cost twice as much on this hot path
            s.ticket_id,
            metric,
            c.cycle,
            "breached" if c.breached_at_ms is not None else "met",
            phase,
            c.elapsed_ms,
            target,
            c.started_ms,
            at,
            s.priority,
            s.policy_id,
        )
    )


def _reschedule_all(s: TicketState, pol: CompiledPolicy | None) -> None:
    paused = _is_paused(s, pol)
    clocks = s.clocks
    for m, c in list(clocks.items()):
        if c.phase == RUNNING or c.next_at_ms is not None:
            at, key = _next_of(c, pol, paused)
            if at != c.next_at_ms or key != c.next_key:  # unchanged: keep sharing the (immutable) clock
                fresh = c.copy()
                fresh.next_at_ms, fresh.next_key = at, key
                clocks[m] = fresh


def _pending(c: Clock, pol: CompiledPolicy | None) -> tuple[int, str] | None:
    """The next unfired threshold of a running clock as (open-time offset, key)."""
    if c.phase != RUNNING or pol is None:
        return None
    plan = pol.plans.get(c.metric)
    if plan is None:
        return None
    best: tuple[int, str] | None = None
    halted = bool(c.acks)
    fired = c.fired
    for th in plan:
        if th.key in fired or (halted and th.kind == "esc"):
            continue
        best = (th.offset_ms, th.key)
        break
    if pol.ack_timeout_ms is not None:
        for n, ack_elapsed in enumerate(c.acks, 1):
            key = f"ack{n}"
            if key in fired:
                continue
            offset = ack_elapsed + pol.ack_timeout_ms
            if best is None or offset < best[0]:
                best = (offset, key)
            break
    return best


def _schedule(c: Clock, pol: CompiledPolicy | None, paused: bool) -> Clock:
    """Set the cached next threshold instant of ``c`` (mutates ``c``: callers pass a fresh copy)."""
    c.next_at_ms, c.next_key = _next_of(c, pol, paused)
    return c


def _next_of(c: Clock, pol: CompiledPolicy | None, paused: bool) -> tuple[int | None, str | None]:
    """The next threshold of ``c`` as (instant, key); the instant is ``None`` while paused."""
    nxt = _pending(c, pol)
    if nxt is None:
        return None, None
    offset, key = nxt
    if offset <= c.elapsed_ms:
        return c.mark_ms, key
    if paused:
        return None, key
    assert pol is not None
    return pol.calendar.add_open_ms(c.mark_ms, offset - c.elapsed_ms), key


def _due_at(c: Clock, pol: CompiledPolicy | None, paused: bool) -> int | None:
    """When the clock's target was (or, running at full speed from now, will be) reached."""
    if c.breached_at_ms is not None:
        return c.breached_at_ms
    if pol is None or c.metric not in pol.targets or c.phase != RUNNING or paused:
        return None
    target = pol.targets[c.metric]
    if target <= c.elapsed_ms:
        return c.mark_ms
    return pol.calendar.add_open_ms(c.mark_ms, target - c.elapsed_ms)


def _next_at(s: TicketState) -> int | None:
    best: int | None = None
    for c in s.clocks.values():
        t = c.next_at_ms
        if t is not None and (best is None or t < best):
            best = t
    return best


def _rebase(s: TicketState, ps: PolicySet) -> None:
    """Adopt a different policy file (after a restart with a new policy): re-select and re-plan every clock."""
    if s.policy_version == ps.version:
        return
    s.policy_version = ps.version
    new = select_policy(s, ps)
    s.policy_id = new.id if new else None
    _reschedule_all(s, new)


# ---------------------------------------------------------------------------------------------------------------
# Firing thresholds


def _fire_due(s: TicketState, ps: PolicySet, limit: int, inclusive: bool, cmds: list[Command]) -> None:
    """Fire every threshold due before ``limit`` (or at it, when ``inclusive``), earliest first; ties go in metric
    order, then plan order."""
    pol: CompiledPolicy | None = None
    while True:
        chosen: Clock | None = None
        best = 0
        for c in s.clocks.values():
            t = c.next_at_ms
            if t is None:
                continue
            if chosen is None or t < best or (t == best and _METRIC_ORDER[c.metric] < _METRIC_ORDER[chosen.metric]):
                chosen, best = c, t
        if chosen is None or best > limit or (best == limit and not inclusive):
            return
        if pol is None:
            pol = ps.by_id(s.policy_id)
        _fire(s, chosen, pol, ps, cmds)


def _fire(s: TicketState, c: Clock, pol: CompiledPolicy | None, ps: PolicySet, cmds: list[Command]) -> None:
    assert pol is not None and c.next_at_ms is not None and c.next_key is not None
    at, key = c.next_at_ms, c.next_key
    paused = _is_paused(s, pol)
    # Accumulate open time up to the firing instant so later thresholds are planned from here.
    c = _checkpoint(c, at, pol, paused)
    c.fired = (*c.fired, key)
    metric = c.metric
    base_id = f"{s.ticket_id}:{metric}:{c.cycle}:{key}"
    version = ps.version
    target = pol.targets[metric]
    if key == "breach":
        c.breached_at_ms = at
    due = _due_at(c, pol, paused)
    due_text = None if due is None else format_ms(due)
    at_text = format_ms(at)
    policy_ref = {"id": pol.id, "version": version}
    mtext = _METRIC_TEXT[metric]
    th: Threshold | None = None
    if not key.startswith("ack"):
        for candidate in pol.plans[metric]:
            if candidate.key == key:
                th = candidate
                break
    if th is not None and th.kind in ("warn", "breach"):
        recipients = _resolve(s, pol.warn_notify if th.kind == "warn" else pol.breach_notify, pol)
        if th.kind == "warn":
            kind, severity = "sla_warning", "warning"
            subject = (
                f"SLA warning: ticket {s.ticket_id} {mtext} {th.fraction:.0%} of {format_duration_ms(target)} used"
            )
            body = (
                f"The {mtext} target of ticket {s.ticket_id} ({s.priority}, group {s.group or '-'}) is due at "
                f"{due_text}; {format_duration_ms(th.offset_ms)} of {format_duration_ms(target)} open time used."
            )
        else:
            kind, severity = "sla_breach", "high"
            subject = f"SLA breached: ticket {s.ticket_id} {mtext} (target {format_duration_ms(target)})"
            body = (
                f"The {mtext} target of ticket {s.ticket_id} ({s.priority}, group {s.group or '-'}) was due at "
                f"{at_text} and has not been met."
            )
        cmds.append(
            notification(
                base_id,
                s.ticket_id,
                at_text,
                ticket_id=s.ticket_id,
                kind=kind,
                recipients=recipients,
                severity=severity,
                subject=subject,
                body=body,
                policy_ref=policy_ref,
                metric=metric,
                cycle=c.cycle,
                due_at=due_text,
            )
        )
    else:
        # A ladder step, a repeat of the last step, or an acknowledgement that timed out (next level up).
        if th is not None:
            step = pol.steps[th.step]
        else:
            higher = [st for st in pol.steps if st.level > c.level]
            step = higher[0] if higher else pol.steps[-1]
        c.level = max(c.level, step.level)
        overdue = c.elapsed_ms - target
        reason_text = (
            f"acknowledged {format_duration_ms(pol.ack_timeout_ms or 0)} ago and still open"
            if th is None
            else f"overdue by {format_duration_ms(overdue)}"
        )
        _escalate(
            s,
            pol,
            ps,
            at,
            cmds,
            esc_id=base_id,
            level=step.level,
            kind=step.kind,
            reason="sla_breach",
            metric=metric,
            trigger=None,
            cycle=c.cycle,
            threshold=key,
            notify=step.notify,
            due_text=due_text,
            requester_update=pol.requester_updates,
            subject=f"Escalation L{step.level}: ticket {s.ticket_id} {mtext} {reason_text}",
            body=(
                f"Ticket {s.ticket_id} ({s.priority}, group {s.group or '-'}, assignee {s.assignee or '-'}) "
                f"missed its {mtext} target of {format_duration_ms(target)} (due {due_text}); {reason_text}."
            ),
        )
    s.clocks[metric] = _schedule(c, pol, paused)
    s.watermark_ms = max(s.watermark_ms, at)


def _escalate(
    s: TicketState,
    pol: CompiledPolicy | None,
    ps: PolicySet,
    at: int,
    cmds: list[Command],
    *,
    esc_id: str,
    level: int,
    kind: str,
    reason: str,
    metric: str | None,
    trigger: str | None,
    cycle: int,
    threshold: str,
    notify: tuple[NotifyTarget, ...],
    due_text: str | None,
    requester_update: bool,
    subject: str,
    body: str,
) -> None:
    at_text = format_ms(at)
    targets = _resolve(s, notify, pol)
    policy_ref = {"id": pol.id if pol else None, "version": ps.version}
    cmds.append(
        Emit(
            ESCALATIONS,
            s.ticket_id,
            cloud_event(
                "escalation.raised",
                esc_id,
                s.ticket_id,
                at_text,
                {
                    "escalation_id": esc_id,
                    "ticket_id": s.ticket_id,
                    "level": level,
                    "kind": kind,
                    "reason": reason,
                    "metric": metric,
                    "trigger": trigger,
                    "cycle": cycle,
                    "threshold": threshold,
                    "policy": policy_ref,
                    "targets": targets,
                    "due_at": due_text,
                    "fired_at": at_text,
                    "ticket": s.snapshot(),
                    "incident_id": None,
                },
            ),
        )
    )
    cmds.append(
        notification(
            f"{esc_id}:notify",
            s.ticket_id,
            at_text,
            ticket_id=s.ticket_id,
            kind="escalation",
            recipients=targets,
            severity="critical" if level >= 2 else "high",
            subject=subject,
            body=body,
            policy_ref=policy_ref,
            escalation_id=esc_id,
            metric=metric,
            cycle=cycle,
            due_at=due_text,
        )
    )
    if requester_update and s.requester_id is not None:
        cmds.append(
            notification(
                f"{esc_id}:requester",
                s.ticket_id,
                at_text,
                ticket_id=s.ticket_id,
                kind="requester_update",
                recipients=[{"type": "requester", "id": s.requester_id}],
                severity="info",
                subject=f"Your request {s.ticket_id} has been escalated",
                body=(
                    f"We are sorry your request {s.ticket_id} is taking longer than it should. It has been "
                    "escalated to a senior member of the team, who is looking into it now."
                ),
                policy_ref=policy_ref,
                escalation_id=esc_id,
                metric=metric,
                cycle=cycle,
                due_at=due_text,
            )
        )


def _resolve(s: TicketState, targets: tuple[NotifyTarget, ...], pol: CompiledPolicy | None) -> list[dict[str, str]]:
    """Concrete recipients. ``assignee`` falls back to the ticket's group; if nothing resolves, the first ladder
    step's static targets are used, so a notification is never addressed to nobody."""
    out: list[dict[str, str]] = []
    for t in targets:
        r: dict[str, str] | None
        if t.type == "assignee":
            r = (
                {"type": "user", "id": s.assignee}
                if s.assignee
                else {"type": "group", "id": s.group}
                if s.group
                else None
            )
        elif t.type == "ticket_group":
            r = {"type": "group", "id": s.group} if s.group else None
        elif t.type == "requester":
            r = {"type": "requester", "id": s.requester_id} if s.requester_id else None
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
# Triggers and matching


def _matches(m: Matcher, s: TicketState) -> bool:
    for name, allowed in m.attributes:
        if getattr(s, name) not in allowed:
            return False
    if m.tags_any is not None and m.tags_any.isdisjoint(s.tags):
        return False
    if m.tags_all is not None and not m.tags_all.issubset(s.tags):
        return False
    for name, values in m.fields:
        if name not in s.fields or s.fields[name] not in values:
            return False
    return True


def _evaluate_triggers(s: TicketState, ps: PolicySet, at: int, cmds: list[Command]) -> None:
    if not ps.triggers:
        return
    pol = ps.by_id(s.policy_id)
    on = s.triggers_on
    for trig in ps.triggers:
        holds = trig.test(s)
        active = trig.id in on
        if holds and not active:
            n = s.trigger_fires.get(trig.id, 0) + 1
            fires = dict(s.trigger_fires)
            fires[trig.id] = n
            s.trigger_fires = fires
            on = (*on, trig.id)
            esc_id = f"{s.ticket_id}:trigger:{trig.id}:{n}"
            requester_update = (
                trig.requester_update
                if trig.requester_update is not None
                else (pol.requester_updates if pol else False)
            )
            what = "requested escalation" if trig.reason == "requester_request" else f"trigger {trig.id}"
            _escalate(
                s,
                pol,
                ps,
                at,
                cmds,
                esc_id=esc_id,
                level=trig.level,
                kind=trig.kind,
                reason=trig.reason,
                metric=None,
                trigger=trig.id,
                cycle=n,
                threshold="trigger",
                notify=trig.notify,
                due_text=None,
                requester_update=requester_update,
                subject=f"Escalation L{trig.level}: ticket {s.ticket_id} ({what})",
                body=(
                    f"Ticket {s.ticket_id} ({s.priority}, group {s.group or '-'}, assignee {s.assignee or '-'}) "
                    f"was escalated by {what} ({trig.kind})."
                ),
            )
        elif not holds and active:
            on = tuple(t for t in on if t != trig.id)
    s.triggers_on = on


def _add_flag(flags: tuple[str, ...], flag: str) -> tuple[str, ...]:
    return flags if flag in flags else (*flags, flag)
