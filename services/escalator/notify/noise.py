"""Noise control, pure: quiet hours in a recipient's time zone, staleness of a notification when it would be
delivered, and the per-destination outbox that turns several notifications within a window into one digest.

Nothing here reads a clock: every function takes "now" in epoch milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic, TypeVar
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from .routing import Destination, Notice

__all__ = ["Outbox", "QuietHours", "parse_quiet_hours", "stale_reason"]

T = TypeVar("T")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class QuietHours:
    """A daily window ``start``-``end`` (minutes after local midnight; it may wrap past midnight) in ``zone``."""

    start: int
    end: int
    zone: str

    def opens_at(self, now_ms: int) -> int | None:
        """``None`` when ``now_ms`` is outside the quiet window, else the instant (epoch ms) the window ends."""
        tz = ZoneInfo(self.zone)
        local = datetime.fromtimestamp(now_ms / 1000, tz)
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            inside = self.start <= minute < self.end
        else:
            inside = minute >= self.start or minute < self.end
        if not inside:
            return None
        day = local.date() if minute < self.end else local.date() + timedelta(days=1)
        wall = datetime(day.year, day.month, day.day, self.end // 60, self.end % 60, tzinfo=tz)
        return max(now_ms + 1, int(wall.timestamp() * 1000))  # a DST gap still moves forward


def parse_quiet_hours(text: str, zone: str) -> QuietHours:
    """``"22:00-07:00"`` in ``zone`` (an IANA time zone). Raises ValueError with a message people can act on."""
    m = _HHMM.match(text.strip())
    if m is None:
        raise ValueError(f"quiet hours {text!r}: expected HH:MM-HH:MM, e.g. 22:00-07:00")
    start = int(m.group(1)) * 60 + int(m.group(2))
    end = int(m.group(3)) * 60 + int(m.group(4))
    if start == end:
        raise ValueError(f"quiet hours {text!r}: start and end are equal")
    return QuietHours(start, end, zone)


def stale_reason(notice: Notice, now_ms: int, warning_max_age_ms: int) -> str | None:
    """Why ``notice`` should not be delivered any more at ``now_ms`` (``None``: deliver it).

    What escalator's outputs let a relay know: an ``sla_warning`` says a target is *approaching* at ``fired_at``;
    once ``warning_max_age_ms`` has passed, the ticket has either been answered or breached -- and a breach is a
    notification of its own -- so a late warning only adds noise. What they do not say: whether the ticket was
    solved meanwhile (that is on the input topic, not the outputs), so breaches and escalations always go out.
    """
    if warning_max_age_ms > 0 and notice.kind == "sla_warning" and now_ms - notice.fired_at_ms > warning_max_age_ms:
        return "stale"
    return None


@dataclass
class _Pending(Generic[T]):
    destination: Destination
    due_ms: int
    items: list[tuple[Notice, T]] = field(default_factory=list)


class Outbox(Generic[T]):
    """Notices waiting for their destination: at once, after the throttle window of the destination's previous
    send, or when its quiet hours end. Everything due for one destination at one time leaves as one message."""

    def __init__(self, digest_window_ms: int) -> None:
        self.digest_window_ms = digest_window_ms
        self._pending: dict[str, _Pending[T]] = {}
        self._last_sent: dict[str, int] = {}

    def add(self, notice: Notice, destination: Destination, token: T, now_ms: int, *, bundle: bool = True) -> int:
        """Queue ``notice`` for ``destination`` (``token`` travels with it); returns when it is due. A critical
        notice goes at once, on its own: it neither waits for nor pulls along the destination's other notices.
        ``bundle`` false (PagerDuty: every escalation is its own alert): at once, alone, whatever the hour."""
        due = now_ms
        critical = notice.severity == "critical" or not bundle
        alone = critical or self.digest_window_ms == 0
        slot = f"{destination.key}#{notice.id}" if alone else destination.key
        if not critical:
            last = self._last_sent.get(destination.key)
            if self.digest_window_ms > 0 and last is not None and now_ms < last + self.digest_window_ms:
                due = last + self.digest_window_ms
            if destination.quiet is not None:
                opens = destination.quiet.opens_at(due)
                if opens is not None:
                    due = opens
        pending = self._pending.get(slot)
        if pending is None:
            pending = self._pending[slot] = _Pending(destination, due)
        pending.due_ms = max(pending.due_ms, due)
        pending.items.append((notice, token))
        return pending.due_ms

    def take_due(self, now_ms: int) -> list[tuple[Destination, list[tuple[Notice, T]]]]:
        """Everything due at ``now_ms``, one entry per destination (its send time is remembered)."""
        out = []
        for slot, pending in list(self._pending.items()):
            if pending.due_ms <= now_ms:
                del self._pending[slot]
                self._last_sent[pending.destination.key] = now_ms
                out.append((pending.destination, pending.items))
        return out

    def items(self) -> list[tuple[Notice, T]]:
        """Every waiting notice with its token."""
        return [item for pending in self._pending.values() for item in pending.items]

    def next_due(self) -> int | None:
        return min((p.due_ms for p in self._pending.values()), default=None)

    def drop(self, keep: Callable[[T], bool]) -> None:
        """Forget the notices whose token ``keep`` refuses (their partitions were revoked)."""
        for slot, pending in list(self._pending.items()):
            pending.items = [(n, t) for n, t in pending.items if keep(t)]
            if not pending.items:
                del self._pending[slot]

    def __len__(self) -> int:
        return sum(len(p.items) for p in self._pending.values())
