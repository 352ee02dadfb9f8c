"""Durations written as ``1h30m``, ``15m``, ``90s``, ``2d`` (``d`` = 24h), converted to integer milliseconds."""

from __future__ import annotations

import re
from typing import Final

__all__ = ["format_duration_ms", "parse_duration_ms"]

_UNIT_MS: Final = {"d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1_000}
_TOKEN: Final = re.compile(r"(\d+)([dhms])")
_WHOLE: Final = re.compile(r"^(?:\d+[dhms])+$")


def parse_duration_ms(value: object) -> int:
    """Parse a duration; ``0`` alone (number or text) is accepted without a unit, anything else needs one.

    Units must appear at most once and in descending order (``1h30m``, not ``30m1h``).
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 15m, 1h30m, 90s, 2d")
    if isinstance(value, int) and value == 0:
        return 0
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: a duration needs a unit, e.g. 15m, 1h30m, 90s, 2d")
    text = value.strip().lower().replace(" ", "")
    if text == "0":
        return 0
    if not _WHOLE.match(text):
        raise ValueError(f"invalid duration {value!r}: expected e.g. 15m, 1h30m, 90s, 2d")
    total = 0
    seen: list[str] = []
    for amount, unit in _TOKEN.findall(text):
        if unit in seen or (seen and "dhms".index(unit) < "dhms".index(seen[-1])):
            raise ValueError(f"invalid duration {value!r}: units must appear once each, largest first")
        seen.append(unit)
        total += int(amount) * _UNIT_MS[unit]
    return total


_formatted: Final[dict[int, str]] = {}


def format_duration_ms(ms: int) -> str:
    """The canonical text of a duration (``5400000`` -> ``1h30m``, 40 h -> ``40h``, 48 h -> ``2d``); sub-second
    parts are shown as ``ms``. The text parses back to the same duration."""
    text = _formatted.get(ms)
    if text is None:
        if len(_formatted) > 10_000:
            _formatted.clear()
        text = _formatted[ms] = _format_duration(ms)
    return text


def _format_duration(ms: int) -> str:
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    parts = []
    # Whole days read as days (2d); anything else in hours (40h, not 1d16h: business targets are hours).
    units = "dhms" if ms % _UNIT_MS["d"] == 0 else "hms"
    for unit in units:
        size = _UNIT_MS[unit]
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    if ms:
        parts.append(f"{ms}ms")
    return sign + "".join(parts)
