"""The Kafka service end to end, against a real broker (embedded Tansu here; a real cluster when
KAFKA_BOOTSTRAP_SERVERS is set; testcontainers Kafka when a Docker engine answers).

Every test gets its own topics, group and app id; workers are separate processes started and stopped by PID on
loopback. The oracle is the replay simulator over the same events: live output must equal it (ids and content).
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from escalator.core import Emit, decode_record, encode_event
from escalator.core.timefmt import format_ms, parse_rfc3339_ms
from escalator.policy_file import load_policy_file
from escalator.replay.simulate import simulate
from tests.integration.workers import (
    TEST_POLICY,
    Collector,
    Deployment,
    event_record,
    outputs_by_id,
    produce,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.broker
POLICY = load_policy_file(TEST_POLICY)


def _doc(i: int, etype: str, t: int, ticket: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"{ticket}-{i}",
        "source": "it",
        "type": f"ticket.{etype}",
        "time": format_ms(t),
        "subject": ticket,
        "data": data,
    }


def scenario(t0: int, tickets: int, run: str, burst: int = 0, burst_at: int = 3000) -> list[dict[str, Any]]:
    """Ticket lifecycles with second-scale timing, all closed at the end (no deadline left pending).

    Kinds (by index mod 4): answered in time; never answered until escalated to L2 (deadlines fire with no event);
    paused while pending; legal tag + next-reply breach. The first three tickets hit the same product (incident).
    ``burst`` tickets are created at one instant ``burst_at`` ms after t0 and left unanswered until closed 15 s
    later: back-to-back records make multi-record changelog batches, the case the embedded broker's end-offset bug
    truncates on recovery (a lost creation shows up as missing breaches and escalations).
    """
    s = 1000
    docs: list[tuple[int, dict[str, Any]]] = []
    for j in range(burst):
        tid = f"{run}-b{j:02d}"
        at = t0 + burst_at
        docs.append((at, _doc(0, "created", at, tid, {"priority": "normal", "requester": {"id": f"b{j}"}})))
        docs.append((at + 15 * s, _doc(1, "status_changed", at + 15 * s, tid, {"status": "closed"})))
    for i in range(tickets):
        o = t0 + i * 400
        tid = f"{run}-{i}"
        kind = i % 4
        product = "mail" if i < 3 else f"p{i}"
        created = {
            "priority": "high",
            "requester": {"id": f"c{i}", "tier": "standard"},
            "product": product,
            "tags": ["legal"] if kind == 3 else [],
        }
        steps: list[tuple[int, str, dict[str, Any]]] = [(0, "created", created)]
        if kind == 0:
            steps += [
                (1500, "commented", {"author": "agent"}),
                (5 * s, "status_changed", {"status": "solved"}),
                (6 * s, "status_changed", {"status": "closed"}),
            ]
        elif kind == 1:
            steps += [
                (7 * s, "commented", {"author": "agent"}),
                (9 * s, "status_changed", {"status": "solved"}),
                (10 * s, "status_changed", {"status": "closed"}),
            ]
        elif kind == 2:
            steps += [
                (1 * s, "status_changed", {"status": "pending"}),
                (3 * s, "status_changed", {"status": "open"}),
                (5500, "commented", {"author": "agent"}),
                (8 * s, "status_changed", {"status": "solved"}),
                (8500, "status_changed", {"status": "closed"}),
            ]
        else:
            steps += [
                (1 * s, "commented", {"author": "agent"}),
                (2 * s, "commented", {"author": "requester"}),
                (11 * s, "status_changed", {"status": "closed"}),
            ]
        for n, (dt, etype, data) in enumerate(steps):
            docs.append((o + dt, _doc(n, etype, o + dt, tid, data)))
    docs.sort(key=lambda x: (x[0], x[1]["subject"]))
    return [d for _, d in docs]


def oracle(docs: list[dict[str, Any]], policy: Any = POLICY) -> dict[str, bytes]:
    events = [decode_record(orjson.dumps(d)) for d in docs]
    end = max(e.time_ms for e in events) + 60_000
    out = {c.id: encode_event(c.event) for c in simulate(events, policy, until_ms=end) if isinstance(c, Emit)}
    assert out, "the scenario must produce outputs"
    return out


class Feeder(threading.Thread):
    """Sends each event when the wall clock reaches its event time (traffic pacing, in a background thread)."""

    def __init__(self, dep: Deployment, docs: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.dep, self.docs = dep, docs
        self.sent = 0
        self.max_delay_s = 0.0  # the latest an event reached the broker after its own time stamp
        self.error: BaseException | None = None

    def run(self) -> None:
        import asyncio

        from aiokafka import AIOKafkaProducer

        async def go() -> None:
            producer = AIOKafkaProducer(bootstrap_servers=self.dep.bootstrap, enable_idempotence=False, acks="all")
            await producer.start()
            try:
                for doc in self.docs:
                    due = orjson.loads(orjson.dumps(doc))["time"]
                    from escalator.core import parse_rfc3339_ms

                    at = parse_rfc3339_ms(due) / 1000
                    while time.time() < at:
                        await asyncio.sleep(min(0.02, at - time.time()))
                    key, value, _ = event_record(doc)
                    await producer.send_and_wait(self.dep.topics["input"], value, key=key)
                    self.max_delay_s = max(self.max_delay_s, time.time() - at)
                    self.sent += 1
            finally:
                await producer.stop()

        try:
            asyncio.run(go())
        except BaseException as exc:
            self.error = exc


def outputs(collector: Collector, dep: Deployment) -> list[Any]:
    return [r for r in collector.snapshot() if r.topic in (dep.topics["escalations"], dep.topics["notifications"])]


def assert_matches_oracle(
    collector: Collector, dep: Deployment, expected: dict[str, bytes], timeout: float, feeder: Feeder
) -> None:
    """Live output equals the oracle's. Precondition of the equality: every event reached the broker within the
    allowed lateness of its time stamp (checked first, so an overloaded test machine is not mistaken for a bug)."""
    lateness = float(dep.env()["ESCALATOR_ALLOWED_LATENESS_SECONDS"])
    assert feeder.max_delay_s < lateness, (
        f"the test's producer fell {feeder.max_delay_s:.2f}s behind the events' time stamps (allowed lateness "
        f"{lateness}s): the machine is overloaded, live output may legitimately differ from replay"
    )

    def complete() -> bool:
        return set(expected) <= set(outputs_by_id(outputs(collector, dep)))

    try:
        collector.wait_for(lambda _: complete(), timeout, "every output the oracle expects")
    finally:
        got = outputs_by_id(outputs(collector, dep))
        missing = sorted(set(expected) - set(got))
        assert not missing, f"missing outputs: {missing[:20]}"
    got = outputs_by_id(outputs(collector, dep))
    conflicting = {k: v for k, v in got.items() if len(v) > 1}
    assert not conflicting, f"ids emitted with different content: {sorted(conflicting)[:5]}"
    extra = sorted(set(got) - set(expected))
    assert not extra, f"outputs the oracle does not have: {extra[:20]}"
    for key, value in expected.items():
        assert got[key] == {value}, f"{key} differs from replay"


@pytest.fixture
def dep(kafka: Any, tmp_path: Path) -> Deployment:
    d = Deployment(kafka.bootstrap, kafka.flavour, tmp_path)
    d.create_topics()
    return d


def test_lifecycle_end_to_end(dep: Deployment) -> None:
    worker = dep.worker(store="rocksdb").start()
    try:
        worker.wait_ready()
        t0 = int(time.time() * 1000) + 500
        docs = scenario(t0, 2, "life")  # one ticket answered in time, one escalated by deadlines alone
        expected = oracle(docs)
        assert "life-1:first_response:1:esc:L2" in expected and "life-0:first_response:1:breach" not in expected
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            feeder = Feeder(dep, docs)
            feeder.start()
            # life-1 gets no event between creation and its reply 7 s later: breach, L1 and L2 come from timers
            collector.wait_for(
                lambda rs: any(r.id == "life-1:first_response:1:esc:L2" for r in rs),
                30,
                "the L2 escalation fired by the deadline timer",
            )
            feeder.join(timeout=60)
            assert feeder.error is None and feeder.sent == len(docs)
            assert_matches_oracle(collector, dep, expected, timeout=30, feeder=feeder)
            l2 = next(r for r in outputs(collector, dep) if r.id == "life-1:first_response:1:esc:L2")
            assert l2.key == b"life-1" and l2.headers["ce_type"] == b"escalation.raised"
            assert orjson.loads(l2.value)["data"]["fired_at"] == format_ms(t0 + 400 + 6000)

            def closed() -> bool:  # the closing event has no output: wait until it is applied
                status, body = worker.get("/tickets/life-1")
                return status == 200 and orjson.loads(body)["ticket"]["status"] == "closed"

            wait_until(closed, 10, "life-1 to be closed")
            status, body = worker.get("/tickets/life-1/timeline")  # what happened to it, in order
            entries = orjson.loads(body)["entries"]
            assert status == 200 and entries[0]["type"] == "ticket.created" and entries[-1]["what"] == "closed"
            assert "life-1:first_response:1:esc:L2" in [e["id"] for e in entries]
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_live_equals_replay(dep: Deployment) -> None:
    worker = dep.worker(store="rocksdb").start()  # the default store
    try:
        worker.wait_ready()
        docs = scenario(int(time.time() * 1000) + 500, 8, "eq")
        expected = oracle(docs)
        assert any(k.startswith("incident:outage:mail:") for k in expected)
        assert any(":trigger:legal:" in k for k in expected)
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            feeder = Feeder(dep, docs)
            feeder.start()
            feeder.join(timeout=90)
            assert feeder.error is None and feeder.sent == len(docs)
            assert_matches_oracle(collector, dep, expected, timeout=30, feeder=feeder)
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_live_equals_replay_with_incident_members(kafka: Any, tmp_path: Path) -> None:
    """The incident lifecycle through Kafka: members escalated, later ones joining (incident.updated), an input
    incident.resolved routed from its input partition to the incident's window partition, and an unknown one
    counted -- live output equals the replay's."""
    life = TEST_POLICY.read_text().replace(
        "cooldown: 5m, notify: [{role: incident_manager}]}",
        "cooldown: 5m, notify: [{role: incident_manager}], escalate_members: {level: 2, notify: [{team: sre}]},"
        " auto_resolve_after: 1h, requester_updates: true}",
    )
    assert life != TEST_POLICY.read_text()
    policy_file = tmp_path / "life-policy.yaml"
    policy_file.write_text(life)
    policy = load_policy_file(policy_file)
    d = Deployment(kafka.bootstrap, kafka.flavour, tmp_path, policy_file=policy_file)
    d.create_topics()
    worker = d.worker(store="rocksdb").start()
    try:
        worker.wait_ready()
        t0 = int(time.time() * 1000) + 500
        docs = scenario(t0, 8, "mem")  # mem-0..2 are about product mail: an incident at t0 + 800 ms
        for i, at in enumerate((t0 + 1500, t0 + 1500, t0 + 2100)):  # join later, two of them at one instant
            tid = f"mem-m{i}"
            created = {"priority": "normal", "requester": {"id": f"m{i}"}, "product": "mail"}
            docs.append(_doc(0, "created", at, tid, created))
            docs.append(_doc(1, "status_changed", at + 9000, tid, {"status": "closed"}))
        over = {"rule": "outage", "group_value": "mail", "by": "statuspage", "reason": "fixed"}
        for n, data in enumerate((over, {"incident_id": "incident:outage:nothing:1", "by": "x"})):
            doc = _doc(n, "created", t0 + 4000 + n, f"status-{n}", data)
            docs.append({**doc, "type": "incident.resolved"})
        docs.sort(key=lambda x: (parse_rfc3339_ms(x["time"]), x["subject"]))
        expected = oracle(docs, policy)
        types = {orjson.loads(v)["type"] for v in expected.values()}
        assert {"incident.updated", "incident.resolved"} <= types
        assert sum(b'"reason":"incident"' in v for v in expected.values()) == 6  # 3 tripping + 3 joining
        with Collector(d.bootstrap, list(d.topics.values())) as collector:
            feeder = Feeder(d, docs)
            feeder.start()
            feeder.join(timeout=90)
            assert feeder.error is None and feeder.sent == len(docs)
            assert_matches_oracle(collector, d, expected, timeout=30, feeder=feeder)
        wait_until(
            lambda: b'reason="unknown_incident"} 1.0' in worker.get("/metrics")[1], 10, "the unknown one counted"
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()


def consumed(worker: Any, etype: str = "ticket.created") -> float:
    text = worker.get("/metrics")[1].decode()
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == "escalator_events_consumed_total" and sample.labels.get("type") == etype:
                return float(sample.value)
    return 0.0


BURST = 40


def burst_processed(workers: list[Any], docs: list[dict[str, Any]], feeder: Feeder) -> bool:
    """The burst was sent and every creation sent so far was processed (by the workers together)."""
    burst_end = max(i for i, d in enumerate(docs) if "-b" in d["subject"] and d["type"] == "ticket.created") + 1
    if feeder.sent < burst_end:
        return False
    created = sum(1 for d in docs[: feeder.sent] if d["type"] == "ticket.created")
    return sum(consumed(w) for w in workers) >= created


def test_restart_recovers_state_and_fires_pending_deadlines(dep: Deployment) -> None:
    worker = dep.worker().start()
    restarted = None
    try:
        worker.wait_ready()
        docs = scenario(int(time.time() * 1000) + 500, 8, "rs", burst=BURST)
        expected = oracle(docs)
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            feeder = Feeder(dep, docs)
            feeder.start()
            wait_until(lambda: burst_processed([worker], docs, feeder), 60, "the burst to be processed")
            assert worker.stop() == 0, worker.log_tail()  # SIGTERM mid-run; events keep arriving
            restarted = dep.worker().start()
            restarted.wait_ready()
            feeder.join(timeout=90)
            assert feeder.error is None
            assert_matches_oracle(collector, dep, expected, timeout=40, feeder=feeder)
    finally:
        worker.stop()
        if restarted is not None:
            assert restarted.stop() == 0, restarted.log_tail()


def test_failover_survivor_fires_the_dead_workers_deadlines(dep: Deployment) -> None:
    a = dep.worker(0).start()
    b = dep.worker(1).start()
    try:
        a.wait_ready()
        b.wait_ready()

        def split() -> bool:
            ra, rb = (orjson.loads(w.get("/readyz")[1] or b"{}") for w in (a, b))
            return bool(ra.get("ready") and rb.get("ready") and ra.get("partitions") and rb.get("partitions"))

        wait_until(split, 60, "both workers to own partitions")
        docs = scenario(int(time.time() * 1000) + 500, 8, "fo", burst=BURST)
        expected = oracle(docs)
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            feeder = Feeder(dep, docs)
            feeder.start()
            wait_until(lambda: burst_processed([a, b], docs, feeder), 60, "the burst to be processed")
            # /tickets/{id} answers from either worker (a worker forwards to the owner)
            ids = {d["subject"] for d in docs[: feeder.sent]}
            ticket = sorted(ids)[0]
            wait_until(
                lambda: all(w.get(f"/tickets/{ticket}")[0] == 200 for w in (a, b)),
                20,
                f"/tickets/{ticket} on both workers",
            )
            b.kill()  # SIGKILL under traffic
            feeder.join(timeout=90)
            assert feeder.error is None
            assert_matches_oracle(collector, dep, expected, timeout=60, feeder=feeder)
            assert sorted(orjson.loads(a.get("/readyz")[1])["partitions"]) == list(range(dep.partitions))
    finally:
        a.stop()
        b.stop()


def test_bad_input_goes_to_the_dlq_while_valid_events_flow(dep: Deployment) -> None:
    # dead letters over 20,000 bytes are cut to fit (in production: what the producer and the DLQ topic accept)
    worker = dep.worker(ESCALATOR_MAX_EVENT_BYTES="50000", ESCALATOR_DLQ_MAX_BYTES="20000").start()
    try:
        worker.wait_ready()
        now = int(time.time() * 1000)
        good = [
            _doc(0, "created", now, "ok-1", {"priority": "low", "requester": {"id": "x"}}),
            _doc(1, "commented", now + 10, "ok-1", {"author": "agent"}),
        ]
        bad: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = [
            (b"b-1", b"{not json", [("trace", b"t1")]),
            (b"b-2", orjson.dumps({**good[0], "id": "x2", "subject": "b-2", "type": "ticket.exploded"}), []),
            (b"b-3", orjson.dumps({**good[0], "id": "x3", "subject": "b-3", "data": {"priority": "asap"}}), []),
            (b"other", orjson.dumps({**good[0], "id": "x4", "subject": "b-4"}), []),
            (b"b-5", b'{"x": "' + b"x" * 60_000 + b'"}', []),
        ]
        records = [event_record(good[0]), *bad[:3], event_record(good[1]), *bad[3:]]
        produce(dep.bootstrap, dep.topics["input"], records)
        with Collector(dep.bootstrap, [dep.topics["dlq"]]) as collector:
            dead = collector.wait_for(lambda rs: rs if len(rs) >= 5 else None, 30, "five dead letters")
        reasons = {r.key: r.headers["escalator-dlq-reason"] for r in dead}
        assert reasons == {
            b"b-1": b"invalid_json",
            b"b-2": b"unknown_type",
            b"b-3": b"schema_violation",
            b"other": b"key_mismatch",
            b"b-5": b"oversize",
        }
        first = next(r for r in dead if r.key == b"b-1")
        assert first.value == b"{not json" and first.headers["trace"] == b"t1"
        assert first.headers["escalator-dlq-topic"] == dep.topics["input"].encode()
        assert int(first.headers["escalator-dlq-offset"]) >= 0
        assert "escalator-dlq-truncated" not in first.headers
        big = next(r for r in dead if r.key == b"b-5")
        original = bad[4][1]
        assert big.headers["escalator-dlq-truncated"] == b"value" and original.startswith(big.value)
        assert big.headers["escalator-dlq-value-bytes"] == str(len(original)).encode() and len(big.value) < 20_000
        # the valid events around them were processed
        wait_until(lambda: worker.get("/tickets/ok-1")[0] == 200, 20, "the valid ticket to be stored")
        view = orjson.loads(worker.get("/tickets/ok-1")[1])
        fr = next(c for c in view["clocks"] if c["metric"] == "first_response")
        assert fr["status"] == "achieved"
        metrics = {
            s.name + str(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(worker.get("/metrics")[1].decode())
            for s in f.samples
        }
        for reason in ("invalid_json", "unknown_type", "schema_violation", "key_mismatch", "oversize"):
            assert metrics[f"escalator_events_rejected_total[('reason', '{reason}')]"] == 1.0
        assert metrics["escalator_events_consumed_total[('type', 'ticket.created')]"] == 1.0
    finally:
        assert worker.stop() == 0, worker.log_tail()


METRIC_CATALOGUE = {
    "escalator_events_consumed": "counter",
    "escalator_events_rejected": "counter",
    "escalator_escalations": "counter",
    "escalator_notifications": "counter",
    "escalator_sla_breaches": "counter",
    "escalator_sla_warnings": "counter",
    "escalator_open_tickets": "gauge",
    "escalator_tickets_at_risk": "gauge",
    "escalator_time_to_first_response_seconds": "histogram",
    "escalator_time_to_resolution_seconds": "histogram",
    "escalator_time_to_first_escalation_seconds": "histogram",
    "escalator_timer_lateness_seconds": "histogram",
    "escalator_event_lag_seconds": "histogram",
    "escalator_consumer_lag": "gauge",
    "escalator_table_tickets": "gauge",
    "escalator_deadline_index_entries": "gauge",
    "escalator_ready": "gauge",
    "escalator_incidents": "counter",
}


def test_http_readiness_metrics_and_policy(dep: Deployment) -> None:
    worker = dep.worker().start()
    try:
        statuses: list[int] = []

        def flipped() -> bool:
            status = worker.get("/readyz", timeout=1.0)[0]
            if status:
                statuses.append(status)
            return status == 200

        wait_until(flipped, 60, "/readyz to answer 200", interval=0.02)
        assert statuses[0] == 503, statuses[:5]  # up but not ready while the group forms and tables recover
        assert worker.get("/healthz")[0] == 200
        status, body = worker.get("/policy")
        assert status == 200 and orjson.loads(body)["version"] == POLICY.version
        now = int(time.time() * 1000)
        produce(
            dep.bootstrap,
            dep.topics["input"],
            [event_record(_doc(0, "created", now - 5000, "m-1", {"priority": "urgent", "requester": {"id": "x"}}))],
        )
        wait_until(lambda: b"escalator_sla_breaches_total{" in worker.get("/metrics")[1], 30, "a breach metric")
        text = worker.get("/metrics")[1].decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        for name, kind in METRIC_CATALOGUE.items():
            assert name in families, f"{name} missing from /metrics"
            assert families[name].type == kind, name
        for fam in families.values():
            if fam.name.startswith("escalator_"):
                for sample in fam.samples:
                    assert "ticket" not in sample.labels and "ticket_id" not in sample.labels
        lateness = families["escalator_timer_lateness_seconds"]
        count = next(s.value for s in lateness.samples if s.name.endswith("_count"))
        assert count >= 1
        assert worker.get("/tickets/nope")[0] == 404
    finally:
        assert worker.stop(signal.SIGTERM) == 0, worker.log_tail()
