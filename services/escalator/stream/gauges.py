"""Gauges of the tickets a worker holds, kept up to date as states change -- never computed by a scan at scrape time.

Each ticket contributes, through its store value header (``codec.TicketHeader``): one ticket; if open, one to its
priority and, when it has a next SLA threshold, one to that threshold's minute (for "at risk"); if it has a wake
instant, one armed deadline. A state change subtracts the old header's contribution and adds the new one's.
Reads (the HTTP thread) take copies made in single C-level operations, so they never see a dict mid-resize.
"""

from __future__ import annotations

from collections import Counter

from ..core.vocabulary import PRIORITIES
from .codec import NO_INSTANT, TicketHeader

__all__ = ["PartitionGauges"]

MINUTE_MS = 60_000


class PartitionGauges:
    __slots__ = ("armed", "at_risk_minutes", "open_by_priority", "tickets")

    def __init__(self) -> None:
        self.tickets = 0
        self.armed = 0
        self.open_by_priority = [0] * len(PRIORITIES)
        self.at_risk_minutes: Counter[int] = Counter()  # minute of an open ticket's next threshold -> tickets

    def add(self, h: TicketHeader, sign: int = 1) -> None:
        self.tickets += sign
        if h.wake_ms != NO_INSTANT:
            self.armed += sign
        if h.is_open:
            if h.priority >= 0:
                self.open_by_priority[h.priority] += sign
            if h.deadline_ms != NO_INSTANT:
                minute = h.deadline_ms // MINUTE_MS
                n = self.at_risk_minutes[minute] + sign
                if n:
                    self.at_risk_minutes[minute] = n
                else:
                    del self.at_risk_minutes[minute]

    def change(self, old: TicketHeader | None, new: TicketHeader | None) -> None:
        if old is not None:
            self.add(old, -1)
        if new is not None:
            self.add(new, 1)

    def at_risk(self, now_ms: int, horizon_ms: int) -> int:
        """Open tickets whose next SLA threshold falls within ``horizon_ms`` from now, or is overdue (to the
        minute: thresholds in the minute of ``now + horizon`` count)."""
        limit = (now_ms + horizon_ms) // MINUTE_MS
        return sum(n for minute, n in list(self.at_risk_minutes.items()) if minute <= limit)

    def open_counts(self) -> dict[str, int]:
        return dict(zip(PRIORITIES, list(self.open_by_priority), strict=True))
