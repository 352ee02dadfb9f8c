"""The what-if simulator: the pure core driven by *event time* over recorded ticket events.

The live service applies each event as it arrives and fires thresholds when its wall clock passes them. The
simulator does the same with a logical clock that jumps from event to event: before the event at instant ``t`` is
applied, every ticket's thresholds strictly before ``t`` fire, each at its own logical instant, in time order across
tickets (ties: by ticket id, then in the order the core fires them). The core itself fires a ticket's own thresholds
before ``t`` inside :func:`~escalator.core.apply`, and the thresholds at exactly ``t`` after the event (a reply at
exactly the deadline meets it). At the end the clock moves to ``until_ms`` (default: the latest event time seen)
and every threshold at or before it fires.

Because the core moves a ticket's watermark only through the events and thresholds of that ticket, the outputs of
a ticket do not depend on how the wall clock was chopped up between its events: the simulator's outputs are exactly
those of the live service for the same input (ids and bytes, :func:`~escalator.core.encode_event`). That makes
:func:`simulate` the test oracle of the Kafka service.

Deadlines live in one heap of ``(next_deadline, ticket_id)``; a ticket is re-armed only when its next deadline
changes and superseded entries are skipped when popped. Incident signals (windows keyed by
:func:`~escalator.core.window_key`) and input ``incident.resolved`` events (to their incident's window, never to a
ticket) are held like the live incident partition holds them: once an instant is complete -- the first event of a
later instant, :meth:`Simulator.advance_to` or the end -- they go to :func:`~escalator.core.observe` and
:func:`~escalator.core.request_resolution` in ``(time, ticket)`` order (at one instant the resolutions first, in
arrival order, then the creations by ticket id), whatever order the events of the instant arrived in: which
creation trips a detection, and so the incident's tickets and members, must not depend on the arrival order
(live, creations of one instant reach the window from several partitions). The incident's outputs therefore follow
the last event of the instant in the command stream. A signal at or before the complete instant (a late creation)
is observed as it arrives, as the live partition releases a signal its watermark has already passed. Windows of
open incidents are settled (:func:`~escalator.core.settle`) up to just before each event's instant and, at the
end, up to the end, after the held input up to there: what the live incident partition does as its watermark
passes the same instants.

Events whose time goes backwards are applied all the same, in arrival order (the core applies a late event at its
ticket's watermark). The logical clock is the time of the event being applied: a late event moves nothing forward
(deadlines before later event times have already fired) -- exactly a live service whose timer has advanced every
ticket to just before each event as it arrives. Out-of-order input is therefore simulated as *late arrivals*; the
importers write events in time order, which is what a live service would have received.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..core import (
    Command,
    DecodeError,
    Emit,
    Event,
    IncidentResolve,
    IncidentSignal,
    IncidentWindow,
    PolicySet,
    TicketState,
    decode_record,
    next_due,
    observe,
    request_resolution,
    resolution_of,
    settle,
    window_key,
)
from ..core.versions import PolicyVersions, advance_versioned, apply_versioned, next_deadline_versioned

__all__ = [
    "Reject",
    "Simulator",
    "emitted",
    "simulate",
    "simulate_lines",
    "undecodable",
]


_NEVER = -(2**62)


@dataclass(frozen=True, slots=True)
class Reject:
    """An input line that is not a valid v1 ticket event. ``reason`` is a :class:`DecodeError` reason, or
    ``undecodable`` when the decoder itself failed on the line (e.g. a ``type`` that is a JSON array)."""

    line: int
    reason: str
    detail: str
    event_id: str | None = None


def undecodable(line: int, exc: Exception) -> Reject:
    return Reject(line, "undecodable", f"the decoder failed: {type(exc).__name__}: {exc}")


class Simulator:
    """Event-time driver of the core. Feed it events in arrival order, then call :meth:`finish`.

    ``tickets`` holds every ticket's state and ``windows`` the incident windows; both may be read at any time
    (for instance by a summary at the end). The simulator owns its states and updates them in place (the core's
    ``in_place`` mode, same outputs, no copies): copy a state (``TicketState.clone``) to keep it as it was.
    ``until_ms`` bounds the run: events after it are not applied (they are counted in ``events_after_until``) and
    :meth:`finish` advances to it.
    """

    __slots__ = (
        "_armed",
        "_complete_ms",
        "_heap",
        "_held",
        "_incidents",
        "_seq",
        "_timed",
        "events_after_until",
        "latest_ms",
        "policy",
        "tickets",
        "until_ms",
        "versions",
        "windows",
    )

    def __init__(self, policy: PolicySet | PolicyVersions, until_ms: int | None = None) -> None:
        versions = policy if isinstance(policy, PolicyVersions) else PolicyVersions.of(policy)
        self.versions = versions  # with --policy-change: the files in force from their instants
        self.policy = versions.base.policies
        self.until_ms = until_ms
        self.tickets: dict[str, TicketState] = {}
        self.windows: dict[str, IncidentWindow] = {}
        self._armed: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._incidents = any(v.policies.incidents for v in versions.entries)
        self._timed: dict[str, int] = {}  # windows of open incidents: when they next have something to do
        # Incident input not observed yet, as the live incident partition holds it: (time, ticket -- "" for an
        # input incident.resolved --, rule, group value, arrival number, the signal or request)
        self._held: list[tuple[int, str, str, str, int, IncidentSignal | IncidentResolve]] = []
        self._complete_ms = _NEVER  # every event up to this instant is applied: held input up to it is released
        self._seq = 0
        self.latest_ms: int | None = None  # the latest event time applied
        self.events_after_until = 0

    def feed(self, event: Event) -> list[Command]:
        """Fire every deadline before the event's time (all tickets, in time order), then apply the event."""
        now = event.time_ms
        until = self.until_ms
        if until is not None and now > until:
            self.events_after_until += 1
            return []
        out: list[Command] = []
        if now > self._complete_ms + 1:
            self._complete_ms = now - 1  # the instants before this event's are complete
            if self._held:
                self._release(out)
        heap = self._heap
        if heap and heap[0][0] < now:
            self._fire_until(now, False, out)
        if self._timed:
            self._settle(now - 1, out)
        if event.type == "incident.resolved":  # no ticket's event: its incident's window takes it
            out.extend(self._resolution(event))
            if self.latest_ms is None or now > self.latest_ms:
                self.latest_ms = now
            return out
        tid = event.ticket_id
        tickets = self.tickets
        versions = self.versions
        state, cmds = apply_versioned(tickets.get(tid), event, versions, in_place=True)  # it owns its states
        tickets[tid] = state
        nd = next_deadline_versioned(state, versions)
        armed = self._armed
        if nd is None:
            armed.pop(tid, None)
        elif armed.get(tid) != nd:
            armed[tid] = nd
            heapq.heappush(heap, (nd, tid))
        if self._incidents and event.type == "ticket.created":  # only a creation is counted by incident rules
            cmds = self._route_incidents(cmds)
        if out:
            out.extend(cmds)
        else:
            out = cmds
        latest = self.latest_ms
        if latest is None or now > latest:
            self.latest_ms = now
        return out

    def advance_to(self, now_ms: int) -> list[Command]:
        """Fire every deadline at or before ``now_ms`` (what a live timer tick at ``now_ms`` would do). The instants
        up to ``now_ms`` are complete: their held incident input is observed first, and an event fed later at or
        before ``now_ms`` is a late one."""
        out: list[Command] = []
        if now_ms > self._complete_ms:
            self._complete_ms = now_ms
            if self._held:
                self._release(out)
        self._fire_until(now_ms, True, out)
        if self._timed:
            self._settle(now_ms, out)
        return out

    def finish(self) -> list[Command]:
        """End the run: advance to ``until_ms`` (default: the latest event time applied)."""
        end = self.until_ms if self.until_ms is not None else self.latest_ms
        if end is None:
            return []
        return self.advance_to(end)

    @property
    def end_ms(self) -> int | None:
        """The instant the run ends at (``until_ms``, else the latest event time applied)."""
        return self.until_ms if self.until_ms is not None else self.latest_ms

    def _fire_until(self, limit: int, inclusive: bool, out: list[Command]) -> None:
        heap = self._heap
        armed = self._armed
        tickets = self.tickets
        versions = self.versions
        while heap:
            due, tid = heap[0]
            if due > limit or (due == limit and not inclusive):
                return
            heapq.heappop(heap)
            if armed.get(tid) != due:
                continue  # superseded by a later re-arm
            state, cmds = advance_versioned(tickets[tid], due, versions, in_place=True)
            tickets[tid] = state
            nd = next_deadline_versioned(state, versions)
            if nd is None:
                del armed[tid]
            else:
                armed[tid] = nd
                heapq.heappush(heap, (nd, tid))
            out.extend(cmds)  # thresholds never signal incidents (only a ticket.created does)

    def _route_incidents(self, cmds: list[Command]) -> list[Command]:
        for c in cmds:
            if type(c) is IncidentSignal:
                break
        else:
            return cmds
        out: list[Command] = []
        for c in cmds:
            out.append(c)
            if type(c) is IncidentSignal:
                assert isinstance(c, IncidentSignal)
                self._hold(c.time_ms, c.ticket_id, c)
        self._release(out)
        return out

    def _hold(self, time_ms: int, ticket: str, item: IncidentSignal | IncidentResolve) -> None:
        self._seq += 1
        heapq.heappush(self._held, (time_ms, ticket, item.rule_id, item.group_value, self._seq, item))

    def _release(self, out: list[Command]) -> None:
        """Observe the held incident input up to the complete instant in (time, ticket) order -- an input
        ``incident.resolved`` first, then the creations by ticket id, whatever order they arrived in: the order of
        the live incident partition, which releases them so as its watermark passes them."""
        held = self._held
        windows = self.windows
        versions = self.versions
        while held and held[0][0] <= self._complete_ms:
            item = heapq.heappop(held)[5]
            key = window_key(item.rule_id, item.group_value)
            if type(item) is IncidentSignal:
                assert isinstance(item, IncidentSignal)
                policy = versions.for_new(item.time_ms)
                window, emits = observe(windows.get(key), item, policy)
                out.extend(emits)
            else:
                assert isinstance(item, IncidentResolve)
                policy = versions.for_new(item.time_ms)
                new, cmds = request_resolution(windows.get(key), item, policy)
                out.extend(cmds)
                if new is None:
                    continue
                window = new
            windows[key] = window
            self._time(key, window, policy)

    def _resolution(self, event: Event) -> list[Command]:
        req = resolution_of(event, self.versions.for_new(event.time_ms))
        if type(req) is not IncidentResolve:
            return [req]
        assert isinstance(req, IncidentResolve)
        out: list[Command] = [req]
        self._hold(req.time_ms, "", req)
        self._release(out)
        return out

    def _time(self, key: str, window: IncidentWindow, policy: PolicySet) -> None:
        due = next_due(window, policy)
        if due is None:
            self._timed.pop(key, None)
        else:
            self._timed[key] = due

    def _settle(self, until_ms: int, out: list[Command]) -> None:
        """Settle the windows of open incidents up to ``until_ms`` (in window key order, like the live partition)."""
        policy = self.versions.for_new(until_ms)
        for key in sorted(k for k, due in self._timed.items() if due <= until_ms):
            window, emits = settle(self.windows[key], until_ms, policy)
            self.windows[key] = window
            self._time(key, window, policy)
            out.extend(emits)


def simulate(
    events: Iterable[Event], policy: PolicySet | PolicyVersions, until_ms: int | None = None
) -> Iterator[Command]:
    """Every command the core produces for ``events`` (in arrival order) under ``policy``, in event time.

    The :class:`~escalator.core.Emit` commands are what the live service publishes for the same input;
    ``encode_event(emit.event)`` gives the exact bytes. Events after ``until_ms`` are not applied.
    """
    sim = Simulator(policy, until_ms)
    for event in events:
        yield from sim.feed(event)
    yield from sim.finish()


def simulate_lines(
    lines: Iterable[tuple[int, bytes]], policy: PolicySet | PolicyVersions, until_ms: int | None = None
) -> Iterator[Command | Reject]:
    """:func:`simulate` over raw JSON Lines ``(line_number, bytes)``; lines that do not decode yield a
    :class:`Reject` (in place, with the line number and the :class:`DecodeError` reason) and the run goes on."""
    sim = Simulator(policy, until_ms)
    for number, raw in lines:
        try:
            event = decode_record(raw)
        except DecodeError as exc:
            yield Reject(number, exc.reason, exc.detail, exc.event_id)
            continue
        except Exception as exc:  # the decoder failed on input it should have rejected: still only a bad line
            yield undecodable(number, exc)
            continue
        yield from sim.feed(event)
    yield from sim.finish()


def emitted(commands: Iterable[Command | Reject]) -> Iterator[Emit]:
    """Only the :class:`~escalator.core.Emit` commands (what gets published)."""
    for c in commands:
        if type(c) is Emit:
            yield c
