"""The demo scenario: every event is a valid v1 event, and the pure core turns the first minute of it into every
situation the demo promises (warnings, breaches, the L1 -> L2 -> L3 ladder with a repeat, each trigger, an incident).

No Kafka and no clock: the start instant is injected and the events are decoded and run through ``apply`` /
``advance`` / ``observe`` here, the way the worker would (thresholds of other tickets fire before an event at a later
instant; an event at exactly a threshold's instant is applied first).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC

import orjson
import pytest

from escalator.cli import main
from escalator.core import (
    ClockOutcome,
    Emit,
    PolicySet,
    TicketState,
    decode_record,
    load_policy_text,
    parse_rfc3339_ms,
)
from escalator.core.envelopes import EVENT_TYPES
from escalator.demo import (
    OUTAGE_PRODUCT,
    RUN_ID,
    ScenarioOptions,
    build_scenario,
    new_run_id,
    start_line,
    status_subject,
    stories,
    ticket_id,
)
from escalator.replay.simulate import Simulator
from tests.support import ROOT

DEMO_POLICY = ROOT / "examples" / "demo-policy.yaml"
START = 1_795_000_000_000  # 2026-11-18T11:06:40Z
RUN = "t3st"
MINUTE = 60_000


def demo_policy() -> PolicySet:
    return load_policy_text(DEMO_POLICY.read_text(), str(DEMO_POLICY))


PS = demo_policy()


@dataclass
class Sim:
    outputs: list[tuple[int, Emit]] = field(default_factory=list)  # (logical instant, event)
    outcomes: list[ClockOutcome] = field(default_factory=list)
    states: dict[str, TicketState] = field(default_factory=dict)

    def within(self, until_ms: int) -> list[Emit]:
        return [e for at, e in self.outputs if at <= until_ms]


def simulate(plan: list[tuple[float, dict[str, object]]], until_ms: int) -> Sim:
    """The replay simulator over the plan (what the worker publishes for it), with each output's instant."""
    sim = Sim()
    simulator = Simulator(PS)

    def collect(cmds: list[object]) -> None:
        for c in cmds:
            if isinstance(c, Emit):
                sim.outputs.append((parse_rfc3339_ms(c.event["time"]), c))
            elif isinstance(c, ClockOutcome):
                sim.outcomes.append(c)

    for _, doc in plan:
        collect(list(simulator.feed(decode_record(orjson.dumps(doc), str(doc["subject"]).encode()))))
    collect(list(simulator.advance_to(until_ms)))
    sim.states = simulator.tickets
    sim.outputs.sort(key=lambda item: item[0])
    return sim


def escalations(emits: list[Emit], ticket: str) -> list[tuple[int, str]]:
    return [
        (e.event["data"]["level"], e.event["data"]["threshold"])
        for e in emits
        if e.type == "escalation.raised" and e.key == ticket
    ]


def kinds(emits: list[Emit]) -> Counter[str]:
    return Counter(e.event["data"]["kind"] for e in emits if e.type == "notification.requested")


# --- the events -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 6.0, 30.0])
def test_every_event_is_a_valid_v1_record_sent_at_its_own_time(rate: float) -> None:
    options = ScenarioOptions(duration_s=90, rate_per_min=rate, seed=3)
    plan = build_scenario(START, RUN, options)
    offsets = [offset for offset, _ in plan]
    assert offsets == sorted(offsets) and offsets[0] >= 0 and offsets[-1] <= 90
    ids = set()
    first_type: dict[str, str] = {}
    for offset, doc in plan:
        event = decode_record(orjson.dumps(doc), str(doc["subject"]).encode())  # key = ticket id
        assert event.time_ms == START + round(offset * 1000)
        ids.add(event.dedup_key)
        if event.type == "incident.resolved":  # the status page's: no ticket's event
            assert event.ticket_id == status_subject(RUN)
            continue
        assert event.ticket_id.startswith(f"T-{RUN}-")
        first_type.setdefault(event.ticket_id, event.type)
    assert len(ids) == len(plan)  # no event would be dropped as a duplicate
    assert set(first_type.values()) == {"ticket.created"}  # every ticket starts with its creation
    assert {doc["type"] for _, doc in plan} == set(EVENT_TYPES)  # every v1 event type is exercised
    background = {t for t in first_type if t.startswith(f"T-{RUN}-b")}
    assert (len(background) > 0) is (rate > 0)
    assert set(stories(RUN)) <= set(first_type)


def test_the_scenario_is_deterministic_and_runs_never_share_ticket_ids() -> None:
    a = build_scenario(START, "aaaa", ScenarioOptions(seed=5))
    assert a == build_scenario(START, "aaaa", ScenarioOptions(seed=5))
    b = build_scenario(START + 90_000, "bbbb", ScenarioOptions(seed=5))
    assert {d["subject"] for _, d in a}.isdisjoint({d["subject"] for _, d in b})
    assert {d["id"] for _, d in a}.isdisjoint({d["id"] for _, d in b})


def test_background_rate_and_duration() -> None:
    plan = build_scenario(START, RUN, ScenarioOptions(duration_s=600, rate_per_min=30, seed=1))
    created = [off for off, d in plan if d["type"] == "ticket.created" and "-b" in str(d["subject"])]
    assert 200 <= len(created) <= 400  # ~300 expected (Poisson, 30 a minute for 10 minutes)
    short = build_scenario(START, RUN, ScenarioOptions(duration_s=30, rate_per_min=30, seed=1))
    assert short and max(off for off, _ in short) <= 30
    assert ticket_id(RUN, "ladder") not in {d["subject"] for off, d in short if d["type"] != "ticket.created"}


def test_options_and_run_ids_are_validated() -> None:
    with pytest.raises(ValueError, match="run id"):
        build_scenario(START, "Bad-Id")
    with pytest.raises(ValueError, match="duration"):
        ScenarioOptions(duration_s=0)
    with pytest.raises(ValueError, match="rate"):
        ScenarioOptions(rate_per_min=-1)
    assert RUN_ID.match(new_run_id(random.Random(1))) and RUN_ID.match(new_run_id())


# --- what the core makes of it ----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.0, 6.0])
def test_first_minute_shows_every_promised_situation(rate: float) -> None:
    sim = simulate(build_scenario(START, RUN, ScenarioOptions(rate_per_min=rate, seed=11)), START + MINUTE)
    first_minute = sim.within(START + MINUTE)
    notes = kinds(first_minute)
    assert notes["sla_warning"] >= 7 and notes["sla_breach"] >= 2
    # the ladder: L1 -> L2 -> L3 and one repeat, then the acknowledgement halts the second repeat
    assert escalations(first_minute, ticket_id(RUN, "ladder")) == [
        (1, "esc:L1"),
        (2, "esc:L2"),
        (3, "esc:L3"),
        (3, "esc:L3:r1"),
    ]
    triggers = {
        e.event["data"]["trigger"]: e.event["data"]["reason"]
        for e in first_minute
        if e.type == "escalation.raised" and e.event["data"]["trigger"]
    }
    assert {"legal", "low-csat", "repeated-contact", "manager-requested"} <= set(triggers)
    assert triggers["manager-requested"] == "requester_request" and triggers["legal"] == "trigger"
    assert escalations(first_minute, ticket_id(RUN, "legal")) == [(2, "trigger")]
    incidents = [e for e in first_minute if e.type == "incident.detected"]
    assert [i.event["data"]["group_value"] for i in incidents] == [OUTAGE_PRODUCT]
    assert incidents[0].event["data"]["count"] >= 8
    # its members escalated, the later ones joining, then the status page resolving it and everything it raised
    members = [e for e in first_minute if e.type == "escalation.raised" and e.event["data"]["reason"] == "incident"]
    outage = {ticket_id(RUN, f"{OUTAGE_PRODUCT}{i:02d}") for i in range(1, 11)}
    assert outage <= {e.key for e in members} and {e.event["data"]["incident_id"] for e in members} == {incidents[0].id}
    joined = {t for e in first_minute if e.type == "incident.updated" for t in e.event["data"]["joined"]}
    assert {ticket_id(RUN, f"{OUTAGE_PRODUCT}09"), ticket_id(RUN, f"{OUTAGE_PRODUCT}10")} <= joined
    (over,) = [e for e in first_minute if e.type == "incident.resolved"]
    assert over.event["data"]["by"] == "status-page" and over.event["data"]["count"] == len(members)
    closed = [e for e in first_minute if e.type == "escalation.resolved"]
    assert sum(e.event["data"]["reason"] == "incident_resolved" for e in closed) == len(members)
    assert kinds([e for e in first_minute if e.event["data"].get("incident_id")])["requester_update"] == len(members)
    # answered in time and not
    fr = {(o.ticket_id, o.metric): o.outcome for o in sim.outcomes}
    assert fr[(ticket_id(RUN, "ok"), "first_response")] == "met"
    assert fr[(ticket_id(RUN, "late"), "first_response")] == "breached"
    assert fr[(ticket_id(RUN, "pending"), "first_response")] == "met"


def test_first_minute_timeline_of_the_scripted_stories() -> None:
    """Exactly what the scripted part produces in its first minute (seconds after the start), background off."""
    sim = simulate(build_scenario(START, RUN, ScenarioOptions(rate_per_min=0)), START + MINUTE)
    seen = []
    for at, e in sim.outputs:
        data = e.event["data"]
        if at > START + MINUTE or data.get("kind") in ("escalation", "incident", "requester_update"):
            continue
        if e.type == "escalation.resolved":
            continue
        what = data["kind"] if e.type == "notification.requested" else f"L{data.get('level')} {data.get('threshold')}"
        if e.type == "incident.detected":
            what = f"incident {data['group_value']} x{data['count']}"
        elif e.type == "incident.updated":
            what = f"incident +{','.join(t.removeprefix(f'T-{RUN}-') for t in data['joined'])}"
        elif e.type == "incident.resolved":
            what = f"incident over x{data['count']}"
        seen.append(((at - START) / 1000, str(e.key).removeprefix(f"T-{RUN}-"), what))
    assert seen == [
        (9.0, "legal", "L2 trigger"),
        (10.0, "ok", "sla_warning"),
        (12.0, "ladder", "sla_warning"),
        (16.0, "late", "sla_warning"),
        (18.0, "ladder", "sla_warning"),
        (20.0, "rating", "L2 trigger"),
        (20.0, "functional", "L1 request"),
        (21.0, "manager", "L2 trigger"),
        (21.0, "chase", "sla_warning"),
        (22.0, "ladder", "sla_breach"),
        (22.0, "ladder", "L1 esc:L1"),
        (29.0, "chase", "L1 trigger"),
        (30.0, "manager", "sla_warning"),
        (31.0, "late", "sla_breach"),
        (31.0, "late", "L1 esc:L1"),
        (32.0, "ladder", "L2 esc:L2"),
        (34.5, "mail", "incident mail x8"),
        *((34.5, f"mail{i:02d}", "L1 incident") for i in range(1, 9)),  # its members, escalated
        (36.0, "mail", "incident +mail09"),  # later ones join
        (36.0, "mail09", "L1 incident"),
        (37.5, "mail", "incident +mail10"),
        (37.5, "mail10", "L1 incident"),
        (42.0, "ladder", "L3 esc:L3"),
        (46.0, "mail", "incident over x10"),  # the status page's incident.resolved
        (48.0, "pending", "sla_warning"),  # 30s pending paused the clock: 15s of open time at 48s
        (52.0, "ladder", "L3 esc:L3:r1"),
    ]


def test_after_the_minute_the_scripted_tickets_settle() -> None:
    """By the end of a run every scripted ticket is solved and nothing of theirs is still due."""
    sim = simulate(build_scenario(START, RUN, ScenarioOptions(rate_per_min=0)), START + 90_000)
    for tid in stories(RUN):
        assert sim.states[tid].status == "solved", tid
    late = [e.id for at, e in sim.outputs if at > START + MINUTE and e.type != "escalation.resolved"]
    assert late == []  # the second L3 repeat (62s) was halted by the acknowledgement at 55s
    raised = {e.id for _at, e in sim.outputs if e.type == "escalation.raised"}
    resolved = {e.event["data"]["escalation_id"] for _at, e in sim.outputs if e.type == "escalation.resolved"}
    # every escalation is closed by its ticket's end, except the low rating's: it comes after the ticket was solved
    # and its cause (the rating) is still there -- someone has to answer it
    assert resolved <= raised and raised - resolved == {f"{ticket_id(RUN, 'rating')}:trigger:low-csat:1"}


def test_the_functional_request_is_de_escalated_by_its_lead() -> None:
    sim = simulate(build_scenario(START, RUN, ScenarioOptions(rate_per_min=0)), START + 90_000)
    tid = ticket_id(RUN, "functional")
    raised = [e for _at, e in sim.outputs if e.type == "escalation.raised" and e.key == tid]
    assert [(e.event["data"]["kind"], e.event["data"]["team"], e.event["data"]["reason"]) for e in raised] == [
        ("functional", "billing-experts", "agent_request")
    ]
    closed = [e.event["data"] for _at, e in sim.outputs if e.type == "escalation.resolved" and e.key == tid]
    assert [(d["reason"], d["by"], d["open_ms"]) for d in closed] == [("deescalated", "lead-kim", 17_000)]


# --- what the command prints --------------------------------------------------------------------------------------


def test_start_line_names_ticket_attributes_and_story() -> None:
    plan = build_scenario(START, RUN, ScenarioOptions(rate_per_min=6, seed=2))
    texts = stories(RUN)
    ladder = next(d for _, d in plan if d["subject"] == ticket_id(RUN, "ladder"))
    line = start_line(ladder, texts, START + 2_000, tz=UTC)
    assert line.startswith("11:06:42  T-t3st-ladder     urgent vip        payments  urgent VIP, nobody answers")
    bg = next(d for _, d in plan if str(d["subject"]).startswith(f"T-{RUN}-b") and d["type"] == "ticket.created")
    assert "background ticket" in start_line(bg, texts, START, tz=UTC)


def test_demo_command_rejects_bad_options_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--loop", "--run-id", "abcd"]) == 2
    assert main(["demo", "--run-id", "NOPE"]) == 2
    assert main(["demo", "--duration", "0"]) == 2
    err = capsys.readouterr().err
    assert "--run-id" in err and "duration" in err
