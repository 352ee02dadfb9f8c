"""The per-partition deadline index: when each ticket next needs the agent's attention.

The timer scans it; the agent (the only writer of tables) re-arms it after every state change. Entries hold the
*wake* instant: a ticket's next SLA threshold plus the allowed lateness, or the instant a closed ticket may be
purged. :meth:`DeadlineIndex.pop_due` hands out each due ticket once and keeps it "in flight" until the agent
re-arms it, so the timer never floods the tick topic; a tick that got lost is re-sent after ``retry_ms``.

Pure (no I/O, no clock): "now" is always an argument.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["DeadlineIndex", "TicketInfo"]


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """What the gauges need to know about a ticket (kept beside its wake time)."""

    priority: str
    open: bool
    deadline_ms: int | None  # next SLA threshold (without lateness), for "at risk"


@dataclass(slots=True)
class _Partition:
    wake: dict[str, int] = field(default_factory=dict)
    heap: list[tuple[int, str]] = field(default_factory=list)
    info: dict[str, TicketInfo] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)  # ticket -> instant its tick was handed out


class DeadlineIndex:
    def __init__(self, retry_ms: int = 30_000) -> None:
        self._parts: dict[int, _Partition] = {}
        self.retry_ms = retry_ms

    # -- writes (from the agent and the rebuild) ---------------------------------------------------------------
    def arm(self, partition: int, ticket: str, wake_ms: int | None, info: TicketInfo | None) -> None:
        """Record a ticket's next wake instant (``None``: nothing to do) and its gauge info (``None``: gone)."""
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = _Partition()
        part.in_flight.pop(ticket, None)
        if info is None:
            part.info.pop(ticket, None)
        else:
            part.info[ticket] = info
        if wake_ms is None:
            part.wake.pop(ticket, None)
            return
        if part.wake.get(ticket) != wake_ms:
            part.wake[ticket] = wake_ms
            heapq.heappush(part.heap, (wake_ms, ticket))
            if len(part.heap) > 4 * len(part.wake) + 1024:
                self._compact(part)

    def drop_partition(self, partition: int) -> None:
        self._parts.pop(partition, None)

    def clear(self) -> None:
        self._parts.clear()

    # -- the timer ---------------------------------------------------------------------------------------------
    def pop_due(
        self, now_ms: int, limit: int = 10_000, hold: Callable[[int, int], bool] | None = None
    ) -> list[tuple[int, str, int]]:
        """Tickets whose wake instant is ``<= now_ms`` as ``(partition, ticket, wake_ms)``, each handed out once,
        plus in-flight ones whose tick was handed out more than ``retry_ms`` ago and never acknowledged.

        ``hold(partition, wake_ms)`` -> True keeps a partition's due entries back for now (the worker uses it while
        a partition's input backlog may still hold events older than the deadline)."""
        out: list[tuple[int, str, int]] = []
        for p, part in self._parts.items():
            heap = part.heap
            while heap and heap[0][0] <= now_ms and len(out) < limit:
                wake, ticket = heap[0]
                if part.wake.get(ticket) != wake:
                    heapq.heappop(heap)
                    continue  # superseded
                if hold is not None and hold(p, wake):
                    break
                heapq.heappop(heap)
                del part.wake[ticket]
                part.in_flight[ticket] = now_ms
                out.append((p, ticket, wake))
            for ticket, sent in list(part.in_flight.items()):
                if now_ms - sent >= self.retry_ms and len(out) < limit:
                    part.in_flight[ticket] = now_ms
                    out.append((p, ticket, sent))
        return out

    def next_wake(self) -> int | None:
        best: int | None = None
        for part in self._parts.values():
            while part.heap and part.wake.get(part.heap[0][1]) != part.heap[0][0]:
                heapq.heappop(part.heap)
            if part.heap and (best is None or part.heap[0][0] < best):
                best = part.heap[0][0]
        return best

    # -- gauges ------------------------------------------------------------------------------------------------
    @property
    def partitions(self) -> set[int]:
        return set(self._parts)

    def size(self) -> int:
        return sum(len(p.wake) + len(p.in_flight) for p in self._parts.values())

    def tickets(self) -> int:
        return sum(len(p.info) for p in self._parts.values())

    def open_by_priority(self) -> Counter[str]:
        c: Counter[str] = Counter()
        for part in self._parts.values():
            for info in part.info.values():
                if info.open:
                    c[info.priority] += 1
        return c

    def at_risk(self, now_ms: int, horizon_ms: int) -> int:
        """Open tickets with an SLA threshold within ``horizon_ms`` from now (or already overdue)."""
        limit = now_ms + horizon_ms
        return sum(
            1
            for part in self._parts.values()
            for info in part.info.values()
            if info.open and info.deadline_ms is not None and info.deadline_ms <= limit
        )

    def _compact(self, part: _Partition) -> None:
        part.heap = [(w, t) for t, w in part.wake.items()]
        heapq.heapify(part.heap)
