"""SLA model v2, per-ticket calendars: hours read in the requester's time zone, a calendar picked by the ticket's
group, a calendar change mid-cycle keeping the open time measured so far."""

from __future__ import annotations

import orjson
import pytest

from escalator.core import DecodeError, PolicyError, decode_record, load_policy_text
from escalator.core.views import describe
from tests.support import created, envelope, ev, fired, ms, run

POLICY = """
version: 1
calendars:
  local-office:
    timezone: requester
    fallback_timezone: Europe/Amsterdam
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"],
            fri: ["09:00-17:00"]}
  amsterdam: {timezone: Europe/Amsterdam, hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"],
              thu: ["09:00-17:00"], fri: ["09:00-17:00"]}}
  newyork: {timezone: America/New_York, hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"],
            thu: ["09:00-17:00"], fri: ["09:00-17:00"]}}
policies:
  - id: follow-the-sun
    match: {priority: [high]}
    calendar: local-office
    targets: {first_response: 2h}
  - id: by-group
    match: {}
    calendar: {by_group: {emea: amsterdam, amer: newyork}, default: always}
    targets: {first_response: 2h}
"""
PS = load_policy_text(POLICY, "calendars.yaml")
FRIDAY_4PM_NEW_YORK = "2026-10-30T20:00:00Z"  # EDT (UTC-4); the US leaves daylight time on Sunday 1 November


def breach_at(cmds: list[object]) -> str:
    return fired(cmds)["T1:first_response:1:breach"]


def test_the_requesters_zone_is_used_across_a_dst_change() -> None:
    """1 h on Friday 16:00-17:00 New York, the second hour on Monday 09:00-10:00 New York, now EST (UTC-5)."""
    ticket = ev("created", FRIDAY_4PM_NEW_YORK, priority="high", requester={"id": "r1", "timezone": "America/New_York"})
    _, cmds = run([ticket], PS, until="2026-11-03T00:00:00Z")
    assert breach_at(cmds) == "2026-11-02T15:00:00Z"


def test_without_a_requester_zone_the_fallback_zone_is_used() -> None:
    # Friday 21:00 in Amsterdam (CET) is after hours: the two hours are Monday 09:00-11:00 CET = 08:00-10:00Z
    _, cmds = run([created(FRIDAY_4PM_NEW_YORK, priority="high")], PS, until="2026-11-03T00:00:00Z")
    assert breach_at(cmds) == "2026-11-02T10:00:00Z"


def test_a_zone_learnt_mid_cycle_keeps_the_open_time_measured_so_far() -> None:
    """Created Monday 09:00 Amsterdam (08:00Z) without a zone: 1 h counted on Amsterdam hours by 09:00Z; then the
    requester turns out to be in New York (09:00Z = 04:00 there, closed): the last hour is 09:00-10:00 New York."""
    events = [
        created("2026-11-02T08:00:00Z", priority="high"),
        ev("updated", "2026-11-02T09:00:00Z", changes={"requester_timezone": "America/New_York"}),
    ]
    state, cmds = run(events, PS, until="2026-11-03T00:00:00Z")
    assert breach_at(cmds) == "2026-11-02T15:00:00Z"
    assert state is not None and state.requester_timezone == "America/New_York"


def test_the_group_picks_the_calendar_and_a_reassignment_keeps_the_elapsed_time() -> None:
    """emea (Amsterdam) from Monday 08:00Z: 30 min by 08:30Z; reassigned to amer (New York, opens 14:00Z): the
    remaining 1 h 30 min run 14:00-15:30Z."""
    events = [
        created("2026-11-02T08:00:00Z", priority="normal", group="emea"),
        ev("updated", "2026-11-02T08:30:00Z", changes={"group": "amer"}),
    ]
    _, cmds = run(events, PS, until="2026-11-03T00:00:00Z")
    assert breach_at(cmds) == "2026-11-02T15:30:00Z"
    state, _ = run(events, PS)
    assert state is not None
    view = describe(state, PS, ms("2026-11-02T12:00:00Z"))
    clock = view["clocks"][0]  # type: ignore[index]
    assert clock["elapsed_seconds"] == 30 * 60  # New York is still closed at 12:00Z


def test_a_group_without_a_calendar_uses_the_default() -> None:
    _, cmds = run([created("2026-11-01T10:00:00Z", priority="normal", group="apac")], PS, until="2026-11-02T00:00:00Z")
    assert breach_at(cmds) == "2026-11-01T12:00:00Z"  # always: a Sunday counts


def test_an_unknown_requester_zone_is_a_schema_violation() -> None:
    doc = envelope("ticket.created", "2026-11-02T08:00:00Z", data={"priority": "high", "requester": {"id": "r"}})
    doc["data"]["requester"]["timezone"] = "Mars/Olympus_Mons"
    with pytest.raises(DecodeError) as err:
        decode_record(orjson.dumps(doc))
    assert err.value.reason == "schema_violation" and "Mars/Olympus_Mons" in err.value.detail


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "version: 1\ncalendars:\n  c: {timezone: requester}\npolicies:\n  - {id: p, targets: {resolution: 1h}}\n",
            "x.yaml:3:3: calendars.c: timezone: requester needs a fallback_timezone",
        ),
        (
            "version: 1\ncalendars:\n  c: {timezone: UTC, fallback_timezone: UTC}\n"
            "policies:\n  - {id: p, targets: {resolution: 1h}}\n",
            "x.yaml:3:3: calendars.c: fallback_timezone is only used with timezone: requester",
        ),
        (
            "version: 1\npolicies:\n  - id: p\n    targets: {resolution: 1h}\n"
            "    calendar: {by_group: {emea: nowhere}}\n",
            "x.yaml:5:27: policies[0].calendar.by_group.emea: unknown calendar 'nowhere'",
        ),
        (
            "version: 1\ncalendars:\n  c: {timezone: requester, fallback_timezone: Nowhere/City}\n"
            "policies:\n  - {id: p, targets: {resolution: 1h}}\n",
            "x.yaml:3:28: calendars.c.fallback_timezone: unknown time zone 'Nowhere/City'",
        ),
    ],
)
def test_calendar_errors_name_file_line_and_field(text: str, where: str) -> None:
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, "x.yaml")
    assert str(err.value.issues[0]).startswith(where), str(err.value.issues[0])
