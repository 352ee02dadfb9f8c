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

from typing import Any, Final, cast

from .clocks import (
    checkpoint,
    checkpoint_all,
    due_at,
    is_paused,
    next_at,
    reschedule_all,
    reschedule_paused,
    running,
    schedule,
    start_cycle,
)
from .envelopes import (
    DeescalatedData,
    EscalationAcknowledgedData,
    EscalationRequestedData,
    TicketChanges,
    UpdatedData,
)
from .escalations import (
    Escalation,
    acknowledged,
    agreement_ref,
    cause_is,
    deescalate,
    escalate,
    id_prefix,
    prefix,
    requested,
    resolve,
)
from .events import (
    KIND_COMMENTED,
    KIND_CREATED,
    KIND_DEESCALATED,
    KIND_ESCALATION_ACKNOWLEDGED,
    KIND_ESCALATION_REQUESTED,
    KIND_RATED,
    KIND_STATUS_CHANGED,
    KIND_UPDATED,
    Event,
)
from .messages import (
    AtRiskWording,
    LadderWording,
    TriggerWording,
    Wording,
    breach_text,
    follow_up_text,
    recipients,
    warning_text,
)
from .outputs import (
    NOTIFICATIONS,
    ClockOutcome,
    Command,
    Deferred,
    Emit,
    Ignored,
    IncidentSignal,
    StateCapped,
    ThresholdSkipped,
    notification,
)
from .plan import (
    READS_ALL,
    READS_ATTRIBUTES,
    READS_RATING,
    READS_REOPENS,
    READS_REQUESTED,
    READS_UNANSWERED,
    CompiledPolicy,
    Condition,
    Matcher,
    PolicySet,
    Threshold,
)
from .state import (
    ACHIEVED,
    CANCELLED,
    MAX_ACKS,
    MAX_FIELD_KEY,
    MAX_FIELD_TEXT,
    MAX_FIELDS,
    MAX_INSTANCES,
    MAX_TAGS,
    NO_FIELDS,
    NO_THRESHOLD,
    NOT_NOTED,
    RUNNING,
    STOPPED,
    Clock,
    TicketFacts,
    TicketState,
    has_text,
    owned_agreements,
)
from .timefmt import format_ms, format_ms_or_none
from .vocabulary import DONE_STATUSES, FOLLOW_UP, METRICS, REQUESTERS

__all__ = [
    "SEEN_IDS_KEPT",
    "advance",
    "apply",
    "effective_policy",
    "new_ticket",
    "next_deadline",
    "rebase",
    "replan_at",
    "select_policy",
    "stamp_trace",
    "sync_instance",
]

SEEN_IDS_KEPT: Final = 64
_METRIC_ORDER: Final = {m: i for i, m in enumerate(METRICS)}
_BUILT_IN: Final = frozenset(METRICS)
_DONE: Final = frozenset(DONE_STATUSES)  # tested per event: a set lookup, not a scan comparing texts


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
    if state is not None and has_text(state.seen, key):
        return state, [Ignored(event.id, "duplicate")]
    cmds: list[Command] = []
    was_implicit = False
    if state is None:
        s = new_ticket(event, policy)
        at = event.time_ms
    else:
        was_implicit = has_text(state.flags, "implicit")  # read before ``s`` (which may be ``state``) changes
        s = state if in_place else state.clone()
        if s.policy_version != policy.version:
            rebase(s, policy)
        at = event.time_ms if event.time_ms > s.watermark_ms else s.watermark_ms
        if policy.agreements:
            _sync_instances(s, policy)
        hint = s.next_hint  # the last apply/advance's next instant: nothing falls due before ``at`` unless it does
        if hint == NOT_NOTED or (hint != NO_THRESHOLD and hint < at):
            _fire_all_due(s, policy, at, False, cmds)
        if event.kind == KIND_CREATED:
            s.flags = _add_flag(s.flags, "created_late" if has_text(s.flags, "implicit") else "duplicate_created")
            s.flags = tuple(f for f in s.flags if f != "implicit")
    created = event.kind == KIND_CREATED
    group_before = None if state is None else s.group
    if state is None and created:
        _signal_incidents(s, policy, at, cmds)
    else:
        if created and has_text(s.flags, "created_late") and was_implicit:
            _signal_incidents(s, policy, at, cmds)
        _mutate(s, event, at, policy, cmds)
    if created or event.kind == KIND_UPDATED:  # only these change tags and fields
        _cap_attributes(s, cmds)
    if policy.clock_rules:
        _evaluate_clocks(s, policy, at, cmds)
    if policy.agreements:
        _agreements_event(s, event, at, policy, state is None, group_before, cmds)
    if policy.triggers:
        changed = READS_ALL if state is None or s.triggers_version != policy.version else _changes(event.kind)
        _evaluate_triggers(s, policy, at, cmds, changed)
        s.triggers_version = policy.version
    s.next_hint = _fire_all_due(s, policy, at, True, cmds)  # nothing below changes a clock
    s.watermark_ms = at
    s.last_event_ms = event.time_ms if event.time_ms > s.last_event_ms else s.last_event_ms
    s.trace = event.traceparent
    if s.trace is not None:
        _stamp(cmds, s.trace)
    seen = s.seen + (key,)  # a concatenation: a star-unpacked tuple is built through a list
    s.seen = seen if len(seen) <= SEEN_IDS_KEPT else seen[-SEEN_IDS_KEPT:]
    return s, cmds


def advance(
    state: TicketState, now_ms: int, policy: PolicySet, *, in_place: bool = False
) -> tuple[TicketState, list[Command]]:
    """Fire every threshold due at or before ``now_ms``, each at its own logical instant, in time order.
    ``in_place`` as for :func:`apply`."""
    if state.policy_version == policy.version:
        nxt = _noted_next(state)
        if nxt is None or nxt > now_ms:
            return state, []
    s = state if in_place else state.clone()
    rebase(s, policy)
    if policy.agreements:
        _sync_instances(s, policy)
    cmds: list[Command] = []
    s.next_hint = _fire_all_due(s, policy, now_ms, True, cmds)
    if s.trace is not None:
        _stamp(cmds, s.trace)
    return s, cmds


def stamp_trace(s: TicketState, cmds: list[Command]) -> None:
    """Stamp outputs a ticket's thresholds produced (not an event) with the trace of its latest event."""
    if s.trace is not None:
        _stamp(cmds, s.trace)


def _stamp(cmds: list[Command], trace: str) -> None:
    """Distributed tracing: the outputs an event leads to -- at once or when its thresholds fall due -- carry its
    W3C ``traceparent`` (a CloudEvents extension attribute); outputs of untraced events have none."""
    for c in cmds:
        if type(c) is Emit:
            assert isinstance(c, Emit)
            c.stamp(trace)


def next_deadline(state: TicketState, policy: PolicySet) -> int | None:
    """The instant of the ticket's next threshold (``None``: nothing pending, e.g. paused or all met)."""
    if state.policy_version != policy.version:
        s = state.clone()
        rebase(s, policy)
        return _next_any(s)
    return _noted_next(state)


def _noted_next(s: TicketState) -> int | None:
    """:func:`_next_any`, as the last apply/advance noted it when it did (``TicketState.next_hint``)."""
    hint = s.next_hint
    if hint == NOT_NOTED:
        return _next_any(s)
    return None if hint == NO_THRESHOLD else hint


def effective_policy(state: TicketState, policy: PolicySet) -> CompiledPolicy | None:
    """The ticket's policy as it applies to it: with the calendar of its group, in its requester's time zone."""
    return policy.effective(state.policy_id, state.group, state.requester_timezone)


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
    if event.kind == KIND_CREATED:
        data = event.data_fields()
        _take_attributes(s, data)
        s.status = data["status"]
    else:
        s.status = "open"
        s.flags = ("implicit",)
    base = select_policy(s, policy)
    s.policy_id = base.id if base else None
    s.policy_version = policy.version
    pol = effective_policy(s, policy)
    s.clocks = _first_clocks(s.status, at)
    if s.status == "closed":
        s.closed_ms = at
    reschedule_all(s, pol)
    return s


def _first_clocks(status: str, at: int) -> list[Clock]:
    """The clocks a ticket (or an agreement instance) starts with: first response and resolution, running from
    ``at`` -- or already ended when it starts solved or closed."""
    if status in _DONE:
        return [
            Clock("first_response", 1, STOPPED, at, 0, at, ended_ms=at),
            Clock("resolution", 1, ACHIEVED, at, 0, at, ended_ms=at),
        ]
    return [Clock("first_response", 1, RUNNING, at, 0, at), Clock("resolution", 1, RUNNING, at, 0, at)]


# ---------------------------------------------------------------------------------------------------------------
# Event handling


def _mutate(s: TicketState, event: Event, at: int, ps: PolicySet, cmds: list[Command]) -> None:
    data = event.data
    kind = event.kind  # the class of ``data`` (the casts below are for the type checker; they cost nothing)
    if kind == KIND_COMMENTED:
        comment = event.data_fields()  # (read as a dict: see Event.data_fields)
        if not comment["public"]:
            return
        if comment["author"] == "agent":
            pol = effective_policy(s, ps)
            s.agent_replies += 1
            s.unanswered = 0
            for m in ("first_response", "next_reply", "periodic_update"):
                _end(s, m, ACHIEVED, at, pol, cmds)
            if s.status not in _DONE:
                start_cycle(s, "periodic_update", at, pol)
        else:
            s.unanswered += 1
            if s.status not in _DONE and not running(s, "next_reply") and not running(s, "first_response"):
                start_cycle(s, "next_reply", at, effective_policy(s, ps))
        return
    if kind == KIND_RATED:  # (the policy is looked up only where it is used: most events are these few)
        s.rating = event.data_fields()["score"]
        return
    pol = effective_policy(s, ps)
    if kind == KIND_STATUS_CHANGED:
        _set_status(s, event.data_fields()["status"], at, pol, cmds)
        return
    if kind == KIND_UPDATED:
        _update(s, cast(UpdatedData, data).changes, at, ps, pol)
        return
    if kind == KIND_CREATED:
        created = event.data_fields()
        s.created_ms = min(s.created_ms, event.time_ms)
        _take_attributes(s, created)
        status = created["status"]
        if status != s.status and not has_text(s.flags, "duplicate_created"):
            _set_status(s, status, at, pol, cmds)
        _reselect(s, ps, at, pol)
        return
    if kind == KIND_ESCALATION_ACKNOWLEDGED:
        s.escalation_requested = False
        _acknowledge(s, cast(EscalationAcknowledgedData, data), at, pol, cmds)
        return
    if kind == KIND_DEESCALATED:
        deescalate(s, cast(DeescalatedData, data), event.id, at, pol, cmds)
        return
    # ticket.escalation_requested: with a ``requests:`` section a request by requester|agent|manager|system is an
    # escalation of its own; any other (older-style, free-text ``by``) sets the flag the triggers test, as before
    request = cast(EscalationRequestedData, data)
    if (
        ps.requests is not None
        and kind == KIND_ESCALATION_REQUESTED
        and request.by is not None
        and request.by in REQUESTERS
    ):
        if s.instance is None:
            requested(s, request, ps, ps.requests, at, pol, cmds)
        return
    s.escalation_requested = True


def _update(s: TicketState, ch: TicketChanges, at: int, ps: PolicySet, pol: CompiledPolicy | None) -> None:
    """``ticket.updated``: the attributes that changed, then the policy (and calendar) that applies now."""
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
    if "requester_timezone" in fields_set:
        s.requester_timezone = ch.requester_timezone
    if "fields" in fields_set and ch.fields:
        merged = dict(s.fields)
        for k, v in ch.fields.items():
            if v is None:
                merged.pop(k, None)
            else:
                merged[k] = v
        s.fields = merged
    _reselect(s, ps, at, pol)


def _oversized(fields: dict[str, object]) -> bool:
    for k, v in fields.items():
        if len(k) > MAX_FIELD_KEY or (isinstance(v, str) and len(v) > MAX_FIELD_TEXT):
            return True
    return False


def _cap_attributes(s: TicketState, cmds: list[Command]) -> None:
    """Keep the ticket's tags and custom fields within their bounds (the first ones kept, long texts cut)."""
    if len(s.tags) <= MAX_TAGS and len(s.fields) <= MAX_FIELDS and not (s.fields and _oversized(s.fields)):
        return
    if len(s.tags) > MAX_TAGS:
        s.tags = s.tags[:MAX_TAGS]
        cmds.append(StateCapped(s.ticket_id, "tags"))
    if len(s.fields) > MAX_FIELDS:
        s.fields = dict(list(s.fields.items())[:MAX_FIELDS])
        cmds.append(StateCapped(s.ticket_id, "fields"))
    if _oversized(s.fields):
        s.fields = {k[:MAX_FIELD_KEY]: v[:MAX_FIELD_TEXT] if isinstance(v, str) else v for k, v in s.fields.items()}
        cmds.append(StateCapped(s.ticket_id, "field_value"))


def _drop_oldest_ended(s: TicketState, cmds: list[Command]) -> None:
    """Make room for one more agreement instance: the oldest whose group the ticket left gives way."""
    for key, inst in s.agreements.items():
        if "left" in inst.flags:
            del s.agreements[key]
            cmds.append(StateCapped(s.ticket_id, "instances"))
            return


def _take_attributes(s: TicketState, d: dict[str, Any]) -> None:
    """The attributes a ``ticket.created`` sets (status is handled by the caller), from its data's fields (``d``,
    Event.data_fields). Read from the validated models' field dicts: each attribute read on a pydantic model goes
    through its ``__getattr__`` hook, a dict read does not (tests/unit/test_envelopes_fields.py checks that the
    dicts hold exactly the models' fields)."""
    r = d["requester"].__dict__
    s.priority = d["priority"]
    s.requester_id = r["id"]
    s.requester_tier = r["tier"]
    s.requester_timezone = r["timezone"]
    s.group, s.assignee, s.channel = d["group"], d["assignee"], d["channel"]
    s.product, s.category = d["product"], d["category"]
    tags = d["tags"]
    s.tags = tuple(dict.fromkeys(tags)) if tags else ()
    fields = d["fields"]
    s.fields = dict(fields) if fields else NO_FIELDS


def _signal_incidents(s: TicketState, ps: PolicySet, at: int, cmds: list[Command]) -> None:
    for rule in ps.incidents:
        if not _matches(rule.matcher, s):
            continue
        value = s.attribute(rule.group_by)
        if value is None or value == "":
            continue
        member = None
        if rule.lifecycle:  # what the incident needs to escalate the ticket and resolve it later
            pol = ps.by_id(s.policy_id)
            member = [s.requester_id, s.policy_id, pol is not None and pol.resolve_events, s.snapshot()]
        cmds.append(IncidentSignal(rule.id, str(value), s.ticket_id, at, member))


def _set_status(s: TicketState, status: str, at: int, pol: CompiledPolicy | None, cmds: list[Command]) -> None:
    old = s.status
    if status == old:
        return
    checkpoint_all(s, at, pol, old)
    s.status = status
    if status in _DONE:
        if s.escalations:  # the ticket's end resolves them all (before its clocks end)
            resolve(s, pol, at, cmds, "ticket_solved" if status == "solved" else "ticket_closed", lambda r: True)
        _end(s, "resolution", ACHIEVED, at, pol, cmds)
        _end(s, "first_response", STOPPED, at, pol, cmds)
        _end(s, "next_reply", STOPPED, at, pol, cmds)
        _end(s, "periodic_update", CANCELLED, at, pol, cmds)
        for m in [c.metric for c in s.clocks if c.metric not in _BUILT_IN and c.metric != FOLLOW_UP]:
            _end(s, m, STOPPED, at, pol, cmds)  # a defined metric's clock stops with the ticket
        if status == "solved" and pol is not None and pol.follow_up is not None:
            start_cycle(s, FOLLOW_UP, at, pol)  # the feedback request, in ``after`` of open time
        s.escalation_requested = False
        if status == "closed":
            s.closed_ms = at
    elif old in _DONE:
        # Reopen: each clock does what its metric's on_reopen says; by default the resolution clock resumes the
        # same cycle with the open time it had, and the others stay as they ended.
        s.reopen_count += 1
        s.closed_ms = None
        follow = s.clock(FOLLOW_UP)
        if follow is not None and follow.phase == RUNNING:  # a reopen cancels the pending feedback request
            follow.phase, follow.ended_ms, follow.next_at_ms, follow.next_key = CANCELLED, at, NO_THRESHOLD, None
        for ended in list(s.clocks):
            m = ended.metric
            mode = _reopen_mode(pol, m)
            if mode == "resume":
                c = ended.copy()  # an ended clock may be shared with the state this one was cloned from
                c.phase, c.ended_ms, c.mark_ms = RUNNING, None, at
                s.put_clock(c)
            elif mode == "restart":
                start_cycle(s, m, at, pol)
    else:  # neither an end nor a reopen: only the clocks it pauses or resumes move
        reschedule_paused(s, pol, old, at)
        return
    reschedule_all(s, pol)


def _reopen_mode(pol: CompiledPolicy | None, metric: str) -> str:
    mode = pol.metric_reopen.get(metric) if pol is not None and pol.metric_reopen else None
    return mode if mode is not None else ("resume" if metric == "resolution" else "none")


def _evaluate_clocks(s: TicketState, ps: PolicySet, at: int, cmds: list[Command]) -> None:
    """The metrics the policy file defines by conditions: a cycle starts when ``start`` becomes true and none is
    running (and the ticket is not solved), and ends when ``stop`` (achieved) or ``cancel`` (cancelled) is true."""
    pol = effective_policy(s, ps)
    flags = s.flags
    for rule in ps.clock_rules:
        name = rule.name
        mark = "start:" + name
        starts = _holds(rule.start, s)
        c = s.clock(name)
        running = c is not None and c.phase == RUNNING
        if starts and not has_text(flags, mark) and not running and s.status not in _DONE:
            start_cycle(s, name, at, pol)
            running = True
        if running and _holds(rule.stop, s):
            _end(s, name, ACHIEVED, at, pol, cmds)
        elif running and rule.cancel is not None and _holds(rule.cancel, s):
            _end(s, name, CANCELLED, at, pol, cmds)
        if starts and not has_text(flags, mark):
            flags = flags + (mark,)
        elif not starts and has_text(flags, mark):
            flags = tuple(f for f in flags if f != mark)
    s.flags = flags


def _end(s: TicketState, metric: str, phase: str, at: int, pol: CompiledPolicy | None, cmds: list[Command]) -> None:
    """End the metric's running cycle (``phase``: achieved, stopped or cancelled) and report its outcome."""
    c = s.clock(metric)
    if c is None or c.phase != RUNNING:
        return
    # a running clock is the state's own (a clone copies it), so it is changed where it is
    c = checkpoint(c, at, pol, is_paused(s, pol, metric))
    c.phase, c.ended_ms, c.next_at_ms, c.next_key = phase, at, NO_THRESHOLD, None
    if s.escalations:
        reason = "clock_achieved" if phase == ACHIEVED else "clock_stopped"
        resolve(s, pol, at, cmds, reason, cause_is(f"clock:{metric}:{c.cycle}"))
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
            s.instance,
        )
    )


def _acknowledge(
    s: TicketState, data: EscalationAcknowledgedData, at: int, pol: CompiledPolicy | None, cmds: list[Command]
) -> None:
    for clock in list(s.clocks):
        m = clock.metric
        if clock.level == 0 or clock.phase != RUNNING:
            continue
        if len(clock.acks) >= MAX_ACKS:
            cmds.append(StateCapped(s.ticket_id, "acks"))
            continue
        c = clock
        if data.escalation_id is not None and not data.escalation_id.startswith(f"{prefix(s)}:{m}:{c.cycle}:"):
            continue
        if data.level is not None and c.level < data.level:
            continue
        paused = is_paused(s, pol, m)
        c = checkpoint(c, at, pol, paused)
        c.acks = c.acks + (c.elapsed_ms,)
        schedule(c, pol, paused)  # (running: the state's own clock, changed where it is)
        if s.escalations:
            acknowledged(s, f"clock:{m}:{c.cycle}", data.by, at)


def _reselect(s: TicketState, ps: PolicySet, at: int, old: CompiledPolicy | None) -> None:
    """After the ticket's attributes changed: the policy that applies now (``old`` applied before), and the calendar
    it reads for this ticket (its group's, in its requester's zone)."""
    base = select_policy(s, ps)
    new = ps.effective(base.id, s.group, s.requester_timezone) if base is not None else None
    if new is old:
        return
    # Running clocks keep their elapsed time (measured on the old policy's calendar up to now) and take the new
    # targets and calendar from here on; thresholds already fired stay fired, any now overdue fire at once.
    checkpoint_all(s, at, old, s.status)
    s.policy_id = base.id if base else None
    reschedule_all(s, new)


# ---------------------------------------------------------------------------------------------------------------
# Policy changes


def rebase(s: TicketState, ps: PolicySet) -> None:
    """Adopt a different policy file (after a restart with a new policy): re-select and re-plan every clock, the
    agreements' too (an instance of an agreement the new file no longer has is dropped)."""
    if s.policy_version == ps.version:
        return
    s.next_hint = NOT_NOTED
    s.policy_version = ps.version
    base = select_policy(s, ps)
    s.policy_id = base.id if base else None
    reschedule_all(s, effective_policy(s, ps))
    if s.agreements:
        by_id = {a.id: a for a in ps.agreements}
        for key, inst in list(s.agreements.items()):
            ag = by_id.get(key.split("@", 1)[0])
            if ag is None:
                del s.agreements[key]
                continue
            sync_instance(inst, s)
            rebase(inst, ag.policies)


def replan_at(s: TicketState, at: int, old: PolicySet | None, new: PolicySet, cmds: list[Command]) -> None:
    """A policy version taking effect for the ticket at instant ``at`` (``s`` is owned by the caller and has acted
    on nothing after ``at``): the thresholds due strictly before ``at`` fire under ``old``, every running clock is
    checkpointed at ``at`` on ``old``'s calendar (elapsed time kept), then re-planned under ``new`` (thresholds
    fired stay fired; those now overdue fall due at ``at``). Without ``old`` (a version this process does not hold)
    the clocks are re-planned as after a restart with a new file (:func:`rebase`). The watermark moves to ``at``."""
    s.next_hint = NOT_NOTED
    if old is not None and s.policy_version == old.version and old.version != new.version:
        if old.agreements:
            _sync_instances(s, old)
        _fire_all_due(s, old, at, False, cmds)
        checkpoint_all(s, at, effective_policy(s, old), s.status)
        if s.agreements:
            by_id = {a.id: a for a in old.agreements}
            for key, inst in s.agreements.items():
                ag = by_id.get(key.split("@", 1)[0])
                if ag is not None and "left" not in inst.flags:
                    checkpoint_all(inst, at, effective_policy(inst, ag.policies), inst.status)
    elif old is not None and s.policy_version == old.version:
        if old.agreements:
            _sync_instances(s, old)
        _fire_all_due(s, old, at, False, cmds)
    rebase(s, new)
    s.watermark_ms = max(s.watermark_ms, at)


# ---------------------------------------------------------------------------------------------------------------
# Agreements beside the customer SLA
#
# Each instance of an agreement ("ola" per ticket, "ola@network" per group) is a TicketState of its own: the
# instance's policy, clocks and fired thresholds, with the ticket's attributes copied in whenever it is used. The
# SLA rules run on it unchanged, with the agreement's policies; only ids (``{ticket}:{instance}:...``), a subject
# tag and an ``agreement`` field on the outputs tell them apart. The customer SLA itself stays in the ticket's own
# fields, so a policy file without agreements produces exactly what it did before they existed.


def sync_instance(inst: TicketState, s: TicketState) -> None:
    """Copy the ticket's attributes into an agreement instance (its own policy, clocks and flags stay)."""
    inst.ticket_id, inst.created_ms, inst.priority, inst.status = s.ticket_id, s.created_ms, s.priority, s.status
    inst.requester_id, inst.requester_tier, inst.requester_timezone = (
        s.requester_id,
        s.requester_tier,
        s.requester_timezone,
    )
    inst.group, inst.assignee, inst.channel = s.group, s.assignee, s.channel
    inst.product, inst.category, inst.tags, inst.fields = s.product, s.category, s.tags, s.fields
    inst.reopen_count, inst.reassignment_count = s.reopen_count, s.reassignment_count
    inst.unanswered, inst.agent_replies, inst.rating = s.unanswered, s.agent_replies, s.rating
    inst.escalation_requested, inst.closed_ms, inst.last_event_ms = s.escalation_requested, s.closed_ms, s.last_event_ms


def _sync_instances(s: TicketState, ps: PolicySet) -> None:
    for inst in s.agreements.values():
        sync_instance(inst, s)


def _active(s: TicketState, ps: PolicySet) -> list[tuple[TicketState, PolicySet]]:
    """The agreement instances that run now, with their agreements' policies, in declaration order."""
    out: list[tuple[TicketState, PolicySet]] = []
    for ag in ps.agreements:
        key = ag.id if not ag.per_group else (f"{ag.id}@{s.group}" if s.group is not None else None)
        inst = s.agreements.get(key) if key is not None else None
        if inst is not None and "left" not in inst.flags:
            out.append((inst, ag.policies))
    return out


def _next_any(s: TicketState) -> int | None:
    best = next_at(s)
    if not s.agreements:
        return best
    for inst in s.agreements.values():
        t = next_at(inst)
        if t is not None and (best is None or t < best):
            best = t
    return best


def _fire_all_due(s: TicketState, ps: PolicySet, limit: int, inclusive: bool, cmds: list[Command]) -> int:
    """:func:`_fire_due` over the SLA and every running agreement instance, in time order (at one instant: the
    SLA first, then the agreements in declaration order). Returns the ticket's next threshold instant after them
    (``NO_THRESHOLD``: none), or ``NOT_NOTED`` when it has agreement instances (they are not all walked here)."""
    if not s.agreements:
        return _fire_due(s, ps, limit, inclusive, cmds)
    sets = [(s, ps), *_active(s, ps)]
    while True:
        chosen: tuple[TicketState, PolicySet] | None = None
        best = 0
        for t, tps in sets:
            nt = next_at(t)
            if nt is not None and (chosen is None or nt < best):
                chosen, best = (t, tps), nt
        if chosen is None or best > limit or (best == limit and not inclusive):
            return NOT_NOTED
        _fire_due(chosen[0], chosen[1], best, True, cmds)


def _agreements_event(
    s: TicketState, event: Event, at: int, ps: PolicySet, new: bool, group_before: str | None, cmds: list[Command]
) -> None:
    """Apply an event to every agreement: per-ticket instances follow the ticket; per-group instances start when
    the ticket enters a group and end (achieved, unless breached) when it leaves it; returning starts new cycles."""
    for ag in ps.agreements:
        aps = ag.policies
        if not ag.per_group:
            inst = s.agreements.get(ag.id)
            if inst is None:
                owned_agreements(s)[ag.id] = inst = _new_instance(s, ag.id, aps, at)
            elif not new:
                _mutate(inst, event, at, aps, cmds)
                sync_instance(inst, s)
            if aps.clock_rules:
                _evaluate_clocks(inst, aps, at, cmds)
            continue
        old = s.agreements.get(f"{ag.id}@{group_before}") if group_before is not None else None
        if old is not None and "left" in old.flags:
            old = None
        if old is not None and s.group == group_before and not new:
            _mutate(old, event, at, aps, cmds)
            sync_instance(old, s)
            if aps.clock_rules:
                _evaluate_clocks(old, aps, at, cmds)
            continue
        if old is not None:
            _leave(old, at, aps, cmds)
        if s.group is None:
            continue
        key = f"{ag.id}@{s.group}"
        inst = s.agreements.get(key)
        if inst is None:
            if len(s.agreements) >= MAX_INSTANCES:
                _drop_oldest_ended(s, cmds)
            owned_agreements(s)[key] = inst = _new_instance(s, key, aps, at)
        elif "left" in inst.flags:
            _return(inst, s, at, aps)
        if aps.clock_rules:
            _evaluate_clocks(inst, aps, at, cmds)


def _new_instance(s: TicketState, key: str, aps: PolicySet, at: int) -> TicketState:
    inst = TicketState(s.ticket_id, s.created_ms, instance=key, watermark_ms=at)
    sync_instance(inst, s)
    inst.policy_version = aps.version
    base = select_policy(inst, aps)
    inst.policy_id = base.id if base else None
    inst.clocks = _first_clocks(inst.status, at)
    reschedule_all(inst, effective_policy(inst, aps))
    return inst


def _leave(inst: TicketState, at: int, aps: PolicySet, cmds: list[Command]) -> None:
    """The ticket left the instance's group: its running clocks end, achieved unless already breached."""
    pol = effective_policy(inst, aps)
    for m in [c.metric for c in inst.clocks]:
        _end(inst, m, ACHIEVED, at, pol, cmds)
    inst.flags = _add_flag(inst.flags, "left")


def _return(inst: TicketState, s: TicketState, at: int, aps: PolicySet) -> None:
    """The ticket came back to the instance's group: the next cycle of its clocks starts."""
    inst.flags = tuple(f for f in inst.flags if f != "left")
    sync_instance(inst, s)
    base = select_policy(inst, aps)
    inst.policy_id = base.id if base else None
    pol = effective_policy(inst, aps)
    if inst.status not in _DONE:
        for m in ("first_response", "resolution"):
            start_cycle(inst, m, at, pol)
    reschedule_all(inst, pol)
    inst.watermark_ms = at


# ---------------------------------------------------------------------------------------------------------------
# Firing thresholds


def _fire_due(s: TicketState, ps: PolicySet, limit: int, inclusive: bool, cmds: list[Command]) -> int:
    """Fire every threshold due before ``limit`` (or at it, when ``inclusive``), earliest first; ties go in metric
    order, then plan order. Returns the next threshold instant left (``NO_THRESHOLD``: none)."""
    pol: CompiledPolicy | None = None
    order = ps.metric_order if ps.clock_rules else _METRIC_ORDER
    while True:
        chosen: Clock | None = None
        best = 0
        for c in s.clocks:
            t = c.next_at_ms
            if t == NO_THRESHOLD:
                continue
            if chosen is None or t < best or (t == best and order.get(c.metric, 99) < order.get(chosen.metric, 99)):
                chosen, best = c, t
        if chosen is None:
            return NO_THRESHOLD
        if best > limit or (best == limit and not inclusive):
            return best
        if pol is None:
            pol = effective_policy(s, ps)
        _fire(s, chosen, pol, ps, cmds)


def _fire(s: TicketState, c: Clock, pol: CompiledPolicy | None, ps: PolicySet, cmds: list[Command]) -> None:
    """Fire the clock's next threshold at its instant: a warning, the breach, a ladder step (or a repeat of the
    last one), or an acknowledgement that timed out (the next level up)."""
    assert pol is not None and c.next_at_ms != NO_THRESHOLD and c.next_key is not None
    at, key = c.next_at_ms, c.next_key
    paused = is_paused(s, pol, c.metric)
    # Accumulate open time up to the firing instant so later thresholds are planned from here.
    c = checkpoint(c, at, pol, paused)
    c.fired = c.fired + (key,)
    if key == "breach":
        c.breached_at_ms = at
    due = due_at(c, pol, paused)
    th = _threshold(pol, c.metric, key)
    if pol.catch_up_latest and th is not None and _superseded(c, th, pol):
        c.skipped = c.skipped + (key,)
        cmds.append(ThresholdSkipped(s.ticket_id, c.metric, c.cycle, key, at, pol.id))
    elif th is not None and th.kind == "follow":
        cmds.append(_follow_up(s, c, at, pol, ps))
        c.phase, c.ended_ms = ACHIEVED, at
    elif th is not None and th.kind != "esc":
        cmds.append(Emit(NOTIFICATIONS, s.ticket_id, None, _ThresholdNote(s.facts(), c, th, at, due, pol, ps.version)))
    else:
        _escalate_ladder(s, c, th, at, due, pol, ps, cmds)
    schedule(c, pol, paused)  # (a clock with a threshold due is the state's own: changed where it is)
    s.watermark_ms = max(s.watermark_ms, at)


def _superseded(c: Clock, th: Threshold, pol: CompiledPolicy) -> bool:
    """``catch_up: latest``: whether a later threshold of the same kind (a notification -- warning or breach -- or
    a ladder step) is due at this same instant, so that only that one is emitted. ``c`` is checkpointed at the
    instant: everything planned up to its elapsed time is due now (earlier instants have fired already)."""
    notice = th.kind != "esc"
    halted = bool(c.acks)
    after_self = False
    for other in pol.plans[c.metric]:
        if other.offset_ms > c.elapsed_ms:
            break
        if other is th:
            after_self = True
        elif after_self and (other.kind != "esc") == notice and not (halted and other.kind == "esc"):
            return True
    return False


def _follow_up(s: TicketState, c: Clock, at: int, pol: CompiledPolicy, ps: PolicySet) -> Emit:
    """The feedback request a policy's ``follow_up`` sends after the ticket was solved."""
    assert pol.follow_up is not None
    at_text = format_ms(at)
    f = s.facts()
    subject, body = follow_up_text(f)
    return notification(
        f"{prefix(s)}:{FOLLOW_UP}:{c.cycle}",
        s.ticket_id,
        at_text,
        ticket_id=s.ticket_id,
        kind="follow_up",
        recipients=recipients(f, pol.follow_up[1], pol),
        severity="info",
        subject=subject,
        body=body,
        policy_ref={"id": pol.id, "version": ps.version},
        cycle=c.cycle,
        agreement=agreement_ref(s.instance),
    )


def _threshold(pol: CompiledPolicy, metric: str, key: str) -> Threshold | None:
    """The planned threshold of ``key`` (``None`` for an acknowledgement timeout, ``ack<n>``)."""
    if key.startswith("ack"):
        return None
    for candidate in pol.plans[metric]:
        if candidate.key == key:
            return candidate
    return None


class _ThresholdNote(Deferred):
    """A warning or the breach: one notification, worded when first read from the facts taken when it fired."""

    def __init__(
        self, f: TicketFacts, c: Clock, th: Threshold, at: int, due: int | None, pol: CompiledPolicy, version: str
    ) -> None:
        self.f = f
        self.metric = c.metric
        self.cycle = c.cycle
        self.th = th
        self.at = at
        self.due = due
        self.pol = pol
        self.version = version

    def build(self) -> dict[str, Any]:
        f, th, pol, metric = self.f, self.th, self.pol, self.metric
        target = pol.targets[metric]
        at_text = format_ms(self.at)
        due_text = format_ms_or_none(self.due)
        if th.kind == "warn":
            kind, severity, notify = "sla_warning", "warning", pol.warn_notify
            subject, body = warning_text(f, metric, th.fraction, th.offset_ms, target, due_text)
        else:
            kind, severity, notify = "sla_breach", "high", pol.breach_notify
            subject, body = breach_text(f, metric, target, at_text)
        if f.instance is not None:
            subject = f"[{f.instance}] {subject}"
        return notification(
            f"{id_prefix(f.ticket_id, f.instance)}:{metric}:{self.cycle}:{th.key}",
            f.ticket_id,
            at_text,
            ticket_id=f.ticket_id,
            kind=kind,
            recipients=recipients(f, notify, pol),
            severity=severity,
            subject=subject,
            body=body,
            policy_ref={"id": pol.id, "version": self.version},
            metric=metric,
            cycle=self.cycle,
            due_at=due_text,
            agreement=agreement_ref(f.instance),
        ).event


def _escalate_ladder(
    s: TicketState,
    c: Clock,
    th: Threshold | None,
    at: int,
    due: int | None,
    pol: CompiledPolicy,
    ps: PolicySet,
    cmds: list[Command],
) -> None:
    """A ladder step, a repeat of the last step, or (``th`` is ``None``) an acknowledgement that timed out."""
    if th is not None:
        step = pol.steps[th.step]
    else:
        higher = [st for st in pol.steps if st.level > c.level]
        step = higher[0] if higher else pol.steps[-1]
    c.level = max(c.level, step.level)
    metric = c.metric
    target = pol.targets[metric]
    at_risk = c.breached_at_ms is None  # a step before the target (``after`` negative), or its ack timeout
    wording: Wording
    if at_risk:
        wording = AtRiskWording(metric, step.level, target, due, target - c.elapsed_ms)
    else:
        wording = LadderWording(
            metric, step.level, target, due, c.elapsed_ms - target, (pol.ack_timeout_ms or 0) if th is None else None
        )
    escalate(
        s,
        pol,
        ps,
        at,
        Escalation(
            f"{prefix(s)}:{metric}:{c.cycle}:{c.fired[-1]}",
            step.level,
            step.kind,
            "sla_at_risk" if at_risk else "sla_breach",
            metric,
            None,
            c.cycle,
            c.fired[-1],
            step.notify,
            due,
            pol.requester_updates,
            wording,
        ),
        cmds,
    )


# ---------------------------------------------------------------------------------------------------------------
# Triggers and matching


def _attribute(s: TicketState, name: str) -> str | None:
    """A matchable ticket attribute by its policy name (read natively, not through ``getattr``)."""
    if name == "priority":
        return s.priority
    if name == "status":
        return s.status
    if name == "group":
        return s.group
    if name == "requester_tier":
        return s.requester_tier
    if name == "channel":
        return s.channel
    if name == "product":
        return s.product
    if name == "category":
        return s.category
    value: str | None = getattr(s, name)
    return value


def _matches(m: Matcher, s: TicketState) -> bool:
    for name, allowed in m.attributes:
        if _attribute(s, name) not in allowed:
            return False
    tags_any = m.tags_any
    if tags_any is not None:  # loops, not ``isdisjoint``/``issubset``: no method looked up by name per event
        for tag in s.tags:
            if tag in tags_any:
                break
        else:
            return False
    tags_all = m.tags_all
    if tags_all is not None:
        have = s.tags
        for tag in tags_all:
            if not has_text(have, tag):
                return False
    for name, values in m.fields:
        if name not in s.fields or s.fields[name] not in values:
            return False
    return True


def _holds(c: Condition, s: TicketState) -> bool:
    if not c.matcher.empty and not _matches(c.matcher, s):
        return False
    if c.unanswered_at_least is not None and s.unanswered < c.unanswered_at_least:
        return False
    if c.reopen_count_at_least is not None and s.reopen_count < c.reopen_count_at_least:
        return False
    if c.reassignment_count_at_least is not None and s.reassignment_count < c.reassignment_count_at_least:
        return False
    if c.rating_at_most is not None and (s.rating is None or s.rating > c.rating_at_most):
        return False
    if c.assignee_set is not None and (s.assignee is not None) != c.assignee_set:
        return False
    if c.group_set is not None and (s.group is not None) != c.group_set:
        return False
    return c.escalation_requested is None or s.escalation_requested == c.escalation_requested


def _changes(kind: int) -> int:
    """What an event of the kind can change of what triggers read (``READS_*`` bits): what :func:`_mutate` changes
    for it (nothing else an event does changes these). A ``ticket.created`` of a known ticket, and any other kind:
    everything."""
    if kind == KIND_COMMENTED:
        return READS_UNANSWERED
    if kind == KIND_STATUS_CHANGED:  # the status; a reopen; solved or closed clears an escalation request
        return READS_ATTRIBUTES | READS_REOPENS | READS_REQUESTED
    if kind == KIND_UPDATED:  # attributes, tags, fields, the group (and the reassignments), the assignee
        return READS_ATTRIBUTES
    if kind == KIND_RATED:
        return READS_RATING
    if kind in (KIND_ESCALATION_REQUESTED, KIND_ESCALATION_ACKNOWLEDGED):
        return READS_REQUESTED
    return READS_ALL


def _evaluate_triggers(s: TicketState, ps: PolicySet, at: int, cmds: list[Command], changed: int) -> None:
    """Test the triggers that read something in ``changed`` (``READS_*`` bits; each other one holds as it did when
    last tested, which ``triggers_on`` records): a trigger fires when its condition becomes true, and re-arms when
    it becomes false."""
    on = s.triggers_on
    for trig in ps.triggers:
        if not trig.reads & changed:
            continue
        holds = _holds(trig.when, s)
        active = has_text(on, trig.id)
        if holds and not active:
            pol = effective_policy(s, ps)  # looked up only when a trigger acts (most events change none)
            n = s.trigger_fires.get(trig.id, 0) + 1
            fires = dict(s.trigger_fires)
            fires[trig.id] = n
            s.trigger_fires = fires
            on = on + (trig.id,)
            requester_update = (
                trig.requester_update
                if trig.requester_update is not None
                else (pol.requester_updates if pol else False)
            )
            escalate(
                s,
                pol,
                ps,
                at,
                Escalation(
                    f"{s.ticket_id}:trigger:{trig.id}:{n}",
                    trig.level,
                    trig.kind,
                    trig.reason,
                    None,
                    trig.id,
                    n,
                    "trigger",
                    trig.notify,
                    None,
                    requester_update,
                    TriggerWording(trig.level, trig.id, trig.kind, trig.reason),
                ),
                cmds,
            )
        elif not holds and active:
            on = tuple(t for t in on if t != trig.id)
            if s.escalations:
                resolve(s, effective_policy(s, ps), at, cmds, "trigger_cleared", cause_is(f"trigger:{trig.id}"))
    s.triggers_on = on


def _add_flag(flags: tuple[str, ...], flag: str) -> tuple[str, ...]:
    return flags if has_text(flags, flag) else flags + (flag,)
