"""Instants as integer milliseconds since the Unix epoch (UTC), and their RFC 3339 text form.

Every instant inside the core is an ``int`` of milliseconds (``*_ms`` names); durations are ``int`` milliseconds too.
Integers keep calendar arithmetic exact and make state cheap to serialise.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Final

__all__ = ["format_ms", "format_ms_or_none", "parse_rfc3339_ms"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_RFC3339: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


_parsed: Final[dict[str, int]] = {}
_PARSED_LIMIT: Final = 8192
_DAYS_IN_MONTH: Final = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_ordinals: Final[dict[tuple[int, int, int], int]] = {}


def parse_rfc3339_ms(text: str) -> int:
    """Parse an RFC 3339 timestamp *with* an offset (``Z`` or ``+hh:mm``) into epoch milliseconds.

    Fractions beyond milliseconds are truncated. Raises ``ValueError`` with a readable message otherwise.
    """
    # The common shape is read by position (no memo: that costs more than the reading); anything else takes the
    # regex, behind a bounded memo of recent texts (errors are not memoised: they raise the same message each time).
    ms = _parse_utc(text)
    if ms >= 0:
        return ms
    known = _parsed.get(text)
    if known is not None:
        return known
    ms = _parse(text)
    if len(_parsed) >= _PARSED_LIMIT:
        _parsed.clear()
    _parsed[text] = ms
    return ms


def _digits(text: str, start: int, end: int) -> int:
    """The value of the ASCII digits ``text[start:end]``, or -1 if any is not one."""
    value = 0
    for i in range(start, end):
        d = ord(text[i]) - 48
        if d < 0 or d > 9:
            return -1
        value = value * 10 + d
    return value


def _parse_utc(text: str) -> int:
    """The common shape, ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`` with valid fields, read by position without the regex
    (-1 for anything else, or an instant before the epoch: :func:`_parse` then decides, and words any error)."""
    n = len(text)
    if n < 20 or text[n - 1] != "Z" or text[13] != ":" or text[16] != ":":
        return -1
    hour_text = text[:13]  # a stream's timestamps share their hour: its instant is looked up, not recomputed
    base = _hour_ms.get(hour_text)
    if base is None:
        base = _hour_start_ms(text)
        if base < 0:
            return -1
        if len(_hour_ms) >= _PARSED_LIMIT:
            _hour_ms.clear()
        _hour_ms[hour_text] = base
    m1, m2, s1, s2 = ord(text[14]) - 48, ord(text[15]) - 48, ord(text[17]) - 48, ord(text[18]) - 48
    if not (0 <= m1 <= 5 and 0 <= m2 <= 9 and 0 <= s1 <= 5 and 0 <= s2 <= 9):
        return -1
    ms = 0
    if n == 24:  # the usual form: milliseconds, ``.sssZ``
        if text[19] != ".":
            return -1
        f1, f2, f3 = ord(text[20]) - 48, ord(text[21]) - 48, ord(text[22]) - 48
        if not (0 <= f1 <= 9 and 0 <= f2 <= 9 and 0 <= f3 <= 9):
            return -1
        ms = f1 * 100 + f2 * 10 + f3
    elif n > 20:
        if text[19] != "." or n < 22 or n > 30:
            return -1
        frac = _digits(text, 20, n - 1)
        if frac < 0:
            return -1
        digits = n - 21
        ms = frac // _TEN_POWERS[digits - 3] if digits > 3 else frac * _TEN_POWERS[3 - digits]
    elif n != 20:
        return -1
    return base + ((m1 * 10 + m2) * 60 + s1 * 10 + s2) * 1000 + ms


def _hour_start_ms(text: str) -> int:
    """The instant of ``YYYY-MM-DDTHH`` (the first 13 characters of ``text``), -1 if not valid or before 1970."""
    if text[4] != "-" or text[7] != "-" or text[10] != "T":
        return -1
    year, month, day, hour = _digits(text, 0, 4), _digits(text, 5, 7), _digits(text, 8, 10), _digits(text, 11, 13)
    if year < 1970 or not 1 <= month <= 12 or hour < 0 or hour > 23:
        return -1
    if day < 1 or day > (29 if month == 2 and _leap(year) else _DAYS_IN_MONTH[month]):
        return -1
    return (_epoch_days(year, month, day) * 24 + hour) * 3_600_000


_hour_ms: Final[dict[str, int]] = {}
_TEN_POWERS: Final = tuple(10**i for i in range(7))  # not a literal: mypyc would rebuild a Final tuple literal per use


def _parse(text: str) -> int:
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 timestamp with offset: {text!r}")
    ys, mos, ds, hs, mis, ss, frac, zulu, sign, ohs, oms = m.groups()
    year, month, day, hour, minute, second = int(ys), int(mos), int(ds), int(hs), int(mis), int(ss)
    # Fast path for valid fields (plain integer arithmetic); anything unusual takes the datetime path below, which
    # raises the error messages callers see.
    if (
        year >= 1
        and 1 <= month <= 12
        and 1 <= day <= (29 if month == 2 and _leap(year) else _DAYS_IN_MONTH[month])
        and hour <= 23
        and minute <= 59
        and second <= 59
        and (zulu is not None or (int(ohs) <= 23 and int(oms) <= 59))
    ):
        ms = int((frac + "000")[:3]) if frac else 0
        offset_min = 0 if zulu is not None else (int(ohs) * 60 + int(oms)) * (-1 if sign == "-" else 1)
        days = _epoch_days(year, month, day)
        return (days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60) * 1000 + ms
    return _parse_slow(m, text)


def _epoch_days(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a valid date (memoised: logs repeat their days)."""
    key = (year, month, day)
    days = _ordinals.get(key)
    if days is None:
        if len(_ordinals) >= 100_000:
            _ordinals.clear()
        days = _ordinals[key] = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    return days


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _parse_slow(m: re.Match[str], text: str) -> int:
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    frac = m.group(7) or ""
    ms = int((frac + "000")[:3]) if frac else 0
    if second == 60:  # leap second: clamp to the last millisecond of the minute
        second, ms = 59, 999
    try:
        naive = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {text!r}: {exc}") from None
    offset_min = 0
    if m.group(8) is None:
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            raise ValueError(f"invalid UTC offset in {text!r}")
        offset_min = oh * 60 + om
        if m.group(9) == "-":
            offset_min = -offset_min
    delta = naive.replace(tzinfo=UTC) - _EPOCH - timedelta(minutes=offset_min)
    return (delta.days * 86_400 + delta.seconds) * 1000 + ms


_DAY_MS: Final = 86_400_000
_day_text: Final[dict[int, str]] = {}


_recent: Final[dict[int, str]] = {}


def format_ms(ms: int) -> str:
    """Format epoch milliseconds as RFC 3339 UTC (``2026-11-22T08:30:00Z``, ``...:00.250Z`` when not whole)."""
    text = _recent.get(ms)
    if text is None:
        if len(_recent) > 4096:
            _recent.clear()
        text = _recent[ms] = _format(ms)
    return text


def format_ms_or_none(ms: int | None) -> str | None:
    """:func:`format_ms`, or ``None`` for no instant (an output's optional time fields)."""
    return None if ms is None else format_ms(ms)


def _format(ms: int) -> str:
    days = ms // _DAY_MS
    rem = ms - days * _DAY_MS
    day = _day_text.get(days)
    if day is None:
        if len(_day_text) > 100_000:
            _day_text.clear()
        d = date.fromordinal(_EPOCH_ORDINAL + days)
        day = _day_text[days] = f"{d.year:04d}-{d.month:02d}-{d.day:02d}T"
    secs = rem // 1000
    frac = rem - secs * 1000
    two = _TWO_DIGITS  # table lookups and one string build: no int formatting per call (the hot outputs' cost)
    hms = f"{two[secs // 3600]}:{two[secs // 60 % 60]}:{two[secs % 60]}"
    if frac:
        return f"{day}{hms}.{_THREE_DIGITS[frac]}Z"
    return f"{day}{hms}Z"


_TWO_DIGITS: Final = tuple(f"{i:02d}" for i in range(100))
_THREE_DIGITS: Final = tuple(f"{i:03d}" for i in range(1000))
