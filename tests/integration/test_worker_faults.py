"""The worker under faults and backlogs, against a real broker, with the replay simulator as the oracle:
a worker paused past its session while traffic flows (a zombie when it wakes), a backlog spread over every
partition (incidents and SLA deadlines in catch-up), and a stop under load.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from escalator.core import Emit, decode_record, encode_event, parse_rfc3339_ms
from escalator.replay.simulate import simulate
from tests.integration.test_worker import (
    POLICY,
    Feeder,
    assert_matches_oracle,
    burst_processed,
    consumed,
    oracle,
    outputs,
    scenario,
)
from tests.integration.workers import Collector, Deployment, event_record, outputs_by_id, produce
from tests.waiting import wait_until

pytestmark = pytest.mark.broker


@pytest.fixture
def dep(kafka: Any, tmp_path: Path) -> Deployment:
    d = Deployment(kafka.bootstrap, kafka.flavour, tmp_path)
    d.create_topics()
    return d


def both_own_partitions(a: Any, b: Any) -> bool:
    ra, rb = (orjson.loads(w.get("/readyz")[1] or b"{}") for w in (a, b))
    return bool(ra.get("ready") and rb.get("ready") and ra.get("partitions") and rb.get("partitions"))


def test_a_worker_paused_past_its_session_under_traffic_changes_nothing(dep: Deployment) -> None:
    """SIGSTOP one of two workers for twice its session timeout while events flow, then SIGCONT: the other takes
    its partitions over, the paused one wakes as a zombie with records in flight, the group rebalances again.
    Every output equals replay: none missing, none extra, no id with two contents."""
    session = float(dep.env()["ESCALATOR_SESSION_TIMEOUT_SECONDS"])
    a = dep.worker(0).start()
    b = dep.worker(1).start()
    try:
        a.wait_ready()
        b.wait_ready()
        wait_until(lambda: both_own_partitions(a, b), 60, "both workers to own partitions")
        docs = scenario(int(time.time() * 1000) + 500, 16, "zz", burst=BURST)
        expected = oracle(docs)
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            feeder = Feeder(dep, docs)
            feeder.start()
            wait_until(lambda: burst_processed([a, b], docs, feeder), 60, "the burst to be processed")
            assert b.proc is not None
            b.proc.send_signal(signal.SIGSTOP)
            stopped = time.monotonic()
            # the survivor owns everything while b sleeps
            wait_until(
                lambda: sorted(orjson.loads(a.get("/readyz")[1] or b"{}").get("partitions", [])) == [0, 1, 2, 3],
                30,
                "the survivor to take every partition over",
            )
            wait_until(lambda: time.monotonic() - stopped > 2 * session, 10, "the pause to outlast the session")
            b.proc.send_signal(signal.SIGCONT)
            wait_until(lambda: both_own_partitions(a, b), 60, "the woken worker to rejoin and own partitions")
            feeder.join(timeout=90)
            assert feeder.error is None
            assert_matches_oracle(collector, dep, expected, timeout=60, feeder=feeder)
        assert "re-validating" in b.log_text() or "lost" in b.log_text() or "revoked" in b.log_text()
    finally:
        if b.proc is not None and b.proc.poll() is None:
            b.proc.send_signal(signal.SIGCONT)
        assert a.stop() == 0, a.log_tail()
        assert b.stop() == 0, b.log_tail()


BURST = 40


def history(end_ms: int, tickets: int, run: str) -> list[dict[str, Any]]:
    """A recorded history that ended before the worker starts: tickets spread over the last ~2 minutes, several
    bursts of creations for one product (incidents), replies, pauses and closes, in time order."""
    docs = scenario(end_ms - 120_000, tickets, run)
    start = end_ms - 120_000
    for burst in range(3):  # three product outages, 3+ creations each within the rule's window
        for j in range(4):
            at = start + 20_000 + burst * 35_000 + j * 1_500
            tid = f"{run}-o{burst}-{j}"
            docs.append(
                {
                    "specversion": "1.0",
                    "id": f"{tid}-0",
                    "source": "it",
                    "type": "ticket.created",
                    "time": time_text(at),
                    "subject": tid,
                    "data": {"priority": "low", "requester": {"id": f"o{j}"}, "product": f"outage{burst}"},
                }
            )
    docs.sort(key=lambda d: (parse_rfc3339_ms(d["time"]), d["subject"]))
    return docs


def time_text(ms: int) -> str:
    from escalator.core import format_ms

    return format_ms(ms)


def test_a_backlog_over_every_partition_equals_replay_up_to_the_workers_clock(dep: Deployment) -> None:
    """A whole history is in the input before any worker runs (a restart after an outage, a bulk import). Two
    workers catch up at their own pace per partition. Incidents still see creations in time order, and SLA
    outputs differ from replay only by the end instant: every live output stamped at or before T is exactly
    replay's up to T, where T is an instant the workers' clocks had passed."""
    now = int(time.time() * 1000)
    docs = history(now - 5_000, 24, "bk")
    produce(dep.bootstrap, dep.topics["input"], [event_record(d) for d in docs])
    a = dep.worker(0).start()
    b = dep.worker(1).start()
    try:
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            a.wait_ready()
            b.wait_ready()
            wait_until(
                lambda: (
                    sum(consumed(w, t) for w in (a, b) for t in ("ticket.created",))
                    >= sum(1 for d in docs if d["type"] == "ticket.created")
                ),
                60,
                "the backlog to be applied",
            )
            lateness = float(dep.env()["ESCALATOR_ALLOWED_LATENESS_SECONDS"])
            t_end = int(time.time() * 1000) - int(lateness * 1000) - 500  # both workers' clocks are past it

            events = [decode_record(orjson.dumps(d)) for d in docs]
            expected = {
                c.id: encode_event(c.event) for c in simulate(events, POLICY, until_ms=t_end) if isinstance(c, Emit)
            }
            assert sum(1 for k in expected if k.startswith("incident:")) >= 3 * 2
            assert any(":breach" in k for k in expected)

            def stamped_until(rs: list[Any]) -> dict[str, set[bytes]]:
                live = outputs_by_id(
                    r for r in rs if r.topic in (dep.topics["escalations"], dep.topics["notifications"])
                )
                return {k: v for k, v in live.items() if parse_rfc3339_ms(orjson.loads(next(iter(v)))["time"]) <= t_end}

            collector.wait_for(
                lambda rs: set(expected) <= set(stamped_until(rs)), 60, "every output replay has up to T"
            )
            got = stamped_until(collector.snapshot())
            assert sorted(set(got) - set(expected)) == []  # nothing live stamped before T that replay lacks
            assert all(v == {expected[k]} for k, v in got.items())
            incidents = sorted(k for k in got if k.startswith("incident:") and not k.endswith(":notify"))
            assert incidents == sorted(k for k in expected if k.startswith("incident:") and not k.endswith(":notify"))
            assert outputs(collector, dep)
    finally:
        assert a.stop() == 0, a.log_tail()
        assert b.stop() == 0, b.log_tail()


def test_a_stop_under_load_exits_zero_and_the_next_worker_owes_nothing(dep: Deployment) -> None:
    """SIGTERM while deadlines fire and events flow: the worker finishes its batches in flight, commits, leaves
    the group and exits 0; a new worker goes on, and the outputs equal replay."""
    worker = dep.worker().start()
    restarted = None
    try:
        worker.wait_ready()
        docs = scenario(int(time.time() * 1000) + 500, 24, "tm", burst=BURST)
        expected = oracle(docs)
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            feeder = Feeder(dep, docs)
            feeder.start()
            wait_until(lambda: burst_processed([worker], docs, feeder), 60, "the burst to be processed")
            wait_until(lambda: any(":esc:" in r.id for r in outputs(collector, dep)), 30, "deadlines to be firing")
            assert worker.stop(signal.SIGTERM) == 0, worker.log_tail()
            assert "We experienced a crash" not in worker.log_text() and "Traceback" not in worker.log_text()
            restarted = dep.worker().start()
            restarted.wait_ready()
            feeder.join(timeout=90)
            assert feeder.error is None
            assert_matches_oracle(collector, dep, expected, timeout=40, feeder=feeder)
    finally:
        worker.stop()
        if restarted is not None:
            assert restarted.stop() == 0, restarted.log_tail()
