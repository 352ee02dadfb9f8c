"""The event-time simulator: equal to step-by-step application of the core (the live service's behaviour), ordered
across tickets, robust to bad lines; golden outputs on a real sample.

The golden sample is derived from the UCI "Incident management process enriched event log" (Amaral, Fantinato,
Reijers, Peres, 2018; CC BY 4.0); see tests/data/README.md.
"""

from __future__ import annotations

import heapq
import os
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.core import (
    Emit,
    Event,
    IncidentSignal,
    IncidentWindow,
    PolicySet,
    TicketState,
    advance,
    apply,
    decode_record,
    encode_event,
    load_policy_text,
    observe,
    window_key,
)
from escalator.core.timefmt import format_ms
from escalator.replay import Reject, Simulator, simulate, simulate_lines
from escalator.replay.run import run_lines
from tests.support import ROOT, created, envelope, example_policy, ms, status

DATA = Path(__file__).resolve().parent.parent / "data"
PS = example_policy()
# The example policy plus an incident rule that fires with a handful of tickets, so incidents are exercised too.
PS_INCIDENTS = load_policy_text(
    (ROOT / "examples" / "policy.yaml").read_text().replace("threshold: 10, window: 15m", "threshold: 2, window: 2h"),
    "policy-with-small-incidents.yaml",
)
START = ms("2026-11-20T08:00:00Z")

ACTIONS = [
    ("commented", {"author": "agent"}),
    ("commented", {"author": "agent"}),
    ("commented", {"author": "requester"}),
    ("commented", {"author": "agent", "public": False}),
    ("status_changed", {"status": "pending"}),
    ("status_changed", {"status": "open"}),
    ("status_changed", {"status": "solved"}),
    ("status_changed", {"status": "closed"}),
    ("updated", {"changes": {"priority": "normal"}}),
    ("updated", {"changes": {"priority": "urgent"}}),
    ("updated", {"changes": {"tags": ["legal"]}}),
    ("escalation_acknowledged", {"by": "lead"}),
    ("escalation_requested", {}),
    ("rated", {"score": 1}),
]


@st.composite
def arrivals(draw: Any) -> list[Event]:
    """Several tickets' lifecycles, interleaved in a random arrival order (each ticket keeps its own order);
    times sometimes go backwards, some events are redelivered, some tickets get events before being created."""
    n = draw(st.integers(min_value=1, max_value=4))
    per_ticket: list[list[Event]] = []
    for i in range(n):
        tid = f"T{i}"
        t = START + draw(st.integers(min_value=0, max_value=6 * 3600)) * 1000
        docs = []
        tier = draw(st.sampled_from(["vip", "standard"]))
        first = envelope(
            "ticket.created",
            format_ms(t),
            tid,
            {
                "priority": draw(st.sampled_from(["urgent", "high", "normal"])),
                "requester": {"id": "r", "tier": tier},
                "product": "mail",
            },
        )
        docs.append(first)
        for _ in range(draw(st.integers(min_value=0, max_value=10))):
            t += draw(st.integers(min_value=-900, max_value=3 * 3600)) * 1000
            etype, data = draw(st.sampled_from(ACTIONS))
            docs.append(envelope(f"ticket.{etype}", format_ms(t), tid, data))
            if draw(st.integers(0, 9)) == 0:
                docs.append(dict(docs[-1]))  # a redelivered duplicate
        if len(docs) > 1 and draw(st.integers(0, 5)) == 0:
            docs[0], docs[1] = docs[1], docs[0]  # an event before the creation (implicit ticket, created late)
        per_ticket.append([decode_record(orjson.dumps(d)) for d in docs])
    order = draw(st.permutations([i for i, evs in enumerate(per_ticket) for _ in evs]))
    cursors = [0] * n
    out = []
    for i in order:
        out.append(per_ticket[i][cursors[i]])
        cursors[i] += 1
    return out


def live(events: list[Event], policy: PolicySet, end: int, ticks: list[int | None]) -> list[Emit]:
    """The live service, step by step: when an event with time ``t`` arrives its timer has advanced every ticket to
    just before ``t`` (and it may have ticked at any earlier instant too, ``ticks``); the event is applied; at the end
    every ticket is advanced to ``end``. (A late event, whose time goes backwards, therefore moves nothing forward,
    as in the simulator.) Incident signals are held by the incident partition until its watermark -- every event
    before the newest one applied -- passes them, then observed in (time, ticket) order."""
    tickets: dict[str, TicketState] = {}
    windows: dict[str, IncidentWindow] = {}
    held: list[tuple[int, str, str, str, int, IncidentSignal]] = []
    out: list[Any] = []

    def take(cmds: list[Any]) -> None:
        for c in cmds:
            out.append(c)
            if isinstance(c, IncidentSignal):
                heapq.heappush(held, (c.time_ms, c.ticket_id, c.rule_id, c.group_value, len(out), c))

    def release(watermark: int) -> None:
        while held and held[0][0] <= watermark:
            c = heapq.heappop(held)[5]
            key = window_key(c.rule_id, c.group_value)
            windows[key], emits = observe(windows.get(key), c, policy)
            out.extend(emits)

    def tick(at: int) -> None:
        for tid in sorted(tickets):
            tickets[tid], cmds = advance(tickets[tid], at, policy)
            take(cmds)

    newest = START
    for i, e in enumerate(events):
        newest = max(newest, e.time_ms)
        release(newest - 1)
        extra = ticks[i] if i < len(ticks) else None
        if extra is not None:
            tick(min(extra, e.time_ms - 1))
        tick(e.time_ms - 1)
        tickets[e.ticket_id], cmds = apply(tickets.get(e.ticket_id), e, policy)
        take(cmds)
        release(newest - 1)
    release(end)
    tick(end)
    return [c for c in out if isinstance(c, Emit)]


def by_key(emits: list[Emit]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for e in emits:
        out.setdefault(e.key, []).append(encode_event(e.event))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(events=arrivals(), data=st.data())
def test_simulate_equals_step_by_step_core(events: list[Event], data: Any) -> None:
    policy = data.draw(st.sampled_from([PS, PS_INCIDENTS]))
    end = max(e.time_ms for e in events) + data.draw(st.integers(min_value=0, max_value=3 * 86_400)) * 1000
    ticks = data.draw(st.lists(st.one_of(st.none(), st.integers(min_value=START, max_value=end)), max_size=len(events)))
    got = [c for c in simulate(events, policy, until_ms=end) if isinstance(c, Emit)]
    expected = live(events, policy, end, ticks)
    # the same outputs, byte for byte, in the same order per ticket (per record key) ...
    assert by_key(got) == by_key(expected)
    # ... and the same multiset overall, every id once
    assert sorted(encode_event(e.event) for e in got) == sorted(encode_event(e.event) for e in expected)
    ids = [e.id for e in got]
    assert len(ids) == len(set(ids))


def test_deadlines_fire_in_time_order_across_tickets_before_the_next_event() -> None:
    # Two urgent VIP tickets (first response 15m, warnings at 50% and 80%): B is created first but A's and B's
    # thresholds interleave; an event at 09:20 comes after every threshold before 09:20, of both tickets.
    events = [
        created("2026-11-23T09:00:00Z", "B"),
        created("2026-11-23T09:00:00Z", "A"),
        status("2026-11-23T09:20:00Z", "pending", "C"),
    ]
    order = []
    for c in simulate(events, PS):
        if isinstance(c, Emit):
            order.append((c.event["time"], c.id))
        elif isinstance(c, IncidentSignal):
            order.append(("signal", c.ticket_id))
    fired = [o for o in order if o[0] != "signal"]
    assert [f for f in fired if "first_response" in f[1]][:6] == [
        ("2026-11-23T09:07:30Z", "A:first_response:1:warn:0.5"),  # a tie at 09:07:30: ticket id order
        ("2026-11-23T09:07:30Z", "B:first_response:1:warn:0.5"),
        ("2026-11-23T09:12:00Z", "A:first_response:1:warn:0.8"),
        ("2026-11-23T09:12:00Z", "B:first_response:1:warn:0.8"),
        ("2026-11-23T09:15:00Z", "A:first_response:1:breach"),
        ("2026-11-23T09:15:00Z", "A:first_response:1:esc:L1"),
    ]
    times = [t for t, _ in fired]
    assert times == sorted(times), "outputs come in time order"
    # the run ends at the last event (09:20): nothing after it has fired
    assert max(times) <= "2026-11-23T09:20:00Z"
    assert any(i == "A:resolution:1:warn:0.5" for _, i in fired) is False


def test_until_extends_and_bounds_the_run() -> None:
    events = [created("2026-11-23T09:00:00Z", "A"), created("2026-11-23T12:00:00Z", "B")]
    sim = Simulator(PS, until_ms=ms("2026-11-23T10:00:00Z"))
    out = [c for e in events for c in sim.feed(e)] + sim.finish()
    ids = [c.id for c in out if isinstance(c, Emit)]
    assert sim.events_after_until == 1 and "B" not in sim.tickets
    assert "A:resolution:1:warn:0.5" not in ids and "A:first_response:1:esc:L2" in ids  # 09:45
    assert max(c.event["time"] for c in out if isinstance(c, Emit)) <= "2026-11-23T10:00:00Z"


def test_simulate_lines_rejects_bad_lines_in_place_and_goes_on() -> None:
    good = [
        orjson.dumps(
            envelope(
                "ticket.created",
                "2026-11-23T09:00:00Z",
                "A",
                {"priority": "urgent", "requester": {"id": "r", "tier": "vip"}},
            )
        )
        + b"\n",
        orjson.dumps(envelope("ticket.commented", "2026-11-23T09:05:00Z", "A", {"author": "agent"})) + b"\n",
    ]
    lines = [
        (1, good[0]),
        (2, b"{not json\n"),
        (3, b"\n"),
        (4, orjson.dumps(envelope("ticket.teleported", "2026-11-23T09:01:00Z", "A")) + b"\n"),
        (5, orjson.dumps(envelope("ticket.commented", "2026-11-31T09:01:00Z", "A", {"author": "agent"}))),
        (6, b'{"specversion": "1.0", "type": ["ticket.created"]}'),  # a non-string type is an unknown type
        (7, good[1]),
    ]
    out = list(simulate_lines(lines, PS))
    rejects = [c for c in out if isinstance(c, Reject)]
    assert [(r.line, r.reason) for r in rejects] == [
        (2, "invalid_json"),
        (3, "invalid_json"),
        (4, "unknown_type"),
        (5, "schema_violation"),
        (6, "unknown_type"),
    ]
    assert "time" in rejects[3].detail and rejects[3].event_id is not None
    assert rejects[4].detail.startswith("unknown event type [")
    valid = [decode_record(good[0]), decode_record(good[1])]
    assert [c for c in out if not isinstance(c, Reject)] == list(simulate(valid, PS))


def test_golden_outputs_of_the_servicenow_sample() -> None:
    """``simulate --out`` on the imported sample: every emitted event, byte for byte (sorted keys)."""
    policy = load_policy_text(
        (ROOT / "examples" / "servicenow-policy.yaml").read_text(), "examples/servicenow-policy.yaml"
    )
    raw = (DATA / "servicenow_sample.events.jsonl").read_bytes().splitlines()
    emits = [encode_event(c.event) for c in simulate((decode_record(x) for x in raw), policy) if isinstance(c, Emit)]
    data = b"".join(x + b"\n" for x in emits)
    path = DATA / "servicenow_sample.outputs.jsonl"
    if os.environ.get("ESCALATOR_UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes()
    # run_lines (the CLI's loop) writes exactly the same bytes
    import io

    buf = io.BytesIO()
    result = run_lines(enumerate(raw, 1), policy, out=buf)
    assert buf.getvalue() == data and result.outputs_written == len(emits)
    assert len(emits) > 50
