"""Policy versions in time (issue 12): a version switches at its effective instant, for open tickets (re-planned,
elapsed time kept, fired thresholds stay fired) or for new tickets only; the simulator equals step-by-step
application across a switch, whenever the ticks fall; a single version is exactly the engine."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.core import (
    Emit,
    Event,
    IncidentSignal,
    IncidentWindow,
    TicketState,
    encode_event,
    load_policy_text,
    observe,
    window_key,
)
from escalator.core.engine import apply, next_deadline, rebase, replan_at
from escalator.core.versions import (
    NEW_TICKETS,
    OPEN_TICKETS,
    PolicyVersion,
    PolicyVersions,
    advance_versioned,
    apply_versioned,
    next_deadline_versioned,
    policies_in_use,
)
from escalator.replay import simulate
from tests.support import EXAMPLE_POLICY, comment, created, example_policy, ms, status
from tests.unit.test_properties import _V2, lifecycles
from tests.unit.test_properties import PS as V2
from tests.unit.test_replay_simulate import START, arrivals, by_key

PS = example_policy()
TEXT = EXAMPLE_POLICY.read_text()
# The VIP policy tightened after an incident: resolution 4h -> 2h, first response 15m -> 5m.
TIGHT = load_policy_text(
    TEXT.replace("targets: {first_response: 15m, next_reply: 30m, periodic_update: 1h, resolution: 4h}",
                 "targets: {first_response: 5m, next_reply: 30m, periodic_update: 1h, resolution: 2h}"),
    "tight.yaml",
)  # fmt: skip
# ... and loosened (a new contract tier): resolution 8h.
LOOSE = load_policy_text(TEXT.replace("resolution: 4h}", "resolution: 8h}"), "loose.yaml")


def versions(*changes: tuple[str, Any, str]) -> PolicyVersions:
    return PolicyVersions(
        PolicyVersion(PS),
        [PolicyVersion(p, ms(at), applies_to, seq=i) for i, (at, p, applies_to) in enumerate(changes, 1)],
    )


def outputs(events: list[Event], vs: PolicyVersions | Any, until: str) -> dict[str, str]:
    return {c.id: c.event["time"] for c in simulate(events, vs, until_ms=ms(until)) if isinstance(c, Emit)}


def test_versions_differ_and_a_single_version_is_the_engine() -> None:
    assert len({PS.version, TIGHT.version, LOOSE.version}) == 3
    events = [
        created("2026-11-23T09:00:00Z"),
        comment("2026-11-23T09:20:00Z"),
        status("2026-11-23T12:00:00Z", "solved"),
    ]
    assert outputs(events, PolicyVersions.of(PS), "2026-11-24T00:00:00Z") == outputs(events, PS, "2026-11-24T00:00:00Z")


def test_an_open_tickets_version_replans_open_tickets_at_its_instant() -> None:
    vs = versions(("2026-11-23T10:00:00Z", TIGHT, OPEN_TICKETS))
    got = outputs([created("2026-11-23T09:00:00Z")], vs, "2026-11-23T16:00:00Z")
    # before 10:00 the old version: first response 15m breached at 09:15; resolution 4h warned at 50% (11:00 under
    # the old plan) never happens: from 10:00 the target is 2h, elapsed 1h kept -> warn 0.5 at 10:00 (overdue at the
    # switch: stamped with it), warn 0.8 at 10:36, breach at 11:00
    assert got["T1:first_response:1:breach"] == "2026-11-23T09:15:00Z"
    assert got["T1:resolution:1:warn:0.5"] == "2026-11-23T10:00:00Z"
    assert got["T1:resolution:1:warn:0.8"] == "2026-11-23T10:36:00Z"
    assert got["T1:resolution:1:breach"] == "2026-11-23T11:00:00Z"
    old = outputs([created("2026-11-23T09:00:00Z")], PS, "2026-11-23T16:00:00Z")
    assert old["T1:resolution:1:breach"] == "2026-11-23T13:00:00Z"
    # outputs before the switch name the old version, the later ones the new one
    emits = list(simulate([created("2026-11-23T09:00:00Z")], vs, ms("2026-11-23T16:00:00Z")))
    stamped = {c.id: c.event["data"]["policy"]["version"] for c in emits if isinstance(c, Emit)}
    assert stamped["T1:first_response:1:breach"] == PS.version
    assert stamped["T1:resolution:1:breach"] == TIGHT.version


def test_a_replan_forgets_the_next_deadline_noted_before_it() -> None:
    """apply/advance note the ticket's next threshold instant; a version switch (or a rebase) re-plans the clocks
    and must not leave the old instant for next_deadline (the live worker would wake the ticket too late)."""
    s, _ = apply(None, created("2026-11-23T09:00:00Z"), PS)
    assert next_deadline(s, PS) == ms("2026-11-23T09:07:30Z")  # noted: first response 50 % of 15m
    replan_at(s, ms("2026-11-23T10:00:00Z"), PS, TIGHT, [])
    walked = next_deadline(TicketState.from_row(orjson.loads(orjson.dumps(s.to_row()))), TIGHT)
    assert next_deadline(s, TIGHT) == walked == ms("2026-11-23T10:00:00Z")  # resolution: 1h of 2h, overdue
    s, _ = apply(None, created("2026-11-23T09:00:00Z"), PS)
    rebase(s, TIGHT)
    assert next_deadline(s, TIGHT) == ms("2026-11-23T09:02:30Z")  # first response 50 % of 5m


def test_fired_thresholds_stay_fired_and_a_looser_version_moves_the_rest_later() -> None:
    vs = versions(("2026-11-23T11:30:00Z", LOOSE, OPEN_TICKETS))
    got = outputs([created("2026-11-23T09:00:00Z")], vs, "2026-11-23T20:00:00Z")
    assert got["T1:resolution:1:warn:0.5"] == "2026-11-23T11:00:00Z"  # fired under the old version, not again
    assert got["T1:resolution:1:warn:0.8"] == "2026-11-23T15:24:00Z"  # 0.8 x 8h
    assert got["T1:resolution:1:breach"] == "2026-11-23T17:00:00Z"


def test_a_new_tickets_version_leaves_open_tickets_alone() -> None:
    vs = versions(("2026-11-23T10:00:00Z", TIGHT, NEW_TICKETS))
    events = [created("2026-11-23T09:00:00Z", "OLD"), created("2026-11-23T10:00:00Z", "NEW")]
    got = outputs(events, vs, "2026-11-23T16:00:00Z")
    assert got["OLD:resolution:1:breach"] == "2026-11-23T13:00:00Z"
    assert got["NEW:resolution:1:breach"] == "2026-11-23T12:00:00Z"  # created at the instant: the new version
    assert vs.governing(ms("2026-11-23T09:00:00Z"), ms("2026-11-23T15:00:00Z")).policies is PS
    assert [v.policies for v in vs.in_force(ms("2026-11-23T15:00:00Z"))] == [PS, TIGHT]
    # an open_tickets version later replaces both
    vs2 = vs.adding(PolicyVersion(LOOSE, ms("2026-11-23T11:00:00Z"), OPEN_TICKETS, seq=9))
    assert [v.policies for v in vs2.in_force(ms("2026-11-23T11:00:00Z"))] == [LOOSE]
    got2 = outputs(events, vs2, "2026-11-23T20:00:00Z")
    assert got2["OLD:resolution:1:breach"] == "2026-11-23T17:00:00Z"
    assert got2["NEW:resolution:1:breach"] == "2026-11-23T18:00:00Z"


def test_at_the_switch_instant_the_switch_comes_first_then_the_event_then_the_thresholds() -> None:
    # The first response target drops from 15m to 5m at 09:10, when 10 minutes have passed: overdue at 09:10. A
    # reply at exactly 09:10 is applied after the switch and before the thresholds at 09:10: it meets the target.
    vs = versions(("2026-11-23T09:10:00Z", TIGHT, OPEN_TICKETS))
    got = outputs([created("2026-11-23T09:00:00Z"), comment("2026-11-23T09:10:00Z")], vs, "2026-11-23T09:30:00Z")
    assert not any(k.startswith("T1:first_response") and "warn" not in k for k in got)
    # the 50 % warning of the old plan (09:07:30) fired before the switch; the new plan's 80 % (4m) is overdue at
    # the switch, and the reply comes first
    assert got["T1:first_response:1:warn:0.5"] == "2026-11-23T09:07:30Z"
    assert "T1:first_response:1:warn:0.8" not in got
    # without the reply, the thresholds the switch made overdue fire at the switch instant
    got = outputs([created("2026-11-23T09:00:00Z")], vs, "2026-11-23T09:30:00Z")
    assert got["T1:first_response:1:breach"] == "2026-11-23T09:10:00Z"
    # a version effective at a ticket's creation instant governs it from the start
    vs = versions(("2026-11-23T09:00:00Z", TIGHT, OPEN_TICKETS))
    got = outputs([created("2026-11-23T09:00:00Z")], vs, "2026-11-23T09:30:00Z")
    assert got["T1:first_response:1:breach"] == "2026-11-23T09:05:00Z"


def test_the_switch_is_a_deadline_and_a_version_published_late_is_adopted_at_the_watermark() -> None:
    vs = versions(("2026-11-23T10:00:00Z", LOOSE, OPEN_TICKETS))
    state, _ = apply_versioned(None, created("2026-11-23T09:00:00Z"), vs)
    state, _ = advance_versioned(state, ms("2026-11-23T09:59:00Z"), vs)
    before = state
    assert next_deadline_versioned(state, vs) == ms("2026-11-23T10:00:00Z")  # before the 11:00 warning
    state, cmds = advance_versioned(state, ms("2026-11-23T10:00:00Z"), vs)
    assert cmds == [] and state.policy_version == LOOSE.version and state.watermark_ms == ms("2026-11-23T10:00:00Z")
    assert policies_in_use(state, vs) is LOOSE
    # a solved ticket has nothing to re-plan: no wake for a switch
    done, _ = apply_versioned(state, status("2026-11-23T10:30:00Z", "solved"), vs)
    vs2 = vs.adding(PolicyVersion(TIGHT, ms("2026-11-23T12:00:00Z"), OPEN_TICKETS, seq=5))
    assert next_deadline_versioned(done, vs2) is None
    # a version effective before the ticket's watermark (read late): due at once, adopted at the watermark
    late = versions(("2026-11-23T09:30:00Z", TIGHT, OPEN_TICKETS))
    assert before.watermark_ms == ms("2026-11-23T09:45:00Z")  # the L2 step fired at 09:45
    assert next_deadline_versioned(before, late) == before.watermark_ms
    adopted, cmds = advance_versioned(before, before.watermark_ms, late)
    assert adopted.policy_version == TIGHT.version and adopted.watermark_ms == before.watermark_ms
    _, cmds = advance_versioned(adopted, ms("2026-11-23T10:00:00Z"), late)
    assert {c.id: c.event["time"] for c in cmds if isinstance(c, Emit)} == {
        "T1:resolution:1:warn:0.5": "2026-11-23T10:00:00Z"  # 1h of the new 2h
    }


def test_a_duplicate_moves_nothing_across_a_switch() -> None:
    vs = versions(("2026-11-23T10:00:00Z", TIGHT, OPEN_TICKETS))
    first = created("2026-11-23T09:00:00Z")
    state, _ = apply_versioned(None, first, vs)
    again, cmds = apply_versioned(state, first, vs)
    assert again is state and [type(c).__name__ for c in cmds] == ["Ignored"]


def live(events: list[Event], vs: PolicyVersions, end: int, ticks: list[int | None]) -> list[Emit]:
    """The live service step by step (as in test_replay_simulate), under versions."""
    tickets: dict[str, TicketState] = {}
    windows: dict[str, IncidentWindow] = {}
    out: list[Any] = []

    def take(cmds: list[Any]) -> None:
        for c in cmds:
            out.append(c)
            if isinstance(c, IncidentSignal):
                key = window_key(c.rule_id, c.group_value)
                windows[key], emits = observe(windows.get(key), c, vs.for_new(c.time_ms))
                out.extend(emits)

    def tick(at: int) -> None:
        for tid in sorted(tickets):
            tickets[tid], cmds = advance_versioned(tickets[tid], at, vs)
            take(cmds)

    for i, e in enumerate(events):
        extra = ticks[i] if i < len(ticks) else None
        if extra is not None:
            tick(min(extra, e.time_ms - 1))
        tick(e.time_ms - 1)
        tickets[e.ticket_id], cmds = apply_versioned(tickets.get(e.ticket_id), e, vs)
        take(cmds)
    tick(end)
    return [c for c in out if isinstance(c, Emit)]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=arrivals(), data=st.data())
def test_simulate_equals_step_by_step_core_across_policy_changes(events: list[Event], data: Any) -> None:
    n = data.draw(st.integers(min_value=1, max_value=3))
    changes = [
        PolicyVersion(
            data.draw(st.sampled_from([PS, TIGHT, LOOSE])),
            START + data.draw(st.integers(min_value=0, max_value=12 * 3600)) * 1000,
            data.draw(st.sampled_from([OPEN_TICKETS, NEW_TICKETS])),
            seq=i,
        )
        for i in range(n)
    ]
    vs = PolicyVersions(PolicyVersion(PS), changes)
    end = max(e.time_ms for e in events) + data.draw(st.integers(min_value=0, max_value=2 * 86_400)) * 1000
    ticks = data.draw(st.lists(st.one_of(st.none(), st.integers(min_value=START, max_value=end)), max_size=len(events)))
    got = [c for c in simulate(events, vs, until_ms=end) if isinstance(c, Emit)]
    expected = live(events, vs, end, ticks)
    assert by_key(got) == by_key(expected)
    assert sorted(encode_event(e.event) for e in got) == sorted(encode_event(e.event) for e in expected)
    ids = [e.id for e in got]
    assert len(ids) == len(set(ids))


# -- ticks never change outputs across changes: with agreements, defined metrics, zoned calendars, catch_up ----------


V2_TIGHT = load_policy_text(
    _V2.replace("targets: {first_response: 30m, resolution: 2h}", "targets: {first_response: 20m, resolution: 1h}")
    .replace("resolution: 4h, time_to_assign: 20m", "resolution: 2h, time_to_assign: 5m")
    .replace(
        "calendar: always\n    targets: {first_response: 15m", "calendar: local\n    targets: {first_response: 15m"
    ),
    "example-v2-tight.yaml",
)


def _encoded(cmds: list[Any]) -> list[bytes]:
    return [encode_event(c.event) for c in cmds if isinstance(c, Emit)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=lifecycles(), data=st.data())
def test_ticks_and_state_round_trips_do_not_change_outputs_across_changes(events: list[Event], data: Any) -> None:
    assert V2_TIGHT.version != V2.version
    first, last = min(e.time_ms for e in events), max(e.time_ms for e in events)
    changes = [
        PolicyVersion(
            data.draw(st.sampled_from([V2_TIGHT, PS, V2])),
            data.draw(st.integers(min_value=first - 3_600_000, max_value=last + 3_600_000)),
            data.draw(st.sampled_from([OPEN_TICKETS, NEW_TICKETS])),
            seq=i,
        )
        for i in range(data.draw(st.integers(min_value=1, max_value=3)))
    ]
    vs = PolicyVersions(PolicyVersion(V2), changes)
    end = last + 2 * 86_400_000
    # replay: events only, then the end
    state: TicketState | None = None
    expected: list[bytes] = []
    for e in events:
        state, cmds = apply_versioned(state, e, vs)
        expected += _encoded(cmds)
    assert state is not None
    state, cmds = advance_versioned(state, end, vs)
    expected += _encoded(cmds)
    # live: timer ticks between events (at the deadline or anywhere before the next event), states stored as JSON
    live_state: TicketState | None = None
    out: list[bytes] = []
    for i, e in enumerate(events):
        live_state, cmds = apply_versioned(live_state, e, vs)
        out += _encoded(cmds)
        live_state = TicketState.from_dict(orjson.loads(orjson.dumps(live_state.to_dict())))
        if i + 1 < len(events) and data.draw(st.booleans()):
            nxt = events[i + 1].time_ms
            due = next_deadline_versioned(live_state, vs)
            low = live_state.watermark_ms
            tick = (
                due
                if due is not None and due < nxt and data.draw(st.booleans())
                else data.draw(st.integers(min_value=low, max_value=max(low, nxt - 1)))
            )
            live_state, cmds = advance_versioned(live_state, tick, vs)
            out += _encoded(cmds)
    assert live_state is not None
    live_state, cmds = advance_versioned(live_state, end, vs)
    assert out + _encoded(cmds) == expected
