"""Business-hours arithmetic: exactness across DST, holidays, split days; add/elapsed are inverses."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator.core.calendar import Calendar, parse_interval
from escalator.core.timefmt import format_ms
from escalator.core.timefmt import parse_rfc3339_ms as ms

H = 3_600_000
M = 60_000
NINE_TO_FIVE = [(540, 1020)]
AMS = Calendar(
    "amsterdam-office",
    "Europe/Amsterdam",
    [NINE_TO_FIVE, NINE_TO_FIVE, NINE_TO_FIVE, NINE_TO_FIVE, [(540, 750), (810, 1020)], [], []],
    [date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)],
)
AMS_ALL_DAY = Calendar("ams-24", "Europe/Amsterdam", [[(0, 1440)]] * 7, [date(2026, 12, 25)])
UTC247 = Calendar("always", "UTC")


@pytest.mark.parametrize(
    ("start", "duration_ms", "expected", "why"),
    [
        ("2026-11-23T09:00:00+01:00", 4 * H, "2026-11-23T13:00:00+01:00", "inside one day"),
        ("2026-11-23T16:00:00+01:00", 4 * H, "2026-11-24T12:00:00+01:00", "overnight carry"),
        ("2026-11-27T12:00:00+01:00", 4 * H, "2026-11-27T17:00:00+01:00", "lands exactly on Friday's closing time"),
        ("2026-11-27T12:00:00+01:00", 1 * H, "2026-11-27T14:00:00+01:00", "skips the Friday lunch break"),
        ("2026-11-27T16:00:00+01:00", 2 * H, "2026-11-30T10:00:00+01:00", "weekend skipped"),
        ("2026-11-28T10:00:00+01:00", 1 * H, "2026-11-30T10:00:00+01:00", "starts while closed"),
        ("2026-12-24T16:00:00+01:00", 4 * H, "2026-12-28T12:00:00+01:00", "Christmas holidays + weekend skipped"),
        ("2026-12-31T16:30:00+01:00", 1 * H, "2027-01-04T09:30:00+01:00", "New Year holiday on a Friday"),
        ("2026-03-27T15:00:00+01:00", 4 * H, "2026-03-30T11:00:00+02:00", "spring forward over the weekend"),
        ("2026-10-23T15:00:00+02:00", 4 * H, "2026-10-26T11:00:00+01:00", "fall back over the weekend"),
        ("2026-11-23T17:00:00+01:00", 0, "2026-11-23T17:00:00+01:00", "zero duration is the start itself"),
    ],
)
def test_add_open_business_hours(start: str, duration_ms: int, expected: str, why: str) -> None:
    assert AMS.add_open_ms(ms(start), duration_ms) == ms(expected), why
    if duration_ms:
        assert AMS.elapsed_ms(ms(start), ms(expected)) == duration_ms


@pytest.mark.parametrize(
    ("start", "end", "expected_ms", "why"),
    [
        ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 23 * H, "spring-forward day lasts 23 h"),
        ("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 25 * H, "fall-back day lasts 25 h"),
        ("2026-12-24T12:00:00+01:00", "2026-12-26T12:00:00+01:00", 24 * H, "holiday closed all day"),
    ],
)
def test_elapsed_all_day_calendar_is_real_time(start: str, end: str, expected_ms: int, why: str) -> None:
    assert AMS_ALL_DAY.elapsed_ms(ms(start), ms(end)) == expected_ms, why


def test_elapsed_week_of_business_hours() -> None:
    # Mon..Thu 8 h + Fri 7 h = 39 h
    assert AMS.elapsed_ms(ms("2026-11-23T00:00:00+01:00"), ms("2026-11-30T00:00:00+01:00")) == 39 * H


def test_elapsed_is_zero_for_empty_or_inverted_range() -> None:
    t = ms("2026-11-23T10:00:00Z")
    assert AMS.elapsed_ms(t, t) == 0
    assert AMS.elapsed_ms(t, t - 1) == 0


def test_is_open_is_half_open() -> None:
    assert AMS.is_open(ms("2026-11-23T09:00:00+01:00"))
    assert not AMS.is_open(ms("2026-11-23T17:00:00+01:00"))
    assert not AMS.is_open(ms("2026-11-27T12:45:00+01:00"))  # Friday lunch
    assert not AMS.is_open(ms("2026-12-25T10:00:00+01:00"))  # holiday


def test_spring_forward_gap_interval_maps_forward() -> None:
    # 02:00-03:00 does not exist on 2026-03-29 in Amsterdam; an opening of 02:30-04:00 starts at 03:30 CEST.
    cal = Calendar("night", "Europe/Amsterdam", [[(150, 240)]] * 7)
    assert cal.open_intervals(ms("2026-03-29T00:00:00Z"), ms("2026-03-30T00:00:00Z")) == [
        (ms("2026-03-29T03:30:00+02:00"), ms("2026-03-29T04:00:00+02:00"))
    ]


def test_time_zone_ahead_of_utc() -> None:
    tokyo = Calendar("tokyo", "Asia/Tokyo", [NINE_TO_FIVE] * 5 + [[], []])
    # Monday 09:00 JST is Sunday 00:00 UTC: the local date differs from the UTC date.
    assert tokyo.add_open_ms(ms("2026-11-22T00:00:00Z"), H) == ms("2026-11-23T10:00:00+09:00")


@pytest.mark.parametrize("bad", ["9:00-17:00", "09:00-08:00", "09:00", "25:00-26:00", "09:00-24:30"])
def test_parse_interval_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid opening interval"):
        parse_interval(bad)


def test_parse_interval_allows_24() -> None:
    assert parse_interval("22:00-24:00") == (1320, 1440)


def test_calendar_validation() -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        Calendar("x", "Mars/Olympus")
    with pytest.raises(ValueError, match="at least one opening"):
        Calendar("x", "UTC", [[]] * 7)
    with pytest.raises(ValueError, match="overlap"):
        Calendar("x", "UTC", [[(540, 700), (600, 800)]] + [[]] * 6)


def test_long_durations_cost_days_not_minutes() -> None:
    # 365 days of open time on business hours is ~9.4 years of calendar days; must still be exact.
    start = ms("2026-11-23T09:00:00+01:00")
    end = AMS.add_open_ms(start, 365 * 24 * H)
    assert AMS.elapsed_ms(start, end) == 365 * 24 * H
    assert format_ms(end).startswith("20")


calendars = st.sampled_from(
    [
        AMS,
        AMS_ALL_DAY,
        UTC247,
        Calendar("ny", "America/New_York", [NINE_TO_FIVE] * 5 + [[], []]),
        Calendar("ny-late", "America/New_York", [[(0, 60), (540, 1020), (1020 + 60, 1440)]] * 6 + [[]]),
    ]
)
instants = st.integers(min_value=ms("2025-01-01T00:00:00Z"), max_value=ms("2028-01-01T00:00:00Z"))
durations = st.integers(min_value=0, max_value=200 * H)


@settings(max_examples=300, deadline=None)
@given(cal=calendars, start=instants, duration=durations)
def test_add_then_elapsed_is_identity(cal: Calendar, start: int, duration: int) -> None:
    end = cal.add_open_ms(start, duration)
    assert end >= start
    assert cal.elapsed_ms(start, end) == duration
    if duration > 0:
        # earliest: one millisecond earlier is not enough
        assert cal.elapsed_ms(start, end - 1) == duration - 1


@settings(max_examples=300, deadline=None)
@given(cal=calendars, a=instants, span1=durations, span2=durations)
def test_elapsed_is_additive(cal: Calendar, a: int, span1: int, span2: int) -> None:
    b, c = a + span1, a + span1 + span2
    assert cal.elapsed_ms(a, b) + cal.elapsed_ms(b, c) == cal.elapsed_ms(a, c)


@settings(max_examples=200, deadline=None)
@given(cal=calendars, a=instants, span=durations)
def test_elapsed_then_add_reaches_no_later(cal: Calendar, a: int, span: int) -> None:
    b = a + span
    d = cal.elapsed_ms(a, b)
    assert cal.add_open_ms(a, d) <= b


@settings(max_examples=300, deadline=None)
@given(cal=calendars, mark=instants, left=durations, step=durations)
def test_a_plan_survives_a_checkpoint_before_it(cal: Calendar, mark: int, left: int, step: int) -> None:
    """What ``clocks.reschedule_paused`` relies on to keep a running clock's next threshold through a status change:
    planned from its mark with ``left`` open time to go, or from any checkpoint ``at`` up to that instant with what
    is left then, the threshold is the same instant."""
    due = cal.add_open_ms(mark, left)
    at = min(mark + step, due)
    assert cal.add_open_ms(at, left - cal.elapsed_ms(mark, at)) == due


def _fresh(cal: Calendar) -> Calendar:
    """The same calendar, remembering nothing yet (every answer from a walk over its days)."""
    week = [list(day) for day in cal.week]
    return Calendar(cal.name, cal.timezone, week, sorted(cal.holidays))


# Instants clustered around a few days (so that questions fall inside the interval an earlier one found, and in the
# gaps around it), at minute and millisecond grain.
_near = st.builds(
    lambda day, offset: ms("2026-11-20T00:00:00Z") + day * 86_400_000 + offset,
    st.sampled_from([0, 1, 3, 4, 128, 129, 136, 310]),
    st.one_of(
        st.integers(min_value=-6 * H, max_value=30 * H).map(lambda x: x - x % M),
        st.integers(0, 30 * H),
        st.builds(lambda n, d: n * 30 * M + d, st.integers(-12, 60), st.sampled_from([-1, 0, 1])),
    ),
)
# Spans and durations, some ending on an opening or closing time or a millisecond either side of one.
_spans = st.one_of(
    st.integers(min_value=0, max_value=30 * H),
    st.builds(lambda n, d: max(0, n * 30 * M + d), st.integers(0, 60), st.sampled_from([-1, 0, 1])),
)
_questions = st.lists(
    st.tuples(st.sampled_from(["elapsed", "add"]), _near, _spans),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(cal=calendars, questions=_questions)
def test_what_a_calendar_remembers_never_changes_an_answer(
    cal: Calendar, questions: list[tuple[str, int, int]]
) -> None:
    """A calendar answers from the interval its last walk ended in when a question falls inside it: any sequence of
    questions to one calendar gets the answers a calendar that remembers nothing gives to each (the
    ny-late calendar opens until midnight, so its days spill past their UTC dates)."""
    shared = _fresh(cal)
    for kind, a, x in questions:
        if kind == "elapsed":
            assert shared.elapsed_ms(a, a + x) == _fresh(cal).elapsed_ms(a, a + x), (kind, a, x)
        else:
            assert shared.add_open_ms(a, x) == _fresh(cal).add_open_ms(a, x), (kind, a, x)


def test_questions_at_the_edges_of_the_remembered_interval() -> None:
    """After a walk that ended in Monday's 09:00-17:00 (the interval before it closed on Friday at 17:00), the
    questions a millisecond either side of those edges get the walk's answers."""
    fri_close, mon_open, mon_close = (ms(f"2026-11-{d}+01:00") for d in ("20T17:00:00", "23T09:00:00", "23T17:00:00"))

    def remembering() -> Calendar:
        cal = _fresh(AMS)
        assert cal.elapsed_ms(ms("2026-11-23T08:00:00+01:00"), ms("2026-11-23T10:00:00+01:00")) == H
        assert (cal._gap_s, cal._open_s, cal._open_e) == (fri_close, mon_open, mon_close)  # the premise
        return cal

    assert remembering().add_open_ms(mon_close - H, H) == mon_close
    assert remembering().add_open_ms(mon_close - H, H + 1) == ms("2026-11-24T09:00:00.001+01:00")
    assert remembering().elapsed_ms(mon_close - H, mon_close) == H
    assert remembering().elapsed_ms(mon_close - H, mon_close + 1) == H
    assert remembering().elapsed_ms(fri_close - 1, mon_open + H) == H + 1
    assert remembering().add_open_ms(fri_close - 1, H) == mon_open + H - 1
    assert remembering().elapsed_ms(fri_close, mon_open + H) == H
    assert remembering().add_open_ms(fri_close, H) == mon_open + H
