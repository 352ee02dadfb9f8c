"""Instants: the positional fast path of the RFC 3339 parser agrees with the regex parser on every input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator.core import timefmt
from escalator.core.timefmt import format_ms, parse_rfc3339_ms


def _reference(text: str) -> int | str:
    try:
        return timefmt._parse(text)
    except ValueError as exc:
        return str(exc)


def _fast_then_reference(text: str) -> int | str:
    try:
        return parse_rfc3339_ms(text)
    except ValueError as exc:
        return str(exc)


@settings(max_examples=500)
@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 12, 31)),
    st.sampled_from(["", ".", ".1", ".12", ".123", ".1234", ".123456789", ".1234567890", ".x"]),
    st.sampled_from(["Z", "z", "+00:00", "-05:30", "+24:00", "", "ZZ"]),
    st.sampled_from(["T", "t", " ", "_"]),
)
def test_fast_path_matches_the_regex_parser(moment: datetime, frac: str, zone: str, sep: str) -> None:
    text = moment.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + frac + zone
    fast = timefmt._parse_utc(text)
    assert fast == -1 or fast == timefmt._parse(text)
    assert _fast_then_reference(text) == _reference(text)


@settings(max_examples=500)
@given(st.text(alphabet="0123456789-:.TZ+ ", min_size=18, max_size=32))
def test_fast_path_never_accepts_what_the_regex_parser_rejects(text: str) -> None:
    fast = timefmt._parse_utc(text)
    assert fast == -1 or fast == timefmt._parse(text)
    assert _fast_then_reference(text) == _reference(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-18T11:06:58.066Z", 1_795_000_018_066),
        ("2026-11-18T11:06:58Z", 1_795_000_018_000),
        ("2026-11-18T11:06:58.0669Z", 1_795_000_018_066),  # beyond milliseconds: truncated
        ("2026-11-18T11:06:58.5Z", 1_795_000_018_500),
        ("2024-02-29T00:00:00Z", int(datetime(2024, 2, 29, tzinfo=UTC).timestamp() * 1000)),
    ],
)
def test_known_instants(text: str, expected: int) -> None:
    assert parse_rfc3339_ms(text) == expected
    assert timefmt._parse(text) == expected


@pytest.mark.parametrize("text", ["2026-11-18T11:06:58.Z", "2026-02-30T00:00:00Z", "2026-11-18T24:00:00Z"])
def test_invalid_shapes_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="2026"):
        parse_rfc3339_ms(text)


def test_format_round_trips() -> None:
    for ms in (0, 1_795_000_018_066, 1_795_000_018_000):
        assert parse_rfc3339_ms(format_ms(ms)) == ms
