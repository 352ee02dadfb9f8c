"""Property tests: the engine is deterministic and indifferent to how time is chopped up.

* replaying the same events gives byte-identical outputs;
* advancing in any sequence of smaller steps gives the same outputs and state as one step;
* timer ticks interleaved between events (as the live service does) change nothing (live == replay);
* storing the state (to_dict -> JSON -> from_dict) between any two steps changes nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.core import Emit, Event, TicketState, advance, apply, encode_event, load_policy_text, next_deadline
from escalator.core.events import decode_record
from escalator.core.plan import READS_ALL
from escalator.core.timefmt import format_ms
from tests.support import EXAMPLE_POLICY, envelope, example_policy, ms

# The example policy with the SLA model v2 constructs switched on for vip-urgent (a step before the target,
# catch_up: latest), so the properties cover them too; the default policy keeps catch_up: all.
_V2 = (
    EXAMPLE_POLICY.read_text()
    .replace(
        "    requester_updates: true",
        "    requester_updates: true\n    catch_up: latest\n    resolve_events: true\n    follow_up: {after: 2h}",
        1,
    )
    .replace(
        "targets: {first_response: 15m, next_reply: 30m, periodic_update: 1h, resolution: 4h}",
        "targets: {first_response: 15m, next_reply: 30m, periodic_update: 1h, resolution: 4h, time_to_assign: 20m,"
        " hold_time: 1h}",
        1,
    )
    .replace(
        "calendars:\n",
        "calendars:\n  local: {timezone: requester, fallback_timezone: Europe/Amsterdam,"
        " hours: {mon: ['08:00-18:00'], tue: ['08:00-18:00'], wed: ['08:00-18:00']}}\n",
        1,
    )
    .replace(
        "      - {after: 0m, level: 1, notify: [{role: team_lead}]}\n      - {after: 30m",
        "      - {after: -5m, level: 1, notify: [{role: team_lead}]}\n      - {after: 30m",
        1,
    )
)
_V2 += """
requests:
  max_level: {requester: 1, agent: 2}
  teams: {legal: [{team: legal-ops}]}
metrics:
  time_to_assign: {start: {}, stop: {assignee_set: true}}
  hold_time: {start: {status: [on_hold]}, stop: {status: [open]}, pause_on: [], on_reopen: restart}
  resolution: {on_reopen: restart}
agreements:
  - id: ola
    per: group
    policies:
      - id: tier2-ola
        match: {group: [tier2]}
        targets: {first_response: 30m, resolution: 2h}
        warn_at: [0.5]
        catch_up: latest
        escalation: [{after: -10m, level: 1, notify: [{group: tier2}]}, {after: 0m, level: 2, notify: [{role: lead}]}]
      - {id: any-ola, match: {}, calendar: local, targets: {resolution: 6h}, warn_at: [0.5]}
  - id: legal
    policies:
      - {id: legal-clock, match: {tags_any: [legal]}, targets: {resolution: 1d}, warn_at: [0.5]}
"""
PS = load_policy_text(_V2, "example-v2.yaml")
assert any(p.catch_up_latest for p in PS.policies) and PS.version != example_policy().version
START = ms("2026-11-20T08:00:00Z")

actions = st.sampled_from(
    [
        ("commented", {"author": "agent"}),
        ("commented", {"author": "agent"}),
        ("commented", {"author": "requester"}),
        ("commented", {"author": "requester"}),
        ("commented", {"author": "agent", "public": False}),
        ("status_changed", {"status": "pending"}),
        ("status_changed", {"status": "open"}),
        ("status_changed", {"status": "on_hold"}),
        ("status_changed", {"status": "solved"}),
        ("status_changed", {"status": "closed"}),
        ("updated", {"changes": {"priority": "normal"}}),
        ("updated", {"changes": {"priority": "urgent"}}),
        ("updated", {"changes": {"tags": ["legal"]}}),
        ("updated", {"changes": {"tags": []}}),
        ("updated", {"changes": {"group": "tier2"}}),
        ("updated", {"changes": {"group": "tier1"}}),
        ("updated", {"changes": {"assignee": "ann"}}),
        ("updated", {"changes": {"assignee": None}}),
        ("updated", {"changes": {"requester_timezone": "Asia/Tokyo"}}),
        ("escalation_acknowledged", {"by": "lead"}),
        ("escalation_requested", {}),
        ("escalation_requested", {"by": "agent", "team": "legal", "reason": "contract"}),
        ("escalation_requested", {"by": "requester"}),
        ("deescalated", {"by": "kim"}),
        ("deescalated", {"by": "kim", "level": 2}),
        ("rated", {"score": 1}),
        ("rated", {"score": 5}),
    ]
)
# gaps between events in seconds; sometimes negative (out of order)
gaps = st.integers(min_value=-600, max_value=4 * 3600)


@st.composite
def lifecycles(draw: Any) -> list[Event]:
    tier = draw(st.sampled_from(["vip", "standard"]))
    priority = draw(st.sampled_from(["urgent", "normal", "low"]))
    t = START + draw(st.integers(min_value=0, max_value=7 * 86_400)) * 1000
    created: dict[str, Any] = {"priority": priority, "requester": {"id": "r", "tier": tier}, "product": "mail"}
    group = draw(st.sampled_from([None, "tier1", "tier2"]))
    if group is not None:
        created["group"] = group
    zone = draw(st.sampled_from([None, "America/New_York"]))
    if zone is not None:
        created["requester"]["timezone"] = zone
    docs = [envelope("ticket.created", format_ms(t), "T1", created)]
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        t += draw(gaps) * 1000
        etype, data = draw(actions)
        docs.append(envelope(f"ticket.{etype}", format_ms(t), "T1", data))
        if draw(st.integers(0, 9)) == 0:
            docs.append(dict(docs[-1]))  # a redelivered duplicate
    return [decode_record(orjson.dumps(d)) for d in docs]


def encoded(cmds: list[Any]) -> list[bytes]:
    return [encode_event(c.event) for c in cmds if isinstance(c, Emit)]


def replay(events: list[Event], until: int) -> tuple[TicketState, list[bytes]]:
    state: TicketState | None = None
    out: list[bytes] = []
    for e in events:
        state, cmds = apply(state, e, PS)
        out += encoded(cmds)
    assert state is not None
    state, cmds = advance(state, until, PS)
    return state, out + encoded(cmds)


def horizon(events: list[Event]) -> int:
    return max(e.time_ms for e in events) + 2 * 86_400_000


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(events=lifecycles())
def test_replay_is_byte_identical(events: list[Event]) -> None:
    a_state, a = replay(events, horizon(events))
    b_state, b = replay(events, horizon(events))
    assert a == b
    assert a_state.to_dict() == b_state.to_dict()
    assert len(set(a)) == len(a), "an output id/content was emitted twice"
    ids = [orjson.loads(x)["id"] for x in a]
    assert len(set(ids)) == len(ids), "the same id was emitted twice"


@SETTINGS
@given(events=lifecycles(), cuts=st.lists(st.integers(min_value=0, max_value=3 * 86_400_000), max_size=12))
def test_advance_in_steps_equals_one_step(events: list[Event], cuts: list[int]) -> None:
    state: TicketState | None = None
    for e in events:
        state, _ = apply(state, e, PS)
    assert state is not None
    end = horizon(events)
    one_state, one = advance(state, end, PS)
    stepped_state, stepped = state, []
    base = max(e.time_ms for e in events)
    for cut in sorted(cuts):
        stepped_state, cmds = advance(stepped_state, base + cut - 86_400_000, PS)
        stepped += cmds
    stepped_state, cmds = advance(stepped_state, end, PS)
    stepped += cmds
    assert encoded(stepped) == encoded(one)
    assert stepped_state.to_dict() == one_state.to_dict()


@SETTINGS
@given(events=lifecycles(), data=st.data())
def test_ticks_between_events_do_not_change_outputs(events: list[Event], data: Any) -> None:
    """The live service advances tickets on timer ticks between events; replay does not. Same outputs."""
    end = horizon(events)
    _, expected = replay(events, end)
    state: TicketState | None = None
    out: list[bytes] = []
    for i, e in enumerate(events):
        state, cmds = apply(state, e, PS)
        out += encoded(cmds)
        if i + 1 < len(events) and data.draw(st.booleans()):
            nxt = events[i + 1].time_ms
            due = next_deadline(state, PS)
            # a tick at the deadline (as the timer sends it) or at any instant before the next event
            tick = (
                due
                if due is not None and due < nxt and data.draw(st.booleans())
                else data.draw(st.integers(min_value=state.watermark_ms, max_value=max(state.watermark_ms, nxt - 1)))
            )
            state, cmds = advance(state, tick, PS)
            out += encoded(cmds)
    assert state is not None
    state, cmds = advance(state, end, PS)
    assert out + encoded(cmds) == expected


@SETTINGS
@given(events=lifecycles())
def test_state_round_trip_changes_nothing(events: list[Event]) -> None:
    end = horizon(events)
    _, expected = replay(events, end)
    state: TicketState | None = None
    out: list[bytes] = []
    for e in events:
        state, cmds = apply(state, e, PS)
        out += encoded(cmds)
        state = TicketState.from_dict(orjson.loads(orjson.dumps(state.to_dict())))
    assert state is not None
    state, cmds = advance(state, end, PS)
    assert out + encoded(cmds) == expected


@SETTINGS
@given(events=lifecycles())
def test_testing_only_the_triggers_an_event_can_change_gives_what_testing_them_all_gives(events: list[Event]) -> None:
    """apply tests on an event only the triggers that read something the event can change; a ticket whose tested
    version is forgotten before every event (so that every trigger is tested each time) ends the same, outputs,
    trigger bookkeeping and state alike."""
    end = horizon(events)
    expected_state, expected = replay(events, end)
    state: TicketState | None = None
    out: list[bytes] = []
    for e in events:
        if state is not None:
            state.triggers_version = ""
        state, cmds = apply(state, e, PS)
        out += encoded(cmds)
    assert state is not None
    state, cmds = advance(state, end, PS)
    assert out + encoded(cmds) == expected
    assert state == expected_state
    assert PS.triggers and any(t.reads != READS_ALL for t in PS.triggers)


@SETTINGS
@given(events=lifecycles())
def test_apply_never_mutates_its_input(events: list[Event]) -> None:
    state: TicketState | None = None
    for e in events:
        before = None if state is None else orjson.dumps(state.to_dict())
        new_state, _ = apply(state, e, PS)
        if state is not None:
            assert orjson.dumps(state.to_dict()) == before
            _later, _ = advance(new_state, horizon(events), PS)
            assert orjson.dumps(state.to_dict()) == before
        state = new_state


@SETTINGS
@given(events=lifecycles(), data=st.data())
def test_copy_on_write_never_alters_the_callers_state_and_in_place_gives_the_same(
    events: list[Event], data: Any
) -> None:
    """The engine changes clocks in place on a state it owns: copy-on-write must leave every state it was given as it
    was, and handing the state over (``in_place``, the simulator's mode) must give the same outputs and state."""
    cow: TicketState | None = None
    own: TicketState | None = None
    cow_out: list[bytes] = []
    own_out: list[bytes] = []
    for e in events:
        tick = data.draw(st.integers(min_value=0, max_value=3_600_000))
        if cow is not None and own is not None:
            before = cow.to_dict()
            cow_next, cmds = advance(cow, e.time_ms - tick, PS)
            assert cow.to_dict() == before
            cow, cow_out = cow_next, cow_out + encoded(cmds)
            own, cmds = advance(own, e.time_ms - tick, PS, in_place=True)
            own_out += encoded(cmds)
        before = None if cow is None else cow.to_dict()
        cow_next, cmds = apply(cow, e, PS)
        assert cow is None or cow.to_dict() == before
        cow, cow_out = cow_next, cow_out + encoded(cmds)
        own, cmds = apply(own, e, PS, in_place=True)
        own_out += encoded(cmds)
    assert cow is not None and own is not None
    end = horizon(events)
    before = cow.to_dict()
    cow_next, cmds = advance(cow, end, PS)
    assert cow.to_dict() == before
    own, more = advance(own, end, PS, in_place=True)
    assert own_out + encoded(more) == cow_out + encoded(cmds)
    assert own.to_dict() == cow_next.to_dict()


def _walked(s: TicketState, policy: Any) -> int | None:
    """The next deadline found by walking the clocks (a state read back from its stored form has no noted one)."""
    return next_deadline(TicketState.from_row(orjson.loads(orjson.dumps(s.to_row()))), policy)


@SETTINGS
@given(events=lifecycles(), data=st.data())
def test_the_next_deadline_noted_by_apply_and_advance_is_the_one_the_clocks_give(
    events: list[Event], data: Any
) -> None:
    """apply/advance note the ticket's next threshold instant from their last pass over its clocks (so that
    next_deadline need not walk them again): it must always be the instant a walk finds -- with the example policy
    (no agreements: the noted instant is used) and the v2 one (agreement instances: it is not)."""
    policy = data.draw(st.sampled_from([example_policy(), PS]))
    state: TicketState | None = None
    for e in events:
        if state is not None:
            tick = data.draw(st.integers(min_value=0, max_value=3_600_000))
            state, _ = advance(state, e.time_ms - tick, policy, in_place=data.draw(st.booleans()))
            assert next_deadline(state, policy) == _walked(state, policy)
        state, _ = apply(state, e, policy, in_place=data.draw(st.booleans()))
        assert next_deadline(state, policy) == _walked(state, policy)
    assert state is not None
    state, _ = advance(state, horizon(events), policy)
    assert next_deadline(state, policy) == _walked(state, policy)


def _stale_clocks(s: TicketState, policy: Any) -> list[str]:
    """The clocks (the ticket's and its agreement instances') whose cached next threshold is not the one their
    state gives now: the engine keeps every planned clock's (instant, key) current, and re-plans only the clocks
    an event could have moved."""
    from escalator.core.clocks import is_paused, next_of
    from escalator.core.engine import effective_policy

    sets = [(s, policy)]
    by_id = {a.id: a.policies for a in policy.agreements}
    sets += [(inst, by_id[key.split("@", 1)[0]]) for key, inst in s.agreements.items()]
    stale = []
    for t, ps in sets:
        pol = effective_policy(t, ps)
        for c in t.clocks:
            if c.planned() and (c.next_at_ms, c.next_key) != next_of(c, pol, is_paused(t, pol, c.metric)):
                stale.append(f"{t.instance or 'ticket'}:{c.metric}")
    return stale


@SETTINGS
@given(events=lifecycles(), data=st.data())
def test_every_planned_clock_holds_its_current_next_threshold(events: list[Event], data: Any) -> None:
    policy = data.draw(st.sampled_from([example_policy(), PS]))
    state: TicketState | None = None
    for e in events:
        if state is not None:
            tick = data.draw(st.integers(min_value=0, max_value=3_600_000))
            state, _ = advance(state, e.time_ms - tick, policy, in_place=True)
            assert _stale_clocks(state, policy) == []
        state, _ = apply(state, e, policy, in_place=data.draw(st.booleans()))
        assert _stale_clocks(state, policy) == [], e.type
