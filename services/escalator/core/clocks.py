"""Clock arithmetic: how a metric's clock accumulates open time and when its next threshold falls due.

A :class:`~escalator.core.state.Clock` is one cycle of one metric, owned by one ticket state (``TicketState.clone``
copies the clocks): the functions here change it in place -- the engine works on a state it owns, a copy in
copy-on-write mode, so a caller's state is never altered.
"""

from __future__ import annotations

from typing import Final

from .plan import CompiledPolicy
from .state import NO_THRESHOLD, RUNNING, Clock, TicketState, has_text
from .vocabulary import DEFAULT_PAUSE_ON

__all__ = [
    "checkpoint",
    "checkpoint_all",
    "due_at",
    "is_paused",
    "next_at",
    "next_of",
    "paused_in",
    "reschedule_all",
    "reschedule_paused",
    "running",
    "schedule",
    "start_cycle",
]

_DEFAULT_PAUSE: Final = frozenset(DEFAULT_PAUSE_ON)


def running(s: TicketState, metric: str) -> bool:
    c = s.clock(metric)
    return c is not None and c.phase == RUNNING


def paused_in(status: str, pol: CompiledPolicy | None, metric: str) -> bool:
    """Whether ``metric``'s clock is paused in ``status``: the metric's own ``pause_on`` if the file gives one, else
    the policy's."""
    if pol is None:
        return status in _DEFAULT_PAUSE
    if pol.metric_pause:
        own = pol.metric_pause.get(metric)
        if own is not None:
            return status in own
    return status in pol.pause_on


def is_paused(s: TicketState, pol: CompiledPolicy | None, metric: str) -> bool:
    return paused_in(s.status, pol, metric)


def checkpoint(c: Clock, at: int, pol: CompiledPolicy | None, paused: bool) -> Clock:
    """Accumulate a running clock's open time up to ``at`` (in place; returns ``c``)."""
    if at > c.mark_ms:
        if not paused and pol is not None:
            c.elapsed_ms += pol.calendar.elapsed_ms(c.mark_ms, at)
        elif not paused:
            c.elapsed_ms += at - c.mark_ms
        c.mark_ms = at
    return c


def checkpoint_all(s: TicketState, at: int, pol: CompiledPolicy | None, status: str) -> None:
    """Every running clock's open time up to ``at``, each paused or not as it was in ``status``."""
    clocks = s.clocks
    per_metric = pol is not None and bool(pol.metric_pause)
    paused = paused_in(status, pol, "")
    for c in clocks:
        if c.phase == RUNNING and at > c.mark_ms:
            checkpoint(c, at, pol, paused_in(status, pol, c.metric) if per_metric else paused)


def start_cycle(s: TicketState, metric: str, at: int, pol: CompiledPolicy | None) -> None:
    prev = s.clock(metric)
    cycle = prev.cycle + 1 if prev is not None else 1
    s.put_clock(schedule(Clock(metric, cycle, RUNNING, at, 0, at), pol, is_paused(s, pol, metric)))


def reschedule_all(s: TicketState, pol: CompiledPolicy | None) -> None:
    clocks = s.clocks
    per_metric = pol is not None and bool(pol.metric_pause)
    paused = paused_in(s.status, pol, "")
    for c in clocks:
        if c.planned():
            c.next_at_ms, c.next_key = next_of(c, pol, paused_in(s.status, pol, c.metric) if per_metric else paused)


def reschedule_paused(s: TicketState, pol: CompiledPolicy | None, old_status: str, at: int) -> None:
    """:func:`reschedule_all` after a status change at ``at`` that neither ends nor reopens the ticket, once every
    running clock was checkpointed at ``at``. A clock running unpaused before and after keeps its next threshold:
    with ``d`` the open time it had left from its mark ``m``, the threshold is the earliest ``t`` with
    ``elapsed(m, t) == d``; as ``elapsed(m, t) == elapsed(m, at) + elapsed(at, t)``, that is still the earliest
    ``t >= at`` with ``elapsed(at, t) == d - elapsed(m, at)`` -- what a re-plan from the checkpoint finds -- as
    long as it was not before ``at`` (thresholds before ``at`` fired before the event). The clocks the change
    pauses or resumes are re-planned."""
    status = s.status
    for c in s.clocks:
        if not c.planned():
            continue
        paused = paused_in(status, pol, c.metric)
        if (
            not paused
            and c.phase == RUNNING
            and not paused_in(old_status, pol, c.metric)
            and (c.next_at_ms == NO_THRESHOLD or c.next_at_ms >= at)
        ):
            continue
        c.next_at_ms, c.next_key = next_of(c, pol, paused)


def schedule(c: Clock, pol: CompiledPolicy | None, paused: bool) -> Clock:
    """Set the cached next threshold instant of ``c`` (in place; returns ``c``)."""
    c.next_at_ms, c.next_key = next_of(c, pol, paused)
    return c


def next_of(c: Clock, pol: CompiledPolicy | None, paused: bool) -> tuple[int, str | None]:
    """The next threshold of ``c`` as (instant, key): its next unfired planned threshold or acknowledgement timeout
    (the earlier, by open time); the instant is ``NO_THRESHOLD`` while paused (and when there is none, with no
    key)."""
    if c.phase != RUNNING or pol is None:
        return NO_THRESHOLD, None
    plan = pol.plans.get(c.metric)
    if plan is None:
        return NO_THRESHOLD, None
    offset = 0
    key: str | None = None
    halted = bool(c.acks)
    fired = c.fired
    for th in plan:
        if has_text(fired, th.key) or (halted and th.kind == "esc"):
            continue
        offset, key = th.offset_ms, th.key
        break
    if pol.ack_timeout_ms is not None:
        acks = c.acks
        for i in range(len(acks)):  # (an index loop: ``enumerate`` is looked up among the builtins at each call)
            ack_key = f"ack{i + 1}"
            if has_text(fired, ack_key):
                continue
            ack_offset = acks[i] + pol.ack_timeout_ms
            if key is None or ack_offset < offset:
                offset, key = ack_offset, ack_key
            break
    if key is None:
        return NO_THRESHOLD, None
    if offset <= c.elapsed_ms:
        return c.mark_ms, key
    if paused:
        return NO_THRESHOLD, key
    return pol.calendar.add_open_ms(c.mark_ms, offset - c.elapsed_ms), key


def due_at(c: Clock, pol: CompiledPolicy | None, paused: bool) -> int | None:
    """When the clock's target was (or, running at full speed from now, will be) reached."""
    if c.breached_at_ms is not None:
        return c.breached_at_ms
    if pol is None or c.metric not in pol.targets or c.phase != RUNNING or paused:
        return None
    target = pol.targets[c.metric]
    if target <= c.elapsed_ms:
        return c.mark_ms
    return pol.calendar.add_open_ms(c.mark_ms, target - c.elapsed_ms)


def next_at(s: TicketState) -> int | None:
    """The earliest cached next-threshold instant of the ticket's clocks."""
    best: int | None = None
    for c in s.clocks:
        t = c.next_at_ms
        if t != NO_THRESHOLD and (best is None or t < best):
            best = t
    return best
