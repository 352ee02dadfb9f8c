"""The faust adapter logic (Service) against in-memory fakes: no broker, no wall clock.

Checks what the agent and timer do with records, ticks and rebalances, and that driving the adapter with timer
ticks gives exactly the outputs of the pure core (live == replay at the adapter level).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
import orjson
import pytest
from prometheus_client import CollectorRegistry

from escalator.core import Emit, advance, apply, decode_record, encode_event
from escalator.service.app import Service
from escalator.service.clock import ManualClock
from escalator.service.codec import decode_table_value, decode_tick
from escalator.settings import Settings
from tests.support import EXAMPLE_POLICY, envelope, example_policy, ms

PS = example_policy()


@dataclass
class Msg:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class Ev:
    message: Msg

    @property
    def value(self) -> bytes:
        return self.message.value


class FakeTopic:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


class FakeTable(dict):  # type: ignore[type-arg]
    pass


@pytest.fixture
def svc(tmp_path: Path) -> Service:
    settings = Settings(
        bootstrap_servers="127.0.0.1:1",
        store="memory",
        data_dir=tmp_path,
        app_id="unit",
        policy_file=EXAMPLE_POLICY,
        allowed_lateness_seconds=1.0,
        closed_retention_seconds=3600,
    )
    app = faust.App("unit", broker="kafka://127.0.0.1:1", store="memory://", autodiscover=False, web_enabled=False)
    s = Service(app, settings, ManualClock(ms("2026-11-20T10:00:00Z")), CollectorRegistry(), PS)
    for name in ("ticks_topic", "signals_topic", "escalations", "notifications", "dlq"):
        setattr(s, name, FakeTopic(name))
    s.tickets = FakeTable()  # type: ignore[assignment]
    s.windows = FakeTable()  # type: ignore[assignment]
    s.active_partitions = lambda: {0, 1}  # type: ignore[method-assign]
    s.partition_lag = lambda p: 0  # type: ignore[method-assign]  # caught up unless a test says otherwise
    s.set_ready(True)
    return s


def record(offset: int, doc: dict[str, Any], partition: int = 0) -> Ev:
    return Ev(Msg("ticket-events", partition, offset, doc["subject"].encode(), orjson.dumps(doc)))


def outputs(s: Service) -> list[bytes]:
    return [m["value"] for t in (s.escalations, s.notifications) for m in t.sent]  # type: ignore[attr-defined]


def sample(s: Service, name: str, **labels: str) -> float:
    value = s.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


CREATED = envelope(
    "ticket.created",
    "2026-11-20T10:00:00Z",
    "T1",
    {"priority": "urgent", "requester": {"id": "r", "tier": "vip"}},
    event_id="c1",
)


async def test_record_updates_table_and_arms_deadline(svc: Service) -> None:
    await svc.handle(record(0, CREATED, partition=1))
    p, state = decode_table_value(svc.tickets["T1"])
    assert p == 1 and state.policy_id == "vip-urgent"
    # first threshold (warning at 7m30s) + 1 s allowed lateness
    assert svc.index.next_wake() == ms("2026-11-20T10:07:31Z")
    assert sample(svc, "escalator_events_consumed_total", type="ticket.created") == 1


async def test_bad_records_go_to_the_dlq_with_reasons(svc: Service) -> None:
    bad = [
        Msg("ticket-events", 0, 5, b"T9", b"{nope", [("trace", b"abc")]),
        Msg("ticket-events", 0, 6, b"T8", orjson.dumps(CREATED)),  # key differs from subject
        Msg("ticket-events", 0, 7, b"T1", orjson.dumps({**CREATED, "type": "ticket.merged"})),
    ]
    for m in bad:
        await svc.handle(Ev(m))
    sent = svc.dlq.sent  # type: ignore[attr-defined]
    assert [dict(s["headers"])["escalator-dlq-reason"] for s in sent] == [
        b"invalid_json",
        b"key_mismatch",
        b"unknown_type",
    ]
    first = dict(sent[0]["headers"])
    assert sent[0]["key"] == b"T9" and sent[0]["value"] == b"{nope" and first["trace"] == b"abc"
    assert (first["escalator-dlq-topic"], first["escalator-dlq-partition"], first["escalator-dlq-offset"]) == (
        b"ticket-events",
        b"0",
        b"5",
    )
    assert dict(sent[2]["headers"])["escalator-dlq-event-id"] == b"c1"
    assert sample(svc, "escalator_events_rejected_total", reason="key_mismatch") == 1
    assert svc.tickets == {}


async def test_a_processing_bug_dead_letters_the_record_instead_of_crash_looping(
    svc: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    import escalator.service.app as app_module

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(app_module, "apply", broken)
    await svc.handle(record(3, CREATED))
    sent = svc.dlq.sent  # type: ignore[attr-defined]
    headers = dict(sent[0]["headers"])
    assert headers["escalator-dlq-reason"] == b"processing_error" and b"boom" in headers["escalator-dlq-detail"]
    assert headers["escalator-dlq-event-id"] == b"c1"
    assert sample(svc, "escalator_events_rejected_total", reason="processing_error") == 1


async def test_timer_sends_one_tick_and_the_tick_fires_at_logical_time(svc: Service) -> None:
    clock: ManualClock = svc.clock  # type: ignore[assignment]
    await svc.handle(record(0, CREATED))
    clock.set(ms("2026-11-20T10:07:30.500Z"))
    await svc.on_timer()
    assert svc.ticks_topic.sent == []  # type: ignore[attr-defined]  # inside the allowed lateness
    clock.set(ms("2026-11-20T10:07:31Z"))
    await svc.on_timer()
    await svc.on_timer()
    ticks = svc.ticks_topic.sent  # type: ignore[attr-defined]
    assert len(ticks) == 1 and ticks[0]["partition"] == 0 and ticks[0]["key"] == b"T1"
    assert decode_tick(ticks[0]["value"])[0] == "T1"
    await svc.handle(Ev(Msg("unit-ticks", 0, 0, b"T1", ticks[0]["value"])))
    out = [orjson.loads(v) for v in outputs(svc)]
    assert [(o["id"], o["time"]) for o in out] == [("T1:first_response:1:warn:0.5", "2026-11-20T10:07:30Z")]
    assert svc.index.next_wake() == ms("2026-11-20T10:12:01Z")  # re-armed for the 80 % warning
    assert sample(svc, "escalator_timer_lateness_seconds_count") == 1


async def test_deadlines_wait_while_the_partition_backlog_may_hold_older_events(svc: Service) -> None:
    await svc.handle(record(0, CREATED))
    svc.clock.set(ms("2026-11-20T10:30:00Z"))  # type: ignore[attr-defined]
    svc.partition_lag = lambda p: None  # type: ignore[method-assign]
    await svc.on_timer()
    assert svc.ticks_topic.sent == []  # type: ignore[attr-defined]  # backlog unknown
    svc.partition_lag = lambda p: 25  # type: ignore[method-assign]
    await svc.on_timer()
    assert svc.ticks_topic.sent == []  # type: ignore[attr-defined]  # behind, newest event 10:00 < 10:07:30
    svc.event_watermark[0] = ms("2026-11-20T10:08:00Z")
    await svc.on_timer()
    assert len(svc.ticks_topic.sent) == 1  # type: ignore[attr-defined]  # the backlog is past the deadline
    svc.partition_lag = lambda p: 0  # type: ignore[method-assign]


async def test_a_tick_that_arrives_ahead_of_the_backlog_waits(svc: Service) -> None:
    """Ticks sent before a restart are consumed after it, possibly before the input backlog: they must not fire
    thresholds that the backlog's events (e.g. a pause) would have moved."""
    await svc.handle(record(0, CREATED))
    svc.clock.set(ms("2026-11-20T10:30:00Z"))  # type: ignore[attr-defined]
    await svc.on_timer()
    (tick,) = svc.ticks_topic.sent  # type: ignore[attr-defined]
    svc.partition_lag = lambda p: 3  # type: ignore[method-assign]  # a restart: backlog not yet processed
    await svc.handle(Ev(Msg("unit-ticks", 0, 0, b"T1", tick["value"])))
    assert outputs(svc) == []
    assert svc.index.next_wake() == ms("2026-11-20T10:07:31Z")  # still armed
    pending = envelope("ticket.status_changed", "2026-11-20T10:05:00Z", "T1", {"status": "pending"})
    await svc.handle(record(1, pending))  # the backlog: the ticket was paused before its first threshold
    svc.partition_lag = lambda p: 0  # type: ignore[method-assign]
    await svc.on_timer()
    assert outputs(svc) == [] and svc.index.next_wake() is None  # paused: nothing was ever due


async def test_a_stalled_recovery_asks_for_a_rebalance_then_exits(svc: Service) -> None:
    rejoins: list[int] = []
    exits: list[int] = []

    class Coordinator:
        def request_rejoin(self) -> None:
            rejoins.append(1)

    class Consumer:
        def __init__(self) -> None:
            self._thread = self

        def _ensure_consumer(self) -> Any:
            return type("C", (), {"_coordinator": Coordinator()})()

    svc.app._consumer = Consumer()  # type: ignore[attr-defined]
    svc.exit = exits.append  # type: ignore[method-assign]
    clock: ManualClock = svc.clock  # type: ignore[assignment]
    svc.set_ready(False)
    start = clock.now_ms()
    for second in range(1, 125):  # 4 stall windows of 30 s
        clock.set(start + second * 1000)
        await svc.on_timer()
    # 30 s without progress -> a rebalance request, up to 3 times, then the process exits (status 3)
    assert len(rejoins) == 3 and exits == [3]
    assert sample(svc, "escalator_recovery_stalls_total") == 4
    svc.set_ready(True)
    assert svc.rejoins == 0


async def test_timer_is_silent_until_ready(svc: Service) -> None:
    await svc.handle(record(0, CREATED))
    svc.set_ready(False)
    svc.clock.set(ms("2026-11-21T00:00:00Z"))  # type: ignore[attr-defined]
    await svc.on_timer()
    assert svc.ticks_topic.sent == []  # type: ignore[attr-defined]
    assert sample(svc, "escalator_ready") == 0


async def test_closed_ticket_is_purged_after_retention(svc: Service) -> None:
    await svc.handle(record(0, CREATED))
    closed = envelope("ticket.status_changed", "2026-11-20T10:01:00Z", "T1", {"status": "closed"})
    await svc.handle(record(1, closed))
    assert svc.index.next_wake() == ms("2026-11-20T11:01:00Z")  # retention 1 h
    svc.clock.set(ms("2026-11-20T11:01:00Z"))  # type: ignore[attr-defined]
    await svc.on_timer()
    tick = svc.ticks_topic.sent[0]  # type: ignore[attr-defined]
    await svc.handle(Ev(Msg("unit-ticks", 0, 0, b"T1", tick["value"])))
    assert "T1" not in svc.tickets and svc.index.tickets() == 0
    assert sample(svc, "escalator_tickets_purged_total") == 1


async def test_rebuild_index_keeps_only_active_partitions(svc: Service) -> None:
    for i, (tid, part) in enumerate([("A", 0), ("B", 1), ("C", 3)]):
        doc = {**CREATED, "subject": tid, "id": f"c{i}"}
        await svc.handle(record(i, doc, partition=part))
    svc.set_ready(False)
    await svc.rebuild_index()
    assert svc.ready and svc.index.partitions == {0, 1} and svc.index.tickets() == 2
    svc.on_revoked([faust.types.TP("ticket-events", 0)])
    assert not svc.ready and svc.index.partitions == {1}


async def test_incident_signals_are_routed_and_counted(svc: Service) -> None:
    for i in range(10):
        doc = envelope(
            "ticket.created",
            f"2026-11-20T10:0{i}:00Z",
            f"I{i}",
            {"priority": "low", "requester": {"id": "r"}, "product": "mail"},
        )
        await svc.handle(record(i, doc))
    signals = svc.signals_topic.sent  # type: ignore[attr-defined]
    assert len(signals) == 10 and signals[0]["key"] == b"outage\x1fmail"
    for s in signals:
        await svc.handle_signal(s["value"])
    incidents = [orjson.loads(m["value"]) for m in svc.escalations.sent]  # type: ignore[attr-defined]
    assert [i["type"] for i in incidents] == ["incident.detected"]
    assert incidents[0]["data"]["count"] == 10
    assert sample(svc, "escalator_incidents_total", rule="outage") == 1


async def test_adapter_driven_by_ticks_equals_the_pure_core(svc: Service) -> None:
    """Live == replay at the adapter level: events interleaved with timer scans give the core's outputs."""
    docs = [
        CREATED,
        envelope("ticket.commented", "2026-11-20T10:20:00Z", "T1", {"author": "agent"}),
        envelope("ticket.commented", "2026-11-20T10:40:00Z", "T1", {"author": "requester"}),
        envelope("ticket.status_changed", "2026-11-20T11:00:00Z", "T1", {"status": "pending"}),
        envelope("ticket.status_changed", "2026-11-20T13:00:00Z", "T1", {"status": "open"}),
    ]
    end = ms("2026-11-20T20:00:00Z")
    # the oracle: the pure core, events then one final advance
    state, expected = None, []
    for d in docs:
        state, cmds = apply(state, decode_record(orjson.dumps(d)), PS)
        expected += [encode_event(c.event) for c in cmds if isinstance(c, Emit)]
    state, cmds = advance(state, end - 1000, PS)
    expected += [encode_event(c.event) for c in cmds if isinstance(c, Emit)]
    # the adapter: each event arrives at its own time; the timer scans every 30 s of wall time in between
    clock: ManualClock = svc.clock  # type: ignore[assignment]
    times = [ms(d["time"]) for d in docs] + [end]
    tick_offset = 0
    for i, d in enumerate(docs):
        clock.set(times[i])
        await svc.handle(record(i, d))
        t = times[i]
        while t + 30_000 < times[i + 1]:
            t += 30_000
            clock.set(t)
            await svc.on_timer()
            for tick in list(svc.ticks_topic.sent[tick_offset:]):  # type: ignore[attr-defined]
                tick_offset += 1
                await svc.handle(Ev(Msg("unit-ticks", 0, tick_offset, tick["key"], tick["value"])))
    got = outputs(svc)
    assert len(expected) >= 10  # warnings, breaches, escalations on several clocks
    # same set, and within each output topic the same order
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got)) == len(expected)
