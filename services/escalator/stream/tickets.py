"""The tickets of one input partition: their states (a partition store), the deadline heap and the gauges.

One batch at a time: :meth:`TicketPartition.apply` for each event (a ticket's state is loaded from the store
once per batch, however many events touch it), :meth:`fire_due` for the deadlines that are due, then
:meth:`changes` gives each touched ticket's new store value (written once per batch) and :meth:`commit` writes
them to the store once the runtime has flushed them to the changelog -- or :meth:`discard` forgets the batch.

The heap holds ``(wake_ms, ticket)``; a ticket's *wake* is its next SLA threshold plus the allowed lateness, or
the instant its closed state may be purged, whichever comes first. An entry is current only while it equals the
wake in the ticket's stored header, so re-arming pushes a new entry and never searches for the old one; superseded
entries are skipped when they surface and the heap is rebuilt from the store when they pile up.

A deadline fires at its logical instant: ``advance(state, limit)`` where ``limit`` (from the runtime) is the
latest instant up to which every event of this partition is known to be applied. Pure: time comes in as
arguments.
"""

from __future__ import annotations

import heapq

from ..core import Command, Event, PolicySet, TicketState, advance, apply, next_deadline
from .codec import NO_INSTANT, decode_ticket, encode_ticket, ticket_header
from .gauges import PartitionGauges
from .store import Checkpoint, PartitionStore

__all__ = ["TicketPartition"]

_COMPACT_SLACK = 1024


class TicketPartition:
    def __init__(
        self, partition: int, store: PartitionStore, policy: PolicySet, *, lateness_ms: int, retention_ms: int
    ) -> None:
        self.partition = partition
        self.store = store
        self.policy = policy
        self.lateness_ms = lateness_ms
        self.retention_ms = retention_ms
        self.heap: list[tuple[int, str]] = []
        self.gauges = PartitionGauges()
        self.applied_max_ms: int | None = None  # the newest event time applied on this partition
        self.purged = 0
        self._states: dict[str, TicketState | None] = {}  # tickets loaded this batch (None: unknown or purged)
        self._before: dict[str, bytes | None] = {}  # their store values before the batch
        self._dirty: set[str] = set()  # changed this batch
        self._next: dict[str, tuple[int, int]] = {}  # (wake, deadline) of changed tickets, once settled
        self._popped: set[str] = set()  # tickets whose heap entry fire_due took out this batch

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
        return gauges.tickets

    def stored(self, ticket: str) -> TicketState | None:
        """The ticket's state as stored (committed batches only); safe to call from another thread."""
        raw = self.store.get(ticket)
        return None if raw is None else decode_ticket(raw)

    def priority_of(self, ticket: str) -> str:
        """The priority of a ticket touched in this batch (a metrics label), ``none`` if unknown."""
        state = self._states.get(ticket)
        return "none" if state is None else state.priority

    def _load(self, ticket: str) -> TicketState | None:
        states = self._states
        if ticket in states:
            return states[ticket]
        raw = self.store.get(ticket)
        self._before[ticket] = raw
        state = None if raw is None else decode_ticket(raw)
        states[ticket] = state
        return state

    # -- the batch ----------------------------------------------------------------------------------------------
    def apply(self, event: Event) -> list[Command]:
        """Apply one event (copy-on-write: if the core raises, the ticket's state is as it was)."""
        tid = event.ticket_id
        state = self._load(tid)
        new, cmds = apply(state, event, self.policy)
        if new is not state:
            self._states[tid] = new
            self._dirty.add(tid)
            self._next.pop(tid, None)
        t = event.time_ms
        if self.applied_max_ms is None or t > self.applied_max_ms:
            self.applied_max_ms = t
        return cmds

    def next_wake(self) -> int | None:
        """The earliest wake instant armed (superseded entries dropped on the way)."""
        heap = self.heap
        while heap:
            wake, tid = heap[0]
            if self._current(tid)[0] == wake:
                return wake
            heapq.heappop(heap)
        return None

    def next_deadline_due(self, now_ms: int) -> int | None:
        """The SLA instant of the earliest due deadline entry (``wake <= now``), ``None`` if none is due or the
        earliest due entry is a purge. The runtime uses it to decide whether the partition's backlog must be
        checked before firing."""
        self._settle()
        wake = self.next_wake()
        if wake is None or wake > now_ms:
            return None
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
        policy = self.policy
        while heap and heap[0][0] <= now_ms:
            wake, tid = heap[0]
            current, deadline = self._current(tid)
            if current != wake:
                heapq.heappop(heap)
                continue
            is_deadline = deadline != NO_INSTANT and deadline + self.lateness_ms == wake
            if is_deadline and deadline > limit_ms:
                break
            heapq.heappop(heap)
            self._popped.add(tid)
            state = self._load(tid)
            if state is None:
                continue
            if state.closed_ms is not None and now_ms >= state.closed_ms + self.retention_ms:
                self._states[tid] = None
                self._dirty.add(tid)
                self._next[tid] = (NO_INSTANT, NO_INSTANT)
                self.purged += 1
                continue
            new, cmds = advance(state, limit_ms, policy)
            out.extend(cmds)
            if new is not state:
                self._states[tid] = new
            self._dirty.add(tid)
            self._next.pop(tid, None)
            rearm.append(tid)
        for tid in rearm:  # pushed after the loop: a ticket is fired at most once per call
            self._settle_one(tid)
        return out

    def changes(self) -> list[tuple[str, bytes | None]]:
        """The batch's changed tickets as store values (``None``: deleted)."""
        self._settle()
        out: list[tuple[str, bytes | None]] = []
        for tid in self._dirty:
            state = self._states[tid]
            if state is None:
                out.append((tid, None))
                continue
            wake, deadline = self._next[tid]
            out.append(
                (
                    tid,
                    encode_ticket(
                        state, None if wake == NO_INSTANT else wake, None if deadline == NO_INSTANT else deadline
                    ),
                )
            )
        return out

    def commit(self, changes: list[tuple[str, bytes | None]], checkpoint: Checkpoint) -> None:
        """Write the batch's changes (flushed to the changelog already) and update the gauges."""
        self.store.write(changes, checkpoint)
        gauges = self.gauges
        before = self._before
        for tid, value in changes:
            old = before.get(tid)
            gauges.change(None if old is None else ticket_header(old), None if value is None else ticket_header(value))
        self._reset()
        if len(self.heap) > 2 * gauges.armed + _COMPACT_SLACK:
            self.heap = [e for e in self.heap if self._current(e[1])[0] == e[0]]
            heapq.heapify(self.heap)

    def discard(self) -> None:
        """Forget the batch (its changes never reach the store). The heap may have lost entries the batch
        popped: the runtime calls :meth:`rebuild` before the partition is used again."""
        self._reset()

    def _reset(self) -> None:
        self._states = {}
        self._before = {}
        self._dirty = set()
        self._next = {}
        self._popped = set()

    # -- wake instants ------------------------------------------------------------------------------------------
    def _current(self, ticket: str) -> tuple[int, int]:
        """(wake, deadline) of a ticket as of now in the batch (settled changes, else the stored header)."""
        settled = self._next.get(ticket)
        if settled is not None:
            return settled
        if ticket in self._before:
            raw = self._before[ticket]
        else:
            raw = self.store.get(ticket)
        if raw is None:
            return NO_INSTANT, NO_INSTANT
        h = ticket_header(raw)
        return h.wake_ms, h.deadline_ms

    def _settle(self) -> None:
        for tid in self._dirty:
            if tid not in self._next:
                self._settle_one(tid)

    def _settle_one(self, tid: str) -> None:
        state = self._states[tid]
        if state is None:
            self._next[tid] = (NO_INSTANT, NO_INSTANT)
            return
        deadline = next_deadline(state, self.policy)
        wake = NO_INSTANT if deadline is None else deadline + self.lateness_ms
        if state.closed_ms is not None:
            purge = state.closed_ms + self.retention_ms
            wake = purge if wake == NO_INSTANT else min(wake, purge)
        old = self._before.get(tid)
        old_wake = NO_INSTANT if old is None else ticket_header(old).wake_ms
        self._next[tid] = (wake, NO_INSTANT if deadline is None else deadline)
        if wake != NO_INSTANT and (wake != old_wake or tid in self._popped):
            heapq.heappush(self.heap, (wake, tid))
