"""The incident lifecycle (rules with members, escalate_members, auto_resolve_after, requester_updates): members
bounded and counted, incident.updated per instant, member escalations, resolution by input or quiet time."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.core import (
    Emit,
    Ignored,
    IncidentSignal,
    encode_event,
    format_ms,
    load_policy_text,
    observe,
    settle,
)
from escalator.core.events import decode_record
from escalator.core.incidents import MAX_MEMBERS, parse_incident_id
from escalator.core.output_models import (
    EscalationRaised,
    EscalationResolved,
    IncidentDetected,
    IncidentResolved,
    IncidentUpdated,
    NotificationRequested,
)
from escalator.replay.simulate import simulate
from tests.support import envelope, ms

POLICY = """
version: 1
policies:
  - id: p
    match: {}
    targets: {first_response: 8h}
    resolve_events: true
incidents:
  - id: outage
    group_by: product
    threshold: 3
    window: 10m
    notify: [{role: incident_manager}]
    escalate_members: {level: 2, notify: [{team: sre}, {assignee: true}]}
    auto_resolve_after: 30m
    requester_updates: true
"""
PS = load_policy_text(POLICY, "p.yaml")
PLAIN = load_policy_text(POLICY.split("    escalate_members", maxsplit=1)[0], "p.yaml")  # no lifecycle
MODELS = {
    "escalation.raised": EscalationRaised,
    "escalation.resolved": EscalationResolved,
    "incident.detected": IncidentDetected,
    "incident.updated": IncidentUpdated,
    "incident.resolved": IncidentResolved,
    "notification.requested": NotificationRequested,
}


def at(minute: int) -> str:
    return f"2026-11-20T10:{minute:02d}:00Z"


def created(ticket: str, minute: int, product: str = "mail") -> dict[str, Any]:
    data = {"priority": "high", "requester": {"id": f"r-{ticket}"}, "product": product, "assignee": "ann"}
    return envelope("ticket.created", at(minute), ticket, data)


def resolved(incident_id: str, time: str, event_id: str = "res-1") -> dict[str, Any]:
    return envelope("incident.resolved", time, incident_id, {"incident_id": incident_id, "by": "statuspage"}, event_id)


def run(docs: list[dict[str, Any]], policy: Any = PS, until: str | None = None) -> list[Any]:
    events = [decode_record(orjson.dumps(d)) for d in docs]
    cmds = list(simulate(events, policy, None if until is None else ms(until)))
    for c in cmds:
        if type(c) is Emit:
            MODELS[c.type].model_validate(c.event)  # every output follows its published schema
    return cmds


def emitted(cmds: list[Any], etype: str | None = None) -> list[Emit]:
    return [c for c in cmds if type(c) is Emit and (etype is None or c.type == etype)]


DETECTED_MS = ms("2026-11-20T10:02:00Z")
INCIDENT = f"incident:outage:mail:{DETECTED_MS}"


def test_detection_escalates_the_tripping_members_and_later_ones_join_per_instant() -> None:
    docs = [created("A", 0), created("B", 1), created("C", 2), created("E", 4), created("D", 4)]
    cmds = run(docs, until="2026-11-20T10:05:00Z")
    raised = emitted(cmds, "escalation.raised")
    assert [e.id for e in raised] == [f"{t}:{INCIDENT}" for t in "ABCDE"]
    data = raised[0].event["data"]
    assert (data["reason"], data["level"], data["incident_id"], data["threshold"]) == (
        "incident",
        2,
        INCIDENT,
        "incident",
    )
    assert data["targets"] == [{"type": "team", "id": "sre"}, {"type": "user", "id": "ann"}]
    assert data["policy"]["id"] == "p" and raised[0].key == "A"
    (update,) = emitted(cmds, "incident.updated")  # D and E joined at one instant: one event, by ticket id
    u = update.event["data"]
    assert update.id == f"{INCIDENT}:updated:1"
    assert (u["joined"], u["joined_count"], u["count"], u["members"]) == (["D", "E"], 2, 5, 5)
    assert u["fired_at"] == "2026-11-20T10:04:00Z"
    assert not emitted(cmds, "incident.resolved")  # quiet for 1 min only


def test_quiet_time_resolves_the_incident_its_escalations_and_tells_the_requesters() -> None:
    docs = [created("A", 0), created("B", 1), created("C", 2), created("D", 4)]
    cmds = run(docs, until="2026-11-20T12:00:00Z")
    (end,) = emitted(cmds, "incident.resolved")
    d = end.event["data"]
    assert end.id == f"{INCIDENT}:resolved"
    assert (d["reason"], d["by"], d["count"], d["tickets"]) == ("quiet", None, 4, ["A", "B", "C", "D"])
    assert d["fired_at"] == "2026-11-20T10:34:00Z" and d["open_ms"] == 32 * 60_000  # 30 min after D joined
    closed = emitted(cmds, "escalation.resolved")
    assert [e.id for e in closed] == [f"{t}:{INCIDENT}:resolved" for t in "ABCD"]
    assert (
        closed[3].event["data"]["open_ms"] == 30 * 60_000 and closed[0].event["data"]["reason"] == "incident_resolved"
    )
    notes = [e for e in emitted(cmds, "notification.requested") if e.event["data"]["kind"] == "requester_update"]
    assert [n.event["data"]["recipients"] for n in notes] == [[{"type": "requester", "id": f"r-{t}"}] for t in "ABCD"]


def test_an_input_incident_resolved_ends_it_and_an_unknown_one_is_a_counted_no_op() -> None:
    docs = [
        created("A", 0),
        created("B", 1),
        created("C", 2),
        resolved(INCIDENT, "2026-11-20T10:05:00Z"),
        resolved(INCIDENT, "2026-11-20T10:06:00Z", "again"),  # no longer open
        resolved("incident:nope:mail:1", "2026-11-20T10:06:00Z", "nope"),  # no such rule
        created("D", 7),  # after the end: counted in the window again, no incident open
    ]
    cmds = run(docs)
    (end,) = emitted(cmds, "incident.resolved")
    d = end.event["data"]
    assert (d["reason"], d["by"], d["fired_at"], d["open_ms"]) == (
        "resolved",
        "statuspage",
        "2026-11-20T10:05:00Z",
        180_000,
    )
    # (the unknown rule is a no-op where the event is read, the resolved one where its window is: no order between)
    assert sorted(c.event_id for c in cmds if type(c) is Ignored) == ["again", "nope"]
    assert all(c.reason == "unknown_incident" for c in cmds if type(c) is Ignored)
    assert len(emitted(cmds, "escalation.resolved")) == 3
    assert not emitted(cmds, "incident.updated")


def test_members_joining_at_the_resolution_instant_join_first() -> None:
    docs = [created("A", 0), created("B", 1), created("C", 2), resolved(INCIDENT, at(5)), created("D", 5)]
    cmds = run(docs)
    (end,) = emitted(cmds, "incident.resolved")
    assert end.event["data"]["tickets"] == ["A", "B", "C", "D"]
    assert [e.type for e in emitted(cmds)][-1] != "incident.updated"


def test_members_are_bounded_and_counted_beyond_the_bound() -> None:
    base = ms("2026-11-20T10:00:00Z")
    window = None
    out: list[Emit] = []
    snap = {
        "priority": "low",
        "status": "new",
        "group": None,
        "assignee": None,
        "requester_tier": "standard",
        "tags": [],
    }
    for i in range(MAX_MEMBERS + 20):
        sig = IncidentSignal("outage", "mail", f"T{i:03d}", base + i, [f"r{i}", "p", False, snap])
        window, emits = observe(window, sig, PS)
        out += emits
    assert window is not None
    window, emits = settle(window, base + 10_000, PS)
    out += emits
    assert window.count == MAX_MEMBERS + 20 and len(window.members) == MAX_MEMBERS
    assert len([e for e in out if e.type == "escalation.raised"]) == MAX_MEMBERS
    last = [e for e in out if e.type == "incident.updated"][-1].event["data"]
    assert (last["joined"], last["joined_count"], last["count"]) == ([], 1, MAX_MEMBERS + 20)


def test_rules_without_a_lifecycle_keep_todays_outputs() -> None:
    plain = load_policy_text(POLICY.split("    escalate_members", maxsplit=1)[0], "p.yaml")
    docs = [created("A", 0), created("B", 1), created("C", 2), created("D", 4), resolved(INCIDENT, at(5))]
    cmds = run(docs, plain, until="2026-11-20T12:00:00Z")
    assert [e.type for e in emitted(cmds) if e.key == "mail"] == ["incident.detected", "notification.requested"]
    assert [c.reason for c in cmds if type(c) is Ignored] == ["unknown_incident"]
    assert (
        plain.version == load_policy_text(POLICY.split("    escalate_members", maxsplit=1)[0] + "\n", "q.yaml").version
    )


def test_parse_incident_id_takes_the_longest_rule_and_keeps_colons_in_values() -> None:
    two = load_policy_text(
        POLICY + "  - {id: 'outage:eu', group_by: product, threshold: 2, window: 1m, notify: [{role: x}]}\n", "p.yaml"
    )
    assert parse_incident_id("incident:outage:eu:a:b:12", two) == ("outage:eu", "a:b")
    assert parse_incident_id("incident:outage:mail:12", two) == ("outage", "mail")
    assert parse_incident_id("incident:outage:mail:x", two) is None
    assert parse_incident_id("other:outage:mail:1", two) is None


def test_ticks_between_events_change_nothing() -> None:
    """The simulator settled at any instants between events (a live partition's watermarks) gives the same."""
    from escalator.replay.simulate import Simulator

    docs = [created("A", 0), created("B", 1), created("C", 2), created("D", 4), resolved(INCIDENT, at(8))]
    docs += [created("E", 20), created("F", 21), created("G", 21)]  # a second incident (cooldown = window) ...
    events = [decode_record(orjson.dumps(d)) for d in docs]
    end = ms("2026-11-20T12:00:00Z")
    plain = [encode_event(e.event) for e in emitted(list(simulate(events, PS, end)))]
    assert any(b'"quiet"' in b for b in plain)  # ... that ends quietly
    for step in (1, 7_000, 60_000, 170_000):
        sim = Simulator(PS, end)
        out: list[Any] = []
        for e in events:
            t = (sim.latest_ms or e.time_ms) + step
            while t < e.time_ms:
                out += sim.advance_to(t)
                t += step
            out += sim.feed(e)
        out += sim.finish()
        assert sorted(encode_event(e.event) for e in emitted(out)) == sorted(plain), step


def test_live_equals_replay_with_incident_lifecycles() -> None:
    """The stream runtime (3 partitions, 2 workers, incident windows on their own partitions) publishes exactly
    what the replay does: members, updates, member escalations, resolutions by input and by quiet time."""
    from tests.stream_world import World, drive, oracle
    from tests.support import EXAMPLE_POLICY

    text = EXAMPLE_POLICY.read_text().replace(
        "cooldown: 1h, notify: [{role: incident_manager}]}",
        "cooldown: 1h, notify: [{role: incident_manager}], escalate_members: {level: 2, notify: [{team: sre}]},"
        " auto_resolve_after: 20m, requester_updates: true}",
    )
    text = text.replace("    requester_updates: true", "    requester_updates: true\n    resolve_events: true", 1)
    policy = load_policy_text(text, "life.yaml")
    assert policy.incidents[0].lifecycle
    from escalator.synth import lifecycle_events

    t0 = ms("2026-11-20T10:00:00Z")
    docs: list[dict[str, Any]] = list(lifecycle_events(60, seed=3, start_ms=t0, per_hour=600.0))
    first = oracle(docs, policy, ms(str(docs[-1]["time"])) + 3_600_000)
    detected = sorted(k for k in first if k.startswith("incident:") and k.count(":") == 3)
    assert detected, "the scenario must include an incident"
    at = int(detected[0].rsplit(":", 1)[1]) + 5 * 60_000
    from escalator.core import format_ms

    docs.append(resolved(detected[0], format_ms(at), "res-live"))
    docs.append(resolved("incident:outage:nothing:1", format_ms(at + 1), "res-unknown"))
    docs.sort(key=lambda d: ms(str(d["time"])))
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(policy, t0, partitions=3, max_batch=17)
    a, b = world.worker(), world.worker()
    world.assign((a, [0, 2]), (b, [1]))
    until = drive(world, [a, b], docs, end, every_ms=600_000)
    expected = oracle(docs, policy, until)
    kinds = {orjson.loads(v)["type"] for v in expected.values()}
    assert {"incident.updated", "incident.resolved", "escalation.resolved"} <= kinds
    assert f"{detected[0]}:resolved" in expected and b'"statuspage"' in expected[f"{detected[0]}:resolved"]
    got = world.output_ids()
    assert sorted(set(expected) - set(got)) == [] and sorted(set(got) - set(expected)) == []
    assert all(v == {expected[k]} for k, v in got.items())
    ignored = sum(s.ignored["unknown_incident"] for w in (a, b) for s in w.observer.batches)
    assert ignored == 1


def test_the_notify_relay_reads_the_new_outputs_instead_of_dead_lettering_them() -> None:
    from escalator.notify.routing import parse_notice

    docs = [created("A", 0), created("B", 1), created("C", 2), created("D", 4), resolved(INCIDENT, at(8))]
    cmds = run(docs)
    (update,) = emitted(cmds, "incident.updated")
    (end,) = emitted(cmds, "incident.resolved")
    u = parse_notice(encode_event(update.event))
    assert (u.action, u.recipients, u.alert_key) == ("trigger", (), INCIDENT)  # routed nowhere: counted unrouted
    r = parse_notice(encode_event(end.event))
    assert (r.action, r.alert_key) == ("resolve", INCIDENT)  # resolves the incident.detected alert


_BASE = ms("2026-11-20T10:00:00Z")
_instants = st.integers(min_value=0, max_value=80).map(lambda k: _BASE + k * 45_000)  # often shared


@st.composite
def incident_input(draw: Any) -> list[dict[str, Any]]:
    """Creations (ids "T-0", "T-1" ... whose string order is not their number's) and input incident.resolved
    events, several of them often at one instant -- then in any arrival order."""
    creations = draw(st.lists(st.tuples(_instants, st.sampled_from(["mail", "web"])), min_size=3, max_size=40))
    docs = [{**created(f"T-{i}", 0, product), "time": format_ms(t)} for i, (t, product) in enumerate(creations)]
    resolutions = draw(st.lists(st.tuples(_instants, st.sampled_from(["mail", "web"]), st.integers(0, 1)), max_size=4))
    for j, (t, product, later) in enumerate(resolutions):
        data = {"rule": "outage", "group_value": product, "by": "tool"}
        docs.append(envelope("incident.resolved", format_ms(t + later), f"S{j}", data, f"res-{j}"))
    rank = draw(st.permutations(range(len(docs))))
    return [d for _, _, d in sorted(zip([ms(str(d["time"])) for d in docs], rank, docs, strict=True))]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incident_input(), st.lists(st.integers(min_value=250, max_value=600_000), min_size=1, max_size=5))
def test_incident_outputs_do_not_depend_on_ticks_or_stored_windows(
    docs: list[dict[str, Any]], steps: list[int]
) -> None:
    """Live == replay for incidents: settling the windows at any instants between events (a partition's
    watermarks), storing every window (to_dict -> JSON -> from_dict) between any two steps, and the order in
    which the events of one instant arrive change nothing."""
    from escalator.core import IncidentWindow
    from escalator.replay.simulate import Simulator

    events = [decode_record(orjson.dumps(d)) for d in docs]
    in_order = sorted(events, key=lambda e: (e.time_ms, e.ticket_id))  # the order the live partition releases
    end = _BASE + 3 * 3_600_000
    plain = sorted(encode_event(e.event) for e in emitted(list(simulate(in_order, PS, end))))
    sim = Simulator(PS, end)
    out: list[Any] = []
    for n, e in enumerate(events):
        step = steps[n % len(steps)]
        t = (sim.latest_ms if sim.latest_ms is not None else e.time_ms) + step
        while t < e.time_ms:
            out += sim.advance_to(t)
            t += step
        out += sim.feed(e)
        sim.windows = {
            k: IncidentWindow.from_dict(orjson.loads(orjson.dumps(w.to_dict()))) for k, w in sim.windows.items()
        }
    out += sim.finish()
    assert sorted(encode_event(e.event) for e in emitted(out)) == plain


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(incident_input(), st.sampled_from([PS, PLAIN]))
def test_live_equals_replay_for_incidents_whatever_the_order_within_an_instant(
    docs: list[dict[str, Any]], policy: Any
) -> None:
    """The stream runtime (2 partitions, incident windows behind watermarks) publishes exactly what the replay of
    the same log does, events of one instant in any order."""
    from tests.stream_world import World, drive, oracle

    world = World(policy, _BASE, partitions=2)
    a = world.worker()
    world.assign((a, [0, 1]))
    until = drive(world, [a], docs, _BASE + 3 * 3_600_000, every_ms=600_000)
    expected = oracle(docs, policy, until)
    got = world.output_ids()
    assert sorted(set(expected) ^ set(got)) == []
    assert all(v == {expected[k]} for k, v in got.items())


def _one_instant_docs(order: list[str]) -> list[dict[str, Any]]:
    """A and B, then several creations at one instant in the given (log) order."""
    return [created("A", 0), created("B", 1), *(created(t, 2) for t in order)]


def _outputs(docs: list[dict[str, Any]], policy: Any, until: str) -> dict[str, bytes]:
    return {e.id: encode_event(e.event) for e in emitted(run(docs, policy, until))}


def test_creations_at_one_instant_trip_an_incident_the_same_in_any_arrival_order() -> None:
    """Which creations trip a detection (and so the incident's tickets, members and escalations) does not depend
    on the order in which creations of one instant arrive: the live incident partition releases them in (time,
    ticket) order, and the replay must agree ("T-10" < "T-9")."""
    from itertools import permutations

    for policy in (PS, PLAIN):
        for tickets in (["T-10", "T-9"], ["T-10", "T-11", "T-9"]):
            in_id_order = _outputs(_one_instant_docs(tickets), policy, "2026-11-20T12:00:00Z")
            for order in permutations(tickets):
                assert _outputs(_one_instant_docs(list(order)), policy, "2026-11-20T12:00:00Z") == in_id_order, order
            detected = orjson.loads(in_id_order[INCIDENT])
            assert detected["data"]["tickets"] == ["A", "B", "T-10"]


def test_live_equals_replay_for_creations_at_one_instant_out_of_id_order() -> None:
    """The stream runtime against the replay: creations of one instant logged out of ticket-id order."""
    from tests.stream_world import World, drive, oracle

    for policy in (PS, PLAIN):
        docs = [*_one_instant_docs(["T-9", "T-10"]), created("Z", 30, "web")]
        world = World(policy, ms(at(0)), partitions=2)
        a = world.worker()
        world.assign((a, [0, 1]))
        until = drive(world, [a], docs, ms("2026-11-20T12:00:00Z"), every_ms=600_000)
        expected = oracle(docs, policy, until)
        assert INCIDENT in expected
        got = world.output_ids()
        assert sorted(set(expected) ^ set(got)) == []
        assert all(v == {expected[k]} for k, v in got.items())


def test_an_input_partition_that_never_had_a_record_does_not_hold_the_incident_windows() -> None:
    """Low traffic leaves partitions empty: a partition with no record (nothing committed, nothing consumed) is
    caught up -- its watermark follows the clock -- so detections on the busy partitions go out."""
    from escalator.stream.partitioner import partition_for
    from tests.stream_world import World, drive, oracle

    on_zero = [t for t in (f"P-{i}" for i in range(40)) if partition_for(t.encode(), 2) == 0][:3]
    docs = [created(t, i) for i, t in enumerate(on_zero)]
    world = World(PLAIN, _BASE, partitions=2)
    a = world.worker()
    world.assign((a, [0, 1]))
    until = drive(world, [a], docs, _BASE + 3_600_000, every_ms=600_000)
    expected = oracle(docs, PLAIN, until)
    assert any(k.startswith("incident:outage:mail:") for k in expected)
    assert sorted(set(expected) ^ set(world.output_ids())) == []
