"""Engine rules, one test (or parameter set) per rule of the SLA/escalation semantics."""

from __future__ import annotations

import pytest

from escalator.core import ClockOutcome, Ignored, IncidentSignal, advance, apply, load_policy_text, next_deadline
from escalator.core.timefmt import format_ms
from escalator.core.views import describe
from tests.support import comment, created, emitted, ev, example_policy, fired, ids, ms, run, status

PS = example_policy()
T0 = "2026-11-20T10:00:00Z"  # a Friday; vip-urgent runs on the 24x7 calendar


def main_fired(cmds: list[object]) -> dict[str, str]:
    """Thresholds fired (output id -> logical time), without the notifications that accompany escalations."""
    return {k: v for k, v in fired(cmds).items() if not k.endswith((":notify", ":requester"))}


def outcomes(cmds: list[object]) -> list[ClockOutcome]:
    return [c for c in cmds if isinstance(c, ClockOutcome)]


# --- first response -----------------------------------------------------------------------------------------


def test_first_response_met_fires_only_warnings_before_reply() -> None:
    _state, cmds = run([created(T0), comment("2026-11-20T10:10:00Z")], PS, until="2026-11-20T10:20:00Z")
    assert ids(cmds) == ["T1:first_response:1:warn:0.5"]
    assert fired(cmds)["T1:first_response:1:warn:0.5"] == "2026-11-20T10:07:30Z"
    met = [o for o in outcomes(cmds) if o.metric == "first_response"]
    assert [(o.outcome, o.ended, o.elapsed_ms) for o in met] == [("met", "achieved", 10 * 60_000)]


@pytest.mark.parametrize(
    ("reply_at", "breached"),
    [
        ("2026-11-20T10:14:59.999Z", False),
        ("2026-11-20T10:15:00Z", False),  # a reply at exactly the deadline meets it
        ("2026-11-20T10:15:00.001Z", True),
    ],
)
def test_reply_exactly_at_deadline_meets_it(reply_at: str, breached: bool) -> None:
    _, cmds = run([created(T0), comment(reply_at)], PS, until="2026-11-20T10:16:00Z")
    assert ("T1:first_response:1:breach" in ids(cmds)) is breached
    assert ("T1:first_response:1:esc:L1" in ids(cmds)) is breached
    outcome = next(o for o in outcomes(cmds) if o.metric == "first_response")
    assert outcome.outcome == ("breached" if breached else "met")


def test_deadline_fires_without_any_further_event() -> None:
    state, cmds = run([created(T0)], PS)
    assert state is not None
    assert next_deadline(state, PS) == ms("2026-11-20T10:07:30Z")
    state, cmds = advance(state, ms("2026-11-20T10:15:00Z"), PS)
    assert fired(cmds) == {
        "T1:first_response:1:warn:0.5": "2026-11-20T10:07:30Z",
        "T1:first_response:1:warn:0.8": "2026-11-20T10:12:00Z",
        "T1:first_response:1:breach": "2026-11-20T10:15:00Z",
        "T1:first_response:1:esc:L1": "2026-11-20T10:15:00Z",
        "T1:first_response:1:esc:L1:notify": "2026-11-20T10:15:00Z",
        "T1:first_response:1:esc:L1:requester": "2026-11-20T10:15:00Z",
    }
    assert next_deadline(state, PS) == ms("2026-11-20T10:45:00Z")


def test_escalation_payload_carries_contract_fields() -> None:
    _, cmds = run([created(T0, group="billing", assignee="ann", tags=["vip"])], PS, until="2026-11-20T10:15:00Z")
    esc = next(c for c in emitted(cmds) if c.id == "T1:first_response:1:esc:L1")
    assert esc.channel == "escalations" and esc.key == "T1" and esc.type == "escalation.raised"
    data = esc.event["data"]
    assert data["escalation_id"] == esc.event["id"] == esc.id
    assert data | {"ticket": None, "policy": None} == {
        "escalation_id": "T1:first_response:1:esc:L1",
        "ticket_id": "T1",
        "level": 1,
        "kind": "automatic",
        "reason": "sla_breach",
        "metric": "first_response",
        "trigger": None,
        "cycle": 1,
        "threshold": "esc:L1",
        "policy": None,
        "targets": [{"type": "role", "id": "team_lead"}],
        "due_at": "2026-11-20T10:15:00Z",
        "fired_at": "2026-11-20T10:15:00Z",
        "ticket": None,
        "incident_id": None,
    }
    assert data["policy"] == {"id": "vip-urgent", "version": PS.version}
    assert data["ticket"] == {
        "priority": "urgent",
        "status": "new",
        "group": "billing",
        "assignee": "ann",
        "requester_tier": "vip",
        "tags": ["vip"],
    }
    breach = next(c for c in emitted(cmds) if c.id == "T1:first_response:1:breach")
    assert breach.event["data"]["kind"] == "sla_breach"
    assert breach.event["data"]["recipients"] == [{"type": "user", "id": "ann"}]
    update = next(c for c in emitted(cmds) if c.id.endswith(":requester"))
    assert update.event["data"]["recipients"] == [{"type": "requester", "id": "req-T1"}]


# --- ladder, repeats, acknowledgements -----------------------------------------------------------------------


def test_ladder_and_repeats_fire_at_their_offsets_then_stop() -> None:
    _, cmds = run([created(T0)], PS, until="2026-11-21T10:00:00Z")
    fr = {k: v for k, v in main_fired(cmds).items() if k.startswith("T1:first_response") and ":r" not in k}
    assert fr == {
        "T1:first_response:1:warn:0.5": "2026-11-20T10:07:30Z",
        "T1:first_response:1:warn:0.8": "2026-11-20T10:12:00Z",
        "T1:first_response:1:breach": "2026-11-20T10:15:00Z",
        "T1:first_response:1:esc:L1": "2026-11-20T10:15:00Z",
        "T1:first_response:1:esc:L2": "2026-11-20T10:45:00Z",
        "T1:first_response:1:esc:L3": "2026-11-20T12:15:00Z",
    }
    repeats = {k: v for k, v in main_fired(cmds).items() if k.startswith("T1:first_response:1:esc:L3:r")}
    assert repeats == {
        "T1:first_response:1:esc:L3:r1": "2026-11-20T13:15:00Z",
        "T1:first_response:1:esc:L3:r2": "2026-11-20T14:15:00Z",
        "T1:first_response:1:esc:L3:r3": "2026-11-20T15:15:00Z",
    }
    levels = [
        c.event["data"]["level"]
        for c in emitted(cmds)
        if c.id.startswith("T1:first_response:1:esc:L3") and c.type == "escalation.raised"
    ]
    assert levels == [3, 3, 3, 3]


def test_acknowledgement_halts_ladder_and_ack_timeout_escalates_next_level() -> None:
    events = [created(T0), ev("escalation_acknowledged", "2026-11-20T10:20:00Z", by="lead-1")]
    state, cmds = run(events, PS, until="2026-11-20T13:00:00Z")
    fr = [i for i in ids(cmds) if i.startswith("T1:first_response") and ":notify" not in i and ":requester" not in i]
    # L2 (due 10:45) never fires; 1 h after the ack (11:20) the next level (2) is raised instead.
    assert fr == [
        "T1:first_response:1:warn:0.5",
        "T1:first_response:1:warn:0.8",
        "T1:first_response:1:breach",
        "T1:first_response:1:esc:L1",
        "T1:first_response:1:ack1",
    ]
    ack = next(c for c in emitted(cmds) if c.id == "T1:first_response:1:ack1")
    assert ack.event["data"]["level"] == 2
    assert ack.event["data"]["fired_at"] == "2026-11-20T11:20:00Z"
    assert ack.event["data"]["targets"] == [{"type": "role", "id": "support_manager"}]
    # a second ack starts another ack timeout, which goes one level further up
    state, cmds = apply(state, ev("escalation_acknowledged", "2026-11-20T13:00:00Z", by="mgr"), PS)
    state, cmds = advance(state, ms("2026-11-20T15:00:00Z"), PS)
    ack2 = next(c for c in emitted(cmds) if c.id == "T1:first_response:1:ack2")
    assert ack2.event["data"]["level"] == 3 and ack2.event["data"]["fired_at"] == "2026-11-20T14:00:00Z"


def test_ack_timeout_does_not_fire_once_resolved() -> None:
    events = [
        created(T0),
        ev("escalation_acknowledged", "2026-11-20T10:20:00Z", by="lead"),
        comment("2026-11-20T10:30:00Z"),
    ]
    _, cmds = run(events, PS, until="2026-11-20T13:00:00Z")
    assert not [i for i in ids(cmds) if ":ack" in i]


def test_ack_naming_an_escalation_only_acks_that_clock() -> None:
    events = [created(T0)]
    state, _ = run(events, PS, until="2026-11-20T14:05:00Z")  # both first_response and resolution escalated
    state, _ = apply(
        state,
        ev("escalation_acknowledged", "2026-11-20T14:06:00Z", by="lead", escalation_id="T1:resolution:1:esc:L1"),
        PS,
    )
    _, cmds = advance(state, ms("2026-11-20T14:31:00Z"), PS)
    # resolution's L2 (14:30) is halted; first_response keeps repeating
    assert "T1:resolution:1:esc:L2" not in ids(cmds)
    assert "T1:first_response:1:esc:L3:r2" in ids(cmds)


# --- pause, reopen, close -------------------------------------------------------------------------------------


def test_pending_pauses_every_clock() -> None:
    events = [created(T0), status("2026-11-20T10:05:00Z", "pending"), status("2026-11-20T11:05:00Z", "open")]
    _state, cmds = run(events, PS, until="2026-11-20T11:20:00Z")
    assert fired(cmds)["T1:first_response:1:warn:0.5"] == "2026-11-20T11:07:30Z"
    assert fired(cmds)["T1:first_response:1:breach"] == "2026-11-20T11:15:00Z"


def test_paused_ticket_has_no_deadline() -> None:
    state, _ = run([created(T0), status("2026-11-20T10:05:00Z", "on_hold")], PS)
    assert state is not None and next_deadline(state, PS) is None
    state2, cmds = advance(state, ms("2026-12-20T10:00:00Z"), PS)
    assert cmds == [] and state2 is state


def test_reopen_resumes_resolution_with_elapsed_time() -> None:
    events = [
        created(T0),
        comment("2026-11-20T10:05:00Z"),
        status("2026-11-20T11:00:00Z", "solved"),
        status("2026-11-20T20:00:00Z", "open"),
    ]
    state, cmds = run(events, PS, until="2026-11-21T00:00:00Z")
    res = main_fired(cmds)
    assert res["T1:resolution:1:warn:0.5"] == "2026-11-20T21:00:00Z"
    assert res["T1:resolution:1:breach"] == "2026-11-20T23:00:00Z"
    assert state is not None and state.reopen_count == 1
    # the solve was reported as met at the time (1 h elapsed)
    solved = [o for o in outcomes(cmds) if o.metric == "resolution"]
    assert (solved[0].outcome, solved[0].elapsed_ms) == ("met", 3_600_000)


def test_closed_stops_everything() -> None:
    state, cmds = run([created(T0), status("2026-11-20T10:05:00Z", "closed")], PS, until="2026-11-22T00:00:00Z")
    assert state is not None and next_deadline(state, PS) is None
    assert ids(cmds) == []
    assert state.closed_ms == ms("2026-11-20T10:05:00Z")
    assert {o.metric: o.ended for o in outcomes(cmds)} == {"first_response": "stopped", "resolution": "achieved"}


def test_solved_cancels_periodic_update_and_stops_reply_clocks() -> None:
    events = [
        created(T0),
        comment("2026-11-20T10:05:00Z"),
        comment("2026-11-20T10:06:00Z", "requester"),
        status("2026-11-20T10:10:00Z", "solved"),
    ]
    state, cmds = run(events, PS)
    ended = {(o.metric, o.cycle): o.ended for o in outcomes(cmds)}
    assert ended == {
        ("first_response", 1): "achieved",
        ("next_reply", 1): "stopped",
        ("periodic_update", 1): "cancelled",
        ("resolution", 1): "achieved",
    }
    assert state is not None and next_deadline(state, PS) is None


# --- next reply and periodic update ---------------------------------------------------------------------------


def test_next_reply_cycles() -> None:
    events = [
        created(T0),
        comment("2026-11-20T10:05:00Z"),  # first response met; periodic update cycle 1 starts
        comment("2026-11-20T10:20:00Z", "requester"),  # next_reply cycle 1 starts
        comment("2026-11-20T10:30:00Z", "requester"),  # already running: no new cycle
        comment("2026-11-20T10:40:00Z"),  # achieves next_reply 1 (20 min < 30 min) and periodic 1
        comment("2026-11-20T11:00:00Z", "requester"),  # next_reply cycle 2
    ]
    state, cmds = run(events, PS, until="2026-11-20T11:31:00Z")
    assert state is not None
    nr = state.clock("next_reply")
    assert nr is not None and nr.cycle == 2
    assert "T1:next_reply:2:breach" in ids(cmds) and fired(cmds)["T1:next_reply:2:breach"] == "2026-11-20T11:30:00Z"
    assert not [i for i in ids(cmds) if i.startswith("T1:next_reply:1:breach")]
    nr1 = next(o for o in outcomes(cmds) if o.metric == "next_reply" and o.cycle == 1)
    assert nr1.elapsed_ms == 20 * 60_000 and nr1.outcome == "met"


def test_requester_comment_before_first_response_does_not_start_next_reply() -> None:
    state, _ = run([created(T0), comment("2026-11-20T10:01:00Z", "requester")], PS)
    assert state is not None and state.clock("next_reply") is None


def test_periodic_update_cycles_between_agent_comments() -> None:
    events = [created(T0), comment("2026-11-20T10:05:00Z"), comment("2026-11-20T10:50:00Z")]
    state, cmds = run(events, PS, until="2026-11-20T11:51:00Z")
    assert state is not None
    pu = state.clock("periodic_update")
    assert pu is not None and pu.cycle == 2
    assert fired(cmds)["T1:periodic_update:2:breach"] == "2026-11-20T11:50:00Z"
    p1 = next(o for o in outcomes(cmds) if o.metric == "periodic_update" and o.cycle == 1)
    assert (p1.outcome, p1.elapsed_ms) == ("met", 45 * 60_000)


def test_private_comments_do_not_touch_clocks() -> None:
    _state, cmds = run([created(T0), comment("2026-11-20T10:05:00Z", public=False)], PS, until="2026-11-20T10:15:00Z")
    assert "T1:first_response:1:breach" in ids(cmds)


# --- business hours in the engine -----------------------------------------------------------------------------


def test_default_policy_uses_business_calendar_across_dst() -> None:
    # normal priority -> default policy (Amsterdam office hours, first response 4 h)
    state, cmds = run([created("2026-03-27T14:00:00Z", priority="normal", tier="standard")], PS)
    assert state is not None and state.policy_id == "default"
    assert next_deadline(state, PS) == ms("2026-03-30T11:00:00+02:00")  # Fri 15-17 CET + Mon 09-11 CEST
    _, cmds = advance(state, ms("2026-03-30T09:00:00Z"), PS)
    assert fired(cmds)["T1:first_response:1:breach"] == "2026-03-30T09:00:00Z"


def test_deadline_falls_on_closing_time_not_next_opening() -> None:
    state, _ = run([created("2026-11-27T11:00:00Z", priority="low", tier="standard")], PS)  # Fri 12:00 CET
    assert state is not None and next_deadline(state, PS) == ms("2026-11-27T17:00:00+01:00")


def test_holidays_are_skipped() -> None:
    state, _ = run([created("2026-12-24T15:00:00Z", priority="low", tier="standard")], PS)  # Thu 16:00 CET
    assert state is not None and next_deadline(state, PS) == ms("2026-12-28T12:00:00+01:00")


# --- policy switch -----------------------------------------------------------------------------------------


def test_policy_switch_keeps_elapsed_and_breaches_at_once() -> None:
    events = [
        created("2026-11-23T08:00:00Z", priority="normal", tier="standard"),  # Mon 09:00 CET, default policy
        ev("updated", "2026-11-23T08:20:00Z", changes={"priority": "urgent", "requester_tier": "vip"}),
    ]
    state, cmds = run(events, PS)
    assert state is not None and state.policy_id == "vip-urgent"
    f = fired(cmds)
    # 20 min elapsed > 15 min target: warnings, breach and L1 fire at once, at the switch instant
    for key in ("warn:0.5", "warn:0.8", "breach", "esc:L1"):
        assert f[f"T1:first_response:1:{key}"] == "2026-11-23T08:20:00Z"
    # L2 is 30 min past the 15 min target, on the new (24x7) calendar: 45 min of elapsed -> 08:45
    assert next_deadline(state, PS) == ms("2026-11-23T08:45:00Z")


def test_policy_switch_does_not_refire_fired_thresholds() -> None:
    events = [
        created(T0),  # vip
        ev("updated", "2026-11-20T10:20:00Z", changes={"priority": "normal"}),  # -> default (4 h, office hours)
        ev("updated", "2026-11-20T10:25:00Z", changes={"priority": "urgent"}),  # back to vip
    ]
    _, cmds = run(events, PS, until="2026-11-20T10:30:00Z")
    assert ids(cmds).count("T1:first_response:1:breach") == 1
    assert ids(cmds).count("T1:first_response:1:esc:L1") == 1


# --- triggers ----------------------------------------------------------------------------------------------


def test_legal_trigger_fires_on_create_and_rearms() -> None:
    events = [
        created(T0, priority="normal", tier="standard", tags=["gdpr"]),
        ev("updated", "2026-11-20T10:01:00Z", changes={"tags": ["gdpr", "billing"]}),  # still true: no re-fire
        ev("updated", "2026-11-20T10:02:00Z", changes={"tags": []}),  # false: re-arms
        ev("updated", "2026-11-20T10:03:00Z", changes={"tags": ["legal"]}),  # true again: fires #2
    ]
    _, cmds = run(events, PS)
    esc = [c for c in emitted(cmds) if c.type == "escalation.raised"]
    assert [c.id for c in esc] == ["T1:trigger:legal:1", "T1:trigger:legal:2"]
    data = esc[0].event["data"]
    assert (data["kind"], data["level"], data["reason"], data["trigger"], data["metric"]) == (
        "functional",
        2,
        "trigger",
        "legal",
        None,
    )
    assert data["targets"] == [{"type": "team", "id": "legal"}]


def test_repeated_contact_counts_unanswered_requester_messages() -> None:
    base = [created(T0, priority="normal", tier="standard"), comment("2026-11-20T10:01:00Z")]
    three = [comment(f"2026-11-20T10:0{i}:00Z", "requester") for i in (2, 3, 4)]
    reply = [comment("2026-11-20T10:05:00Z")]
    again = [comment(f"2026-11-20T10:0{i}:00Z", "requester") for i in (6, 7, 8)]
    _, cmds = run(base + three[:2], PS)
    assert not [i for i in ids(cmds) if "repeated-contact" in i]
    _, cmds = run(base + three + reply + again, PS)
    assert [i for i in main_fired(cmds) if "repeated-contact" in i] == [
        "T1:trigger:repeated-contact:1",
        "T1:trigger:repeated-contact:2",
    ]


def test_low_csat_and_manager_request() -> None:
    events = [
        created(T0, priority="normal", tier="standard"),
        ev("escalation_requested", "2026-11-20T10:01:00Z", reason="no answer", by="req"),
        status("2026-11-20T11:00:00Z", "solved"),
        ev("rated", "2026-11-20T12:00:00Z", score=2, comment="slow"),
        ev("rated", "2026-11-20T12:01:00Z", score=1),  # still low: no re-fire
    ]
    _, cmds = run(events, PS)
    esc = {c.id: c.event["data"] for c in emitted(cmds) if c.type == "escalation.raised"}
    assert set(esc) == {"T1:trigger:manager-requested:1", "T1:trigger:low-csat:1"}
    assert esc["T1:trigger:manager-requested:1"]["reason"] == "requester_request"
    assert esc["T1:trigger:low-csat:1"]["level"] == 2


def test_reopened_twice() -> None:
    events = [created(T0, priority="normal", tier="standard")]
    for i, s in enumerate(["solved", "open", "solved", "open"]):
        events.append(status(f"2026-11-20T1{i}:00:00Z", s))
    _, cmds = run(events, PS)
    assert "T1:trigger:reopened-twice:1" in ids(cmds)
    assert fired(cmds)["T1:trigger:reopened-twice:1"] == "2026-11-20T13:00:00Z"


# --- robustness: duplicates, implicit tickets, late events ----------------------------------------------------


def test_duplicate_event_ids_are_ignored() -> None:
    e1 = created(T0)
    e2 = comment("2026-11-20T10:05:00Z")
    state, _ = run([e1, e2], PS)
    again, cmds = apply(state, e2, PS)
    assert again is state
    assert cmds == [Ignored(e2.id, "duplicate")]


def test_same_id_from_another_source_is_not_a_duplicate() -> None:
    a = ev("commented", "2026-11-20T10:05:00Z", event_id="x", author="requester")
    state, _ = run([created(T0), comment("2026-11-20T10:01:00Z"), a], PS)
    from escalator.core.events import Event

    b = Event(a.id, "other-system", a.type, a.time_ms, a.ticket_id, a.data)
    state2, cmds = apply(state, b, PS)
    assert not any(isinstance(c, Ignored) for c in cmds)
    assert state2.unanswered == 2


def test_event_for_unknown_ticket_creates_it_implicitly() -> None:
    state, _ = run([comment("2026-11-20T10:00:00Z", "requester", ticket="X9")], PS)
    assert state is not None
    assert state.flags == ("implicit",) and state.ticket_id == "X9"
    assert state.policy_id == "default"
    assert next_deadline(state, PS) is not None
    # a late ticket.created fills in the attributes and clears the flag
    state, _cmds = apply(state, created("2026-11-20T09:59:00Z", ticket="X9"), PS)
    assert state.flags == ("created_late",) and state.policy_id == "vip-urgent"
    assert state.created_ms == ms("2026-11-20T09:59:00Z")


def test_late_created_event_fires_past_thresholds_with_logical_times() -> None:
    # processed "now" (a day later): every threshold already passed fires at once, stamped with its true instant
    state, _ = run([created(T0)], PS)
    state, cmds = advance(state, ms("2026-11-21T10:00:00Z"), PS)
    assert fired(cmds)["T1:first_response:1:breach"] == "2026-11-20T10:15:00Z"
    assert fired(cmds)["T1:resolution:1:esc:L2"] == "2026-11-20T14:30:00Z"


def test_out_of_order_event_is_applied_at_the_watermark() -> None:
    state, _ = run([created(T0)], PS, until="2026-11-20T10:20:00Z")  # breach fired at 10:15
    state, cmds = apply(state, comment("2026-11-20T10:10:00Z"), PS)  # the reply was at 10:10 but arrives late
    fr = next(o for o in outcomes(cmds) if o.metric == "first_response")
    assert fr.outcome == "breached"  # the breach was already published; the past is not rewritten
    assert fr.ended_ms == ms("2026-11-20T10:15:00Z")  # watermark: the last instant acted upon
    first = state.clock("first_response")
    assert first is not None and first.phase == "achieved"


# --- incidents signal and describe --------------------------------------------------------------------------


def test_created_ticket_signals_incident_rule() -> None:
    _, cmds = run([created(T0, product="mail")], PS)
    assert [c for c in cmds if isinstance(c, IncidentSignal)] == [IncidentSignal("outage", "mail", "T1", ms(T0))]
    _, cmds = run([created(T0, ticket="T2")], PS)  # no product: nothing to group by
    assert not [c for c in cmds if isinstance(c, IncidentSignal)]


def test_describe_shows_clocks() -> None:
    state, _ = run([created(T0), status("2026-11-20T10:05:00Z", "pending")], PS)
    view = describe(state, PS, ms("2026-11-20T10:30:00Z"))
    fr = next(c for c in view["clocks"] if c["metric"] == "first_response")  # type: ignore[union-attr]
    assert fr["status"] == "paused" and fr["elapsed_seconds"] == 300.0 and fr["target_seconds"] == 900.0
    assert fr["due_at"] is None  # paused: no due time


def test_unmatched_ticket_has_no_clocks_thresholds() -> None:
    ps = load_policy_text(
        "version: 1\npolicies:\n  - id: only-urgent\n    match: {priority: [urgent]}\n"
        "    targets: {first_response: 1h}\n"
    )
    state, cmds = run([created(T0, priority="low")], ps, until="2026-11-25T00:00:00Z")
    assert state is not None and state.policy_id is None and ids(cmds) == []
    assert next_deadline(state, ps) is None


def test_new_policy_version_rebases_open_tickets() -> None:
    old = load_policy_text("version: 1\npolicies:\n  - id: p\n    targets: {first_response: 1h}\n")
    new = load_policy_text("version: 1\npolicies:\n  - id: p\n    targets: {first_response: 30m}\n")
    state, _ = run([created(T0)], old)
    assert next_deadline(state, old) == ms("2026-11-20T11:00:00Z")
    assert next_deadline(state, new) == ms("2026-11-20T10:30:00Z")
    _, cmds = advance(state, ms("2026-11-20T10:31:00Z"), new)
    out = emitted(cmds)
    assert [c.id for c in out][:1] == ["T1:first_response:1:breach"]
    assert out[0].event["data"]["policy"]["version"] == new.version


def test_format_of_times_in_outputs() -> None:
    _, cmds = run([created("2026-11-20T10:00:00.250+01:00")], PS, until="2026-11-20T10:00:00Z")
    assert fired(cmds)["T1:first_response:1:warn:0.5"] == format_ms(ms("2026-11-20T09:07:30.250Z"))
