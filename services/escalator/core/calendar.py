"""Business-hours calendars: exact open-time arithmetic across time zones, DST changes, holidays and split days.

A calendar is a weekly schedule of local opening intervals (minutes after local midnight, ``24:00`` allowed as an
end) in one IANA time zone, minus whole-day holidays (local dates). Two operations matter to the SLA engine:

* :meth:`Calendar.elapsed_ms` -- open time between two instants;
* :meth:`Calendar.add_open_ms` -- the *earliest* instant at which ``d`` of open time has passed since ``start``.

They are exact inverses (``elapsed(a, add(a, d)) == d``) and cost O(days spanned): each local day's intervals are
converted to UTC once and memoised. Because ``add`` returns the earliest instant, a deadline can fall exactly on a
closing time (Friday 17:00), never on the next opening (Monday 09:00).

Local wall times are converted with PEP 495 semantics, ``fold=0``: a time inside a spring-forward gap maps forward
by the size of the gap (02:30 -> 03:30 summer time, as java.time does); an ambiguous time in a fall-back overlap is its
first occurrence. Open time is always real elapsed time, so an all-day interval lasts 23 h or 25 h on DST days.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["WEEKDAYS", "Calendar", "parse_interval"]

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_MS: Final = 86_400_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_CACHE_LIMIT: Final = 20_000
_WINDOW_DAYS: Final = 2048  # 5.6 years from 1.4 years before the first day asked about (16 KiB per calendar)
# Longest search for open time before giving up: policy validation guarantees at least one open minute a week,
# holidays are finite, and targets are bounded, so this is only a guard against a corrupt calendar.
_MAX_SEARCH_DAYS: Final = 366 * 30
#: No instant (the remembered interval's bounds before any walk): far outside any instant, in the compiled core's
#: unboxed integer range.
_NO_INSTANT: Final = -(1 << 61)

Interval = tuple[int, int]


def parse_interval(text: str) -> Interval:
    """``"09:00-17:00"`` -> ``(540, 1020)`` minutes after local midnight; ``24:00`` is accepted as an end."""
    try:
        start_s, end_s = (p.strip() for p in text.split("-"))
        start, end = _minutes(start_s, allow_24=False), _minutes(end_s, allow_24=True)
    except ValueError:
        raise ValueError(f"invalid opening interval {text!r}: expected HH:MM-HH:MM, e.g. 09:00-17:00") from None
    if end <= start:
        raise ValueError(
            f"invalid opening interval {text!r}: the end must be after the start (split overnight "
            "hours over two days, e.g. 22:00-24:00 and 00:00-06:00)"
        )
    return start, end


def _minutes(text: str, *, allow_24: bool) -> int:
    hh, mm = text.split(":")
    if len(hh) != 2 or len(mm) != 2 or not (hh.isdigit() and mm.isdigit()):
        raise ValueError(text)
    h, m = int(hh), int(mm)
    if m > 59 or h > 24 or (h == 24 and (m != 0 or not allow_24)):
        raise ValueError(text)
    return h * 60 + m


class Calendar:
    """A business-hours calendar. Instances are immutable apart from an internal, deterministic memo."""

    __slots__ = (
        "_always",
        "_day_cache",
        "_gap_s",
        "_open_e",
        "_open_s",
        "_tz",
        "_window",
        "_window_base",
        "holidays",
        "name",
        "timezone",
        "week",
    )

    def __init__(
        self,
        name: str,
        timezone: str = "UTC",
        week: Iterable[Iterable[Interval]] | None = None,
        holidays: Iterable[date] = (),
    ) -> None:
        try:
            self._tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Amsterdam)") from None
        self.name = name
        self.timezone = timezone
        if week is None:
            days: tuple[tuple[Interval, ...], ...] = tuple(((0, 1440),) for _ in range(7))
        else:
            days = tuple(_normalise(day) for day in week)
            if len(days) != 7:
                raise ValueError("a week needs exactly 7 days")
        if not any(days):
            raise ValueError("a calendar needs at least one opening interval in the week")
        self.week = days
        self.holidays = frozenset(holidays)
        self._always = not self.holidays and all(day == ((0, 1440),) for day in days)
        self._day_cache: dict[int, tuple[Interval, ...]] = {}
        # The days around the first one asked about, by index (no boxing and hashing of the ordinal per day walked,
        # which is what the dict costs on the hot path); days outside the window use the dict.
        self._window: list[tuple[Interval, ...] | None] = []
        self._window_base = 0
        # The open interval the last walk of elapsed_ms ended in, [_open_s, _open_e), and the end of the open interval
        # before it, _gap_s (no open time in [_gap_s, _open_s)): a question within [_gap_s, _open_e] is answered from
        # them without a walk. Events come in time order, so most checkpoints of the tickets fall in the calendar's
        # current interval, as do the nearest deadlines. (Deadlines further off are not remembered: they would
        # displace the current interval.) A fact about the calendar, whichever ticket's question found it: the
        # answers are the walk's, whatever was asked before (tests/unit/test_calendar.py checks).
        self._gap_s = _NO_INSTANT
        self._open_s = _NO_INSTANT
        self._open_e = _NO_INSTANT

    @property
    def always_open(self) -> bool:
        """True for a 24x7 calendar without holidays (open time equals wall time)."""
        return self._always

    def __repr__(self) -> str:
        return f"Calendar({self.name!r}, {self.timezone!r}, always_open={self._always})"

    # -- core operations -------------------------------------------------------------------------------------
    def elapsed_ms(self, start_ms: int, end_ms: int) -> int:
        """Open time in ``[start_ms, end_ms)``; 0 when ``end_ms <= start_ms``."""
        if end_ms <= start_ms:
            return 0
        if self._always:
            return end_ms - start_ms
        if self._gap_s <= start_ms and end_ms <= self._open_e:  # within the remembered interval and the gap before
            s = self._open_s
            return end_ms - (s if s > start_ms else start_ms) if end_ms > s else 0
        total = 0
        ordinal = _EPOCH_ORDINAL + start_ms // _DAY_MS - 1  # _first_ordinal(start_ms), inlined (hot path)
        last = _EPOCH_ORDINAL + end_ms // _DAY_MS + 1  # _last_ordinal(end_ms)
        first = ordinal
        base = (ordinal - _EPOCH_ORDINAL) * _DAY_MS
        before = _NO_INSTANT  # the end of the interval before the current one (_NO_INSTANT: none seen yet)
        while ordinal <= last:
            for s_off, e_off in self._day_at(ordinal):
                e = base + e_off
                if e <= start_ms:
                    before = e
                    continue
                s = base + s_off
                if s < end_ms:
                    total += (e if e < end_ms else end_ms) - (s if s > start_ms else start_ms)
                if e >= end_ms:  # the interval ``end_ms`` falls in or before (every later one starts after ``e``)
                    self._remember(before, s, e, first)
                    return total
                before = e
            ordinal += 1
            base += _DAY_MS
        return total

    def add_open_ms(self, start_ms: int, duration_ms: int) -> int:
        """The earliest instant ``t >= start_ms`` with ``elapsed_ms(start_ms, t) == duration_ms``."""
        if duration_ms <= 0:
            return start_ms
        if self._always:
            return start_ms + duration_ms
        if self._gap_s <= start_ms < self._open_e:  # from within the remembered interval or the gap before it
            s = self._open_s
            begin = s if s > start_ms else start_ms
            if begin + duration_ms <= self._open_e:
                return begin + duration_ms
        remaining = duration_ms
        ordinal = _EPOCH_ORDINAL + start_ms // _DAY_MS - 1  # _first_ordinal(start_ms), inlined (hot path)
        base = (ordinal - _EPOCH_ORDINAL) * _DAY_MS
        for _ in range(_MAX_SEARCH_DAYS):
            for s_off, e_off in self._day_at(ordinal):
                e = base + e_off
                if e <= start_ms:
                    continue
                s = base + s_off
                begin = s if s > start_ms else start_ms
                available = e - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            ordinal += 1
            base += _DAY_MS
        raise ValueError(f"calendar {self.name!r}: no open time found within {_MAX_SEARCH_DAYS} days")

    def is_open(self, at_ms: int) -> bool:
        """Whether the calendar is open at the instant (intervals are half-open: open at 09:00, closed at 17:00)."""
        if self._always:
            return True
        return any(
            s <= at_ms < e for o in range(_first_ordinal(at_ms), _last_ordinal(at_ms) + 1) for s, e in self._day(o)
        )

    def open_intervals(self, start_ms: int, end_ms: int) -> list[Interval]:
        """The open intervals (UTC milliseconds) that overlap ``[start_ms, end_ms)``, clipped to it."""
        if end_ms <= start_ms:
            return []
        if self._always:
            return [(start_ms, end_ms)]
        out: list[Interval] = []
        for ordinal in range(_first_ordinal(start_ms), _last_ordinal(end_ms) + 1):
            for s, e in self._day(ordinal):
                if e > start_ms and s < end_ms:
                    out.append((max(s, start_ms), min(e, end_ms)))
        return out

    # -- internals -------------------------------------------------------------------------------------------
    def _remember(self, before: int, s: int, e: int, first: int) -> None:
        """Remember the open interval ``[s, e)`` and the end ``before`` of the one before it. A walk (from day
        ``first``) that met no interval before this one did not see that one: it is the last of the days before
        ``first`` (those end before the days of the walk begin), looked for up to two weeks back."""
        if before == _NO_INSTANT:
            ordinal = first - 1
            base = (ordinal - _EPOCH_ORDINAL) * _DAY_MS
            for _ in range(14):
                day = self._day_at(ordinal)
                if day:
                    before = base + day[-1][1]
                    break
                ordinal -= 1
                base -= _DAY_MS
            else:
                return
        self._gap_s, self._open_s, self._open_e = before, s, e

    def _day_at(self, ordinal: int) -> tuple[Interval, ...]:
        """The day's open intervals as offsets from the UTC start of its ordinal day (small integers: the compiled
        loops read them without unboxing epoch milliseconds; a zone's local day may start a day before or after)."""
        i = ordinal - self._window_base
        if 0 <= i < len(self._window):
            day = self._window[i]
            if day is None:
                day = self._window[i] = self._relative(ordinal)
            return day
        if not self._window:
            self._window_base = ordinal - _WINDOW_DAYS // 4
            self._window = [None] * _WINDOW_DAYS
            return self._day_at(ordinal)
        return self._relative(ordinal)

    def _relative(self, ordinal: int) -> tuple[Interval, ...]:
        base = (ordinal - _EPOCH_ORDINAL) * _DAY_MS
        return tuple((s - base, e - base) for s, e in self._day(ordinal))

    def _day(self, ordinal: int) -> tuple[Interval, ...]:
        cached = self._day_cache.get(ordinal)
        if cached is not None:
            return cached
        day = date.fromordinal(ordinal)
        clipped: list[Interval] = []
        if day not in self.holidays:
            # Local intervals are sorted and disjoint; after conversion a DST gap can make neighbours overlap
            # (01:00-02:30 and 03:00-05:00 on a spring-forward night), so clip each to start after the last.
            for s_min, e_min in self.week[day.weekday()]:
                s, e = self._to_utc_ms(day, s_min), self._to_utc_ms(day, e_min)
                if clipped and s < clipped[-1][1]:
                    s = clipped[-1][1]
                if e > s:
                    clipped.append((s, e))
        result = tuple(clipped)
        if len(self._day_cache) >= _CACHE_LIMIT:
            self._day_cache.clear()
        self._day_cache[ordinal] = result
        return result

    def _to_utc_ms(self, day: date, minute: int) -> int:
        if minute == 1440:
            day, minute = day + timedelta(days=1), 0
        local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=self._tz)
        delta = local - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000


def _first_ordinal(at_ms: int) -> int:
    # Local dates lie within a day of the UTC date (offsets are within +-26 h): scanning from the day before and up
    # to the day after is always enough; the loops clip intervals to the range they are asked about.
    return _EPOCH_ORDINAL + at_ms // _DAY_MS - 1


def _last_ordinal(at_ms: int) -> int:
    return _EPOCH_ORDINAL + at_ms // _DAY_MS + 1


def _normalise(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    ordered = sorted(intervals)
    merged: list[Interval] = []
    for s, e in ordered:
        if not 0 <= s < e <= 1440:
            raise ValueError(f"invalid interval {s}-{e} (minutes after midnight)")
        if merged and s <= merged[-1][1]:
            if s < merged[-1][1]:
                raise ValueError("opening intervals of one day overlap")
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return tuple(merged)
