"""The tickets of one input partition: their states (a partition store), the deadline heap and the gauges.

Batches go through three steps, and several batches may be between the first and the last (the runtime produces
a batch's state changes only once its outputs are delivered, and writes the store only once those changes are in
the changelog):

1. :meth:`TicketPartition.apply` for each event and :meth:`fire_due` for due deadlines change tickets in an
   *overlay* of decoded states (a ticket is decoded from the store once, however many events and batches touch it
   while it is in the overlay);
2. :meth:`snapshot` ends a batch: each ticket it changed becomes a store value (header + row), the gauges follow;
3. :meth:`stored` writes a snapshot to the store once its changelog records are in place, and lets the overlay
   forget tickets no later snapshot changed. :meth:`discard` forgets everything not stored.

The heap holds ``(wake_ms, ticket)``; a ticket's *wake* is its next SLA threshold plus the allowed lateness, or
the instant its closed state may be purged, whichever comes first. An entry is current only while it equals the
ticket's wake (overlay first, else the stored header), so re-arming pushes a new entry and never searches for the
old one; superseded entries are skipped when they surface and dropped when they pile up.

A deadline fires at its logical instant: ``advance(state, limit)`` where ``limit`` (from the runtime) is the
latest instant up to which every event of this partition is known to be applied. Pure: time comes in as
arguments.
"""

from __future__ import annotations

import heapq
from collections import Counter

import orjson

from ..core import Command, Event, PolicySet, TicketState
from ..core.state import STATE_FIELDS
from ..core.timeline import TIMELINE_KEPT, record
from ..core.versions import PolicyVersions, advance_versioned, apply_versioned, next_deadline_versioned
from ..core.vocabulary import DONE_STATUSES
from .codec import HEADER_SIZE, NO_INSTANT, TicketHeader, decode_ticket, encode_ticket, ticket_header
from .gauges import PartitionGauges
from .store import Checkpoint, PartitionStore

__all__ = ["TicketPartition"]

_COMPACT_SLACK = 1024
_MISSING = object()
_VERSION_AT = 1 + STATE_FIELDS.index("policy_version")  # in a stored row (after its format number)


class TicketPartition:
    def __init__(
        self,
        partition: int,
        store: PartitionStore,
        policy: PolicySet | PolicyVersions,
        *,
        lateness_ms: int,
        retention_ms: int,
        timeline: int = TIMELINE_KEPT,
    ) -> None:
        self.partition = partition
        self.store = store
        self.versions = policy if isinstance(policy, PolicyVersions) else PolicyVersions.of(policy)
        self.switches: list[int] = []  # effective instants of versions every open ticket must be re-planned at
        self.open_by_version: Counter[str] = Counter()  # open tickets per policy version they are on
        self._version_of: dict[str, str | None] = {}  # overlay tickets: the version counted for them (open only)
        self.lateness_ms = lateness_ms
        self.retention_ms = retention_ms
        self.timeline = timeline  # entries of each ticket's timeline kept with its state (0: none)
        self.heap: list[tuple[int, str]] = []
        self.gauges = PartitionGauges()
        self.applied_max_ms: int | None = None  # the newest event time applied on this partition
        self.purged = 0
        self._states: dict[str, TicketState | None] = {}  # the overlay (None: unknown or purged)
        self._headers: dict[str, TicketHeader | None] = {}  # overlay tickets: header of their latest snapshot
        self._next: dict[str, tuple[int, int]] = {}  # overlay tickets: (wake, deadline) of the latest state
        self._dirty: set[str] = set()  # changed since the last snapshot
        self._unsettled: set[str] = set()  # changed since their wake was last computed
        self._popped: set[str] = set()  # tickets whose heap entry fire_due took out since their last settle
        self._snapshot_of: dict[str, int] = {}  # overlay tickets: the latest snapshot that holds them
        self._loaded: set[str] = set()  # loaded into the overlay since the last snapshot
        self._pending: list[tuple[int, list[tuple[str, bytes | None]]]] = []  # snapshots not stored yet
        self._seq = 0

    # -- state ------------------------------------------------------------------------------------------------
    def rebuild(self) -> int:
        """Rebuild the heap and gauges by streaming the store (after a recovery); returns the tickets held."""
        heap: list[tuple[int, str]] = []
        gauges = PartitionGauges()
        for key, value in self.store.items():
            h = ticket_header(value)
            gauges.add(h)
            if h.wake_ms != NO_INSTANT:
                heap.append((h.wake_ms, key))
        heapq.heapify(heap)
        self.heap = heap
        self.gauges = gauges
        self.count_versions()
        return gauges.tickets

    def count_versions(self) -> None:
        """Count the open tickets per policy version. With one version held, every open ticket is counted for it
        (a ticket stamped with an older file is re-planned under it when next touched) and nothing is read; with
        several, each open ticket's stored row is parsed (not decoded into a state)."""
        counts: Counter[str] = Counter()
        overlay = self._states
        self._version_of = {tid: self._counted_version(st) for tid, st in overlay.items()}
        single = self.versions.single
        if single is not None:
            counts[single.version] = sum(self.gauges.open_counts().values())
        else:
            for key, value in self.store.items():
                if key not in overlay and ticket_header(value).is_open:
                    counts[str(orjson.loads(memoryview(value)[HEADER_SIZE:])[_VERSION_AT])] += 1
            for version in self._version_of.values():
                if version is not None:
                    counts[version] += 1
        self.open_by_version = counts

    def set_versions(self, versions: PolicyVersions, switches: list[int]) -> None:
        """Hold other policy versions from now on; ``switches``: effective instants at which every open ticket
        must be looked at (versions for open tickets)."""
        recount = self.versions.single is not None and versions.single is None
        self.versions = versions
        self.switches = sorted({*self.switches, *switches})
        if recount:
            self.count_versions()

    def stored_state(self, ticket: str) -> TicketState | None:
        """The ticket's state as stored (written batches only); safe to call from another thread."""
        raw = self.store.get(ticket)
        return None if raw is None else decode_ticket(raw)

    def state_of(self, ticket: str) -> TicketState | None:
        """The ticket's latest state, batches in flight included; safe to call from another thread (overlay
        states are replaced, never changed in place)."""
        state = self._states.get(ticket, _MISSING)
        if state is not _MISSING:
            return state  # type: ignore[return-value]
        return self.stored_state(ticket)

    def priority_of(self, ticket: str) -> str:
        """The priority of a ticket in the overlay (a metrics label), ``none`` if unknown."""
        state = self._states.get(ticket)
        return "none" if state is None else state.priority

    def _load(self, ticket: str) -> TicketState | None:
        states = self._states
        if ticket in states:
            return states[ticket]
        raw = self.store.get(ticket)
        if raw is None:
            state = None
            self._headers[ticket] = None
            self._next[ticket] = (NO_INSTANT, NO_INSTANT)
        else:
            state = decode_ticket(raw)
            h = ticket_header(raw)
            self._headers[ticket] = h
            self._version_of[ticket] = self._counted_version(state)
            self._next[ticket] = (h.wake_ms, h.deadline_ms)
        states[ticket] = state
        self._loaded.add(ticket)
        return state

    def _changed(self, ticket: str, state: TicketState | None) -> None:
        self._states[ticket] = state
        self._dirty.add(ticket)
        self._unsettled.add(ticket)

    # -- a batch ------------------------------------------------------------------------------------------------
    def apply(self, event: Event) -> list[Command]:
        """Apply one event (copy-on-write: if the core raises, the ticket's state is as it was)."""
        tid = event.ticket_id
        state = self._load(tid)
        new, cmds = apply_versioned(state, event, self.versions)
        if new is not state:
            record(new, event, cmds, self.timeline)  # ``new`` is a copy: the timeline kept with the state
            self._changed(tid, new)
        t = event.time_ms
        if self.applied_max_ms is None or t > self.applied_max_ms:
            self.applied_max_ms = t
        return cmds

    def saw(self, time_ms: int) -> None:
        """An input event of this partition that is no ticket's (``incident.resolved``) was read."""
        if self.applied_max_ms is None or time_ms > self.applied_max_ms:
            self.applied_max_ms = time_ms

    def next_wake(self) -> int | None:
        """The earliest wake instant armed (superseded entries dropped on the way)."""
        self._settle()
        heap = self.heap
        switch = self.switches[0] + self.lateness_ms if self.switches else None
        while heap:
            wake, tid = heap[0]
            if self._current(tid)[0] == wake:
                return wake if switch is None else min(wake, switch)
            heapq.heappop(heap)
        return switch

    def next_deadline_due(self, now_ms: int) -> int | None:
        """The SLA instant of the earliest due deadline entry (``wake <= now``), ``None`` if none is due or the
        earliest due entry is a purge. The runtime uses it to decide whether the partition's backlog must be
        checked before firing."""
        wake = self.next_wake()
        if wake is None or wake > now_ms:
            return None
        if self.switches and self.switches[0] + self.lateness_ms == wake:
            return self.switches[0]
        _wake, deadline = self._current(self.heap[0][1])
        if deadline != NO_INSTANT and deadline + self.lateness_ms == wake:
            return deadline
        return None

    def fire_due(self, limit_ms: int, now_ms: int) -> list[Command]:
        """Fire every due deadline whose SLA instant is ``<= limit_ms`` (and purge closed tickets whose retention
        ended by ``now_ms``). Stops at the first deadline beyond ``limit_ms``: the partition's backlog may still hold
        events older than it."""
        self._settle()
        heap = self.heap
        out: list[Command] = []
        rearm: list[str] = []
        fired: set[str] = set()
        versions = self.versions
        switches = self.switches
        while switches and switches[0] + self.lateness_ms <= now_ms and switches[0] <= limit_ms:
            self._switch_all(switches.pop(0), limit_ms, out, rearm, fired)
        while heap and heap[0][0] <= now_ms:
            wake, tid = heap[0]
            current, deadline = self._current(tid)
            if current != wake or tid in fired:
                heapq.heappop(heap)
                continue
            is_deadline = deadline != NO_INSTANT and deadline + self.lateness_ms == wake
            if is_deadline and deadline > limit_ms:
                break
            heapq.heappop(heap)
            self._popped.add(tid)
            fired.add(tid)
            state = self._load(tid)
            if state is None:
                continue
            if state.closed_ms is not None and now_ms >= state.closed_ms + self.retention_ms:
                self._changed(tid, None)
                self.purged += 1
                continue
            new, cmds = advance_versioned(state, limit_ms, versions)
            if cmds and new is not state:
                record(new, None, cmds, self.timeline)
            out.extend(cmds)
            self._changed(tid, new)
            rearm.append(tid)
        for tid in rearm:  # pushed after the loop: a ticket is fired at most once per call
            self._settle_one(tid)
        return out

    def _switch_all(self, at_ms: int, limit_ms: int, out: list[Command], rearm: list[str], fired: set[str]) -> None:
        """A version for open tickets takes effect at ``at_ms``: every open ticket whose next instant to act on (its
        next threshold or that switch) is due by ``limit_ms`` is advanced, whatever its heap entry says."""
        versions = self.versions
        tickets = [tid for tid, value in self.store.items() if ticket_header(value).is_open]
        tickets.extend(t for t, st in list(self._states.items()) if st is not None and st.status not in DONE_STATUSES)
        for tid in dict.fromkeys(tickets):
            if tid in fired:
                continue
            state = self._load(tid)
            if state is None:
                continue
            due = next_deadline_versioned(state, versions)
            if due is None or due > limit_ms:
                continue
            new, cmds = advance_versioned(state, limit_ms, versions)
            if cmds and new is not state:
                record(new, None, cmds, self.timeline)
            out.extend(cmds)
            self._changed(tid, new)
            fired.add(tid)
            rearm.append(tid)

    def snapshot(self) -> tuple[int, list[tuple[str, bytes | None]]]:
        """End a batch: the store values of the tickets it changed (``None``: deleted), under a new snapshot
        number. The gauges follow the new values now; the store follows at :meth:`stored`."""
        self._settle()
        self._seq += 1
        seq = self._seq
        out: list[tuple[str, bytes | None]] = []
        gauges = self.gauges
        headers = self._headers
        for tid in self._dirty:
            state = self._states[tid]
            if state is None:
                value = None
                new = None
            else:
                wake, deadline = self._next[tid]
                value = encode_ticket(
                    state, None if wake == NO_INSTANT else wake, None if deadline == NO_INSTANT else deadline
                )
                new = ticket_header(value)
            gauges.change(headers.get(tid), new)
            headers[tid] = new
            self._count(tid, state)
            self._snapshot_of[tid] = seq
            out.append((tid, value))
        self._dirty = set()
        for tid in self._loaded:  # loaded but left unchanged (a duplicate, a purge of nothing): nothing to keep
            if tid not in self._snapshot_of and tid not in self._unsettled:
                self._forget(tid)
        self._loaded = set()
        if out:
            self._pending.append((seq, out))
        return seq, out

    def stored(self, seq: int, checkpoint: Checkpoint) -> None:
        """Write snapshot ``seq`` (and any older one not written yet) to the store with ``checkpoint``, then forget
        the overlay tickets no later change holds."""
        changes: list[tuple[str, bytes | None]] = []
        while self._pending and self._pending[0][0] <= seq:
            changes.extend(self._pending.pop(0)[1])
        self.store.write(changes, checkpoint)
        for tid, _value in changes:
            if self._snapshot_of.get(tid) == seq and tid not in self._dirty and tid not in self._unsettled:
                self._forget(tid)
        if len(self.heap) > 2 * self.gauges.armed + _COMPACT_SLACK:
            self.heap = [e for e in self.heap if self._current(e[1])[0] == e[0]]
            heapq.heapify(self.heap)

    def _count(self, tid: str, state: TicketState | None) -> None:
        """Move a changed ticket's count to the version it is on now (open tickets only)."""
        now = self._counted_version(state)
        before = self._version_of.get(tid)
        self._version_of[tid] = now
        if before == now:
            return
        counts = self.open_by_version
        if before is not None:
            left = counts[before] - 1
            if left > 0:
                counts[before] = left
            else:
                counts.pop(before, None)
        if now is not None:
            counts[now] += 1

    def _counted_version(self, state: TicketState | None) -> str | None:
        if state is None or state.status in DONE_STATUSES:
            return None
        single = self.versions.single
        return single.version if single is not None else state.policy_version

    def _forget(self, tid: str) -> None:
        self._version_of.pop(tid, None)
        self._states.pop(tid, None)
        self._headers.pop(tid, None)
        self._next.pop(tid, None)
        self._snapshot_of.pop(tid, None)
        self._popped.discard(tid)

    def discard(self) -> None:
        """Forget everything not stored. The heap and gauges may be off: the runtime calls :meth:`rebuild` before
        the partition is used again."""
        self._states = {}
        self._version_of = {}
        self._headers = {}
        self._next = {}
        self._dirty = set()
        self._unsettled = set()
        self._popped = set()
        self._snapshot_of = {}
        self._loaded = set()
        self._pending = []

    def due_before(self, until_ms: int) -> list[tuple[int, str]]:
        """(next deadline, ticket) of every ticket whose next SLA threshold falls before ``until_ms``, soonest
        first: read off the deadline heap (only entries that are current), not a scan of the store."""
        horizon = until_ms + self.lateness_ms
        found: dict[str, int] = {}
        for wake, tid in list(self.heap):
            if wake > horizon or tid in found:
                continue
            current_wake, deadline = self._current(tid)
            if current_wake == wake and deadline != NO_INSTANT and deadline <= until_ms:
                found[tid] = deadline
        return sorted((d, t) for t, d in found.items())

    # -- wake instants ------------------------------------------------------------------------------------------
    def _current(self, ticket: str) -> tuple[int, int]:
        """(wake, deadline) of a ticket: its latest state in the overlay, else its stored header."""
        known = self._next.get(ticket)
        if known is not None:
            return known
        raw = self.store.get(ticket)
        if raw is None:
            return NO_INSTANT, NO_INSTANT
        h = ticket_header(raw)
        return h.wake_ms, h.deadline_ms

    def _settle(self) -> None:
        if self._unsettled:
            for tid in list(self._unsettled):
                self._settle_one(tid)

    def _settle_one(self, tid: str) -> None:
        self._unsettled.discard(tid)
        state = self._states[tid]
        old_wake = self._next.get(tid, (NO_INSTANT, NO_INSTANT))[0]
        if state is None:
            self._next[tid] = (NO_INSTANT, NO_INSTANT)
            return
        deadline = next_deadline_versioned(state, self.versions)
        wake = NO_INSTANT if deadline is None else deadline + self.lateness_ms
        if state.closed_ms is not None:
            purge = state.closed_ms + self.retention_ms
            wake = purge if wake == NO_INSTANT else min(wake, purge)
        self._next[tid] = (wake, NO_INSTANT if deadline is None else deadline)
        if wake != NO_INSTANT and (wake != old_wake or tid in self._popped):
            heapq.heappush(self.heap, (wake, tid))
        self._popped.discard(tid)
