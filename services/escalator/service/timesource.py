"""The time-source seam: the service asks an injected time source for "now"; tests inject one they control.

(Named apart from :class:`escalator.core.state.Clock`, which is a ticket's per-metric SLA clock.)
"""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["ManualTime", "TimeSource", "WallTime"]


class TimeSource(Protocol):
    def now_ms(self) -> int: ...


class WallTime:
    """The real wall clock (epoch milliseconds)."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualTime:
    """Time that moves only when told to (tests)."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: int) -> None:
        self._now = now_ms

    def advance(self, ms: int) -> None:
        self._now += ms
