"""The batched stream runtime against the in-memory broker: batches, deadlines, recovery, fencing, delivery order."""

from __future__ import annotations

import orjson
import pytest

from escalator.stream.changelog import MARKER_KEY
from escalator.stream.codec import decode_ticket
from tests.stream_world import TOPICS, World, drive, oracle, run_until_idle
from tests.support import envelope, example_policy, ms

PS = example_policy()
T0 = ms("2026-11-20T10:00:00Z")


def created(ticket: str, at: str = "2026-11-20T10:00:00Z", **data: object) -> dict[str, object]:
    return envelope(
        "ticket.created",
        at,
        ticket,
        {"priority": "urgent", "requester": {"id": "r", "tier": "vip"}, **data},
        event_id=f"{ticket}-c",
    )


def test_an_event_goes_outputs_first_then_changelog_then_store_then_commit() -> None:
    """The pipeline: a batch's outputs are delivered before its state is produced to the changelog, the changelog
    records before the store is written, and the input offset is committed last."""
    world = World(PS, T0)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()  # joins: recovers and claims every partition
    assert w.runtime.ready and w.runtime.owned() == [0, 1]
    world.send([created("T1", tags=["legal"])])
    p = next(p for p in (0, 1) if world.broker.records(TOPICS.input, p))
    part = w.runtime.tickets[p]
    changelog = lambda: [m.key() for m in world.broker.records(TOPICS.tickets_changelog, p)]  # noqa: E731
    w.runtime.step()  # the batch: the escalation is produced, nothing else yet
    assert part.state_of("T1") is not None and part.stored_state("T1") is None
    assert world.broker.records(TOPICS.escalations) == [] and w.producer.pending  # produced, not yet delivered
    assert changelog() == [b"\x00escalator:owner"] and w.consumer.commits == []
    w.runtime.step()  # nothing is confirmed yet: nothing moves, nothing waits
    assert changelog() == [b"\x00escalator:owner"] and w.consumer.commits == []
    world.deliver()  # the outputs reach the broker
    w.runtime.step()  # their delivery reports -> the state goes to the changelog
    delivered = world.broker.records(TOPICS.escalations)
    assert [orjson.loads(m.value() or b"")["id"] for m in delivered] == ["T1:trigger:legal:1"]
    assert w.producer.pending and part.stored_state("T1") is None and w.consumer.commits == []
    world.deliver()
    w.runtime.step()  # the changelog record confirmed -> the store, then the commit
    assert changelog() == [b"\x00escalator:owner", b"T1"]
    state = part.stored_state("T1")
    assert state is not None and state.policy_id == "vip-urgent"
    assert decode_ticket(world.broker.records(TOPICS.tickets_changelog, p)[-1].value() or b"").ticket_id == "T1"
    assert [c[(TOPICS.input, p)] for c in w.consumer.commits if (TOPICS.input, p) in c] == [1]
    assert sum(b.consumed["ticket.created"] for b in w.observer.batches) == 1


def test_deadlines_fire_at_their_logical_instant_after_the_allowed_lateness() -> None:
    world = World(PS, T0)
    w = world.worker()
    world.assign((w, [0, 1]))
    world.send([created("T1")])
    w.runtime.step()
    world.now = ms("2026-11-20T10:07:30.500Z")  # the 50 % warning is due at 10:07:30, lateness 1 s
    w.runtime.step()
    assert world.outputs() == []
    world.now = ms("2026-11-20T10:07:31Z")
    w.runtime.step()
    (out,) = [orjson.loads(m.value() or b"") for m in world.outputs()]
    assert (out["id"], out["time"]) == ("T1:first_response:1:warn:0.5", "2026-11-20T10:07:30Z")
    assert w.observer.batches[-1].emits[0][2] is True  # fired by the timer
    world.now = ms("2026-11-20T10:08:00Z")
    w.runtime.step()
    assert len(world.outputs()) == 1  # nothing fires twice


def test_a_deadline_waits_for_the_partition_backlog() -> None:
    """A pause stored before the first threshold but not yet consumed must be applied before the threshold fires."""
    world = World(PS, T0, max_batch=1)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()
    world.send([created("T1"), envelope("ticket.status_changed", "2026-11-20T10:05:00Z", "T1", {"status": "pending"})])
    world.now = ms("2026-11-20T10:30:00Z")
    w.runtime.step()  # applies only the creation (batch of one); the pause is still in the backlog
    assert world.outputs() == []
    w.runtime.step()  # the pause
    w.runtime.step()
    assert world.outputs() == []  # paused before any threshold: nothing was ever due


def test_catch_up_fires_deadlines_only_up_to_the_events_applied() -> None:
    """In a backlog, a ticket's later thresholds wait for the events of the partition up to them (not "now")."""
    world = World(PS, T0, max_batch=1)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()
    docs = [
        created("T1"),
        envelope("ticket.commented", "2026-11-20T10:10:00Z", "T1", {"author": "agent"}),  # after the 50 % warning
        envelope("ticket.status_changed", "2026-11-20T10:11:00Z", "T1", {"status": "solved"}),
    ]
    world.send(docs)
    world.now = ms("2026-11-20T12:00:00Z")  # two hours late: every threshold of T1 is in the past
    run_until_idle(world, w)
    expected = oracle(docs, PS, ms("2026-11-20T11:59:59Z"))
    assert world.output_ids() == {k: {v} for k, v in expected.items()}
    assert "T1:first_response:1:warn:0.5" in expected and "T1:first_response:1:breach" not in expected


def synth_docs(tickets: int, seed: int, per_hour: float = 600.0) -> list[dict[str, object]]:
    from escalator.synth import lifecycle_events

    return list(lifecycle_events(tickets, seed=seed, start_ms=T0, per_hour=per_hour))


@pytest.mark.parametrize("max_batch", [5, 17, 5000])
def test_live_equals_replay_whatever_the_batch_boundaries(max_batch: int) -> None:
    docs = synth_docs(60, seed=3)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(PS, T0, partitions=3, max_batch=max_batch)
    a, b = world.worker(), world.worker()
    world.assign((a, [0, 2]), (b, [1]))
    until = drive(world, [a, b], docs, end, every_ms=600_000)
    expected = oracle(docs, PS, until)
    assert any(k.startswith("incident:") for k in expected), "the scenario must include an incident"
    assert any(":breach" in k for k in expected) and any(":esc:" in k for k in expected)
    got = world.output_ids()
    assert sorted(set(expected) - set(got)) == [] and sorted(set(got) - set(expected)) == []
    assert all(v == {expected[k]} for k, v in got.items())


def stored_states(world: World, worker: object) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for part in worker.runtime.tickets.values():  # type: ignore[attr-defined]
        out.update(dict(part.store.items()))
    return out


def test_a_restart_recovers_the_state_from_the_changelog_and_redelivery_changes_nothing() -> None:
    docs = synth_docs(30, seed=5)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(PS, T0, partitions=2)
    a = world.worker()
    world.assign((a, [0, 1]))
    half = len(docs) // 2
    drive(world, [a], docs[:half], ms(str(docs[half - 1]["time"])), every_ms=600_000)
    before = stored_states(world, a)
    # a crash: the worker's memory store is gone; a new worker recovers everything from the changelog
    b = world.worker()
    world.assign((b, [0, 1]))
    b.runtime.step()
    assert stored_states(world, b) == before
    until = drive(world, [b], docs[half:], end, every_ms=600_000)
    expected = oracle(docs, PS, until)
    got = world.output_ids()
    assert set(got) == set(expected) and all(v == {expected[k]} for k, v in got.items())


class Crash(Exception):
    pass


def test_a_crash_between_producing_and_committing_reproduces_identical_outputs() -> None:
    """Kill the worker after its outputs were delivered but while its state changes were on their way to the
    changelog: the new owner re-reads the uncommitted input and emits the same ids with the same bytes
    (duplicates, never conflicts)."""
    world = World(PS, T0)
    a = world.worker()
    world.assign((a, [0, 1]))
    a.runtime.step()
    world.send([created("T1"), created("T2")])
    world.now = ms("2026-11-20T10:20:00Z")  # warnings and the breach are due at once

    def crash_on_changelog(topic: str, key: bytes | None) -> bool:
        if topic == TOPICS.tickets_changelog and key != MARKER_KEY:
            raise Crash
        return False

    a.producer.fail = crash_on_changelog
    with pytest.raises(Crash):  # the process dies while its state changes are on the wire
        for _ in range(5):
            a.runtime.step()
            world.deliver()
    a.producer.fail = None
    a.producer.drop_pending()  # the process is gone with whatever it still held
    world.workers.remove(a)
    first = world.output_ids()
    assert first and all(len(v) == 1 for v in first.values())
    assert all(m.key() == MARKER_KEY for m in world.broker.records(TOPICS.tickets_changelog))  # no state stored
    assert a.consumer.commits == []  # nothing committed
    b = world.worker()
    world.assign((b, [0, 1]))
    run_until_idle(world, b)
    again = world.output_ids()
    assert set(again) == set(first)
    assert all(len(v) == 1 for v in again.values())  # same bytes: no id with two contents
    assert sum(1 for m in world.outputs()) == 2 * len(first)  # each output exactly twice (redelivered once)


def test_a_failed_delivery_is_produced_again_before_anything_is_committed() -> None:
    world = World(PS, T0)
    a = world.worker()
    world.assign((a, [0, 1]))
    a.runtime.step()
    failures = iter([True, True])
    a.producer.fail = lambda topic, key: topic == TOPICS.escalations and next(failures, False)
    a.runtime.stop.wait = lambda timeout=None: False  # type: ignore[method-assign]  # no backoff sleeps in a unit test
    world.send([created("T1", tags=["legal"])])
    a.runtime.step()  # the batch
    for _ in range(3):  # two failed deliveries, each produced again at the next step
        world.deliver()
        a.runtime.step()
        assert not any((TOPICS.input, 0) in c or (TOPICS.input, 1) in c for c in a.consumer.commits)
    (esc,) = world.broker.records(TOPICS.escalations)
    assert orjson.loads(esc.value() or b"")["id"] == "T1:trigger:legal:1"
    run_until_idle(world, a)
    assert any((TOPICS.input, 0) in c or (TOPICS.input, 1) in c for c in a.consumer.commits)
    assert len(world.broker.records(TOPICS.escalations)) == 1


def test_a_zombie_that_wakes_up_after_its_partitions_moved_loses_nothing() -> None:
    """Worker A freezes in the middle of flushing a batch; B takes the partitions over and goes on; A's stale
    records land after B's. A must notice, drop the partitions, and when it owns them again recover B's updates --
    the outputs equal replay."""
    docs = synth_docs(40, seed=9)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(PS, T0, partitions=2)
    a, b = world.worker(), world.worker()
    world.assign((a, [0, 1]))
    third = len(docs) // 3
    drive(world, [a, b], docs[:third], ms(str(docs[third - 1]["time"])), every_ms=600_000)

    rest = docs[third:]
    world.send(rest[:20])
    world.now = ms(str(rest[19]["time"]))
    a.runtime.step()  # A processes a batch; its outputs wait in its producer ...
    a.producer.freeze = True  # ... and A is stopped (SIGSTOP) past its session
    world.assign((b, [0, 1]))  # B takes over, processes and writes its own updates
    run_until_idle(world, b)
    world.send(rest[20:40])
    world.now = ms(str(rest[39]["time"]))
    run_until_idle(world, b)
    a.producer.freeze = False  # A wakes up; it has not heard of the new assignment yet
    a.consumer._pending.clear()
    for _ in range(3):  # its stale outputs land after B's; then its state changes of that batch: a gap
        world.deliver()
        a.runtime.step()
    assert "gap" in a.observer.fences and "released" in a.observer.fences
    assert a.runtime.owned() == []  # B's newer claim holds: A stops processing (paused until reassigned)
    a.producer.fail = None
    # later the group gives everything back to A: it must recover B's updates, not resume from its own writes
    world.assign((a, [0, 1]), (b, []))
    until = drive(world, [a, b], rest[40:], end, every_ms=600_000)
    expected = oracle(docs, PS, until)
    got = world.output_ids()
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert all(v == {expected[k]} for k, v in got.items())


def test_records_in_hand_when_their_partition_is_revalidated_wait_for_their_redelivery() -> None:
    """The survivor's changelog record lands behind a zombie's (a gap) and is noticed in the step whose consume
    already returned the partition's next records: the partition is re-read from its changelog and rewound to its
    committed offset. The records in hand must wait for their re-delivery -- processed on the re-read state (which
    lacks the batches forgotten in flight) and committed, they let the next owner skip those batches' events
    (seen once in CI: deadline outputs of three tickets lost after a zombie's write and a rebalance)."""
    world = World(PS, T0, partitions=1)
    a = world.worker()
    world.assign((a, [0]))
    a.runtime.step()
    world.send([created("T1")])
    a.runtime.step()  # the batch: its outputs are produced
    world.deliver()
    a.runtime.step()  # outputs confirmed: its state change is produced to the changelog
    zombie = [("escalator-writer", b"g0-p0-zombie")]
    world.broker.append(TOPICS.tickets_changelog, 0, b"T1", b"stale", zombie)  # a zombie's write lands first
    comment = envelope("ticket.commented", "2026-11-20T10:01:00Z", "T1", {"author": "agent"}, event_id="T1-m")
    world.send([comment])
    world.deliver()  # the survivor's record lands behind the zombie's
    a.runtime.step()  # consumes the comment, then learns of the gap: re-validates and rewinds
    assert "gap" in a.observer.fences and a.observer.batches[-1].consumed["ticket.commented"] == 0
    run_until_idle(world, a)
    assert sum(b.consumed["ticket.commented"] for b in a.observer.batches) == 1  # once, after its re-delivery
    state = a.runtime.tickets[0].stored_state("T1")
    assert state is not None and any("T1-m" in key for key in state.seen)  # the comment is in the stored state


def test_a_batch_that_outlived_the_lease_is_dropped_unproduced() -> None:
    world = World(PS, T0, lease_ms=1500)
    a = world.worker()
    world.assign((a, [0, 1]))
    a.runtime.step()
    world.send([created("T1", tags=["legal"])])
    original = a.runtime.tickets[0].apply if 0 in a.runtime.tickets else None
    del original

    def slow_apply(part_apply):  # type: ignore[no-untyped-def]
        def wrapped(event):  # type: ignore[no-untyped-def]
            world.mono += 5.0  # the process was stopped for 5 s in the middle of the batch
            return part_apply(event)

        return wrapped

    for part in a.runtime.tickets.values():
        part.apply = slow_apply(part.apply)  # type: ignore[method-assign]
    a.runtime.step()
    assert world.outputs() == [] and a.observer.fences == ["lease"]
    assert a.runtime.owned() == [0, 1]  # nobody else claimed them: still ours after re-validation
    a.runtime.step()  # the batch again, in time
    assert [orjson.loads(m.value() or b"")["id"] for m in world.records(TOPICS.escalations)] == ["T1:trigger:legal:1"]


def test_bad_records_become_dead_letters_with_reasons_and_valid_ones_flow() -> None:
    world = World(PS, T0, max_event_bytes=2000)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()
    good = created("ok-1")
    world.send_raw(0, b"T9", b"{nope", [("trace", b"abc")])
    world.send_raw(0, b"other", orjson.dumps(created("T8")))  # key differs from subject
    world.send_raw(0, b"T7", orjson.dumps({**created("T7"), "type": "ticket.merged"}))
    world.send_raw(0, b"T6", b'{"x": "' + b"x" * 3000 + b'"}')
    world.send([good])
    w.runtime.step()
    dead = world.records(TOPICS.dlq)
    reasons = [dict(m.headers() or [])["escalator-dlq-reason"] for m in dead]
    assert reasons == [b"invalid_json", b"key_mismatch", b"unknown_type", b"oversize"]
    first = dict(dead[0].headers() or [])
    assert dead[0].key() == b"T9" and dead[0].value() == b"{nope" and first["trace"] == b"abc"
    assert (first["escalator-dlq-topic"], first["escalator-dlq-partition"], first["escalator-dlq-offset"]) == (
        TOPICS.input.encode(),
        b"0",
        b"0",
    )
    stats = w.observer.batches[-1]
    assert stats.rejected == {"invalid_json": 1, "key_mismatch": 1, "unknown_type": 1, "oversize": 1}
    assert any(part.state_of("ok-1") is not None for part in w.runtime.tickets.values())


def test_a_bad_record_too_big_to_produce_again_is_dead_lettered_cut_to_fit() -> None:
    """The broker may hold a record a producer may not send (librdkafka refuses ~1 MB; the fake producer too): its
    dead-letter copy is cut to fit instead of stopping the worker on that record at every restart."""
    import hashlib

    world = World(PS, T0)  # max_event_bytes 1,000,000, dlq_max_bytes 900,000 (the defaults)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()
    key = b"K" * 5_000
    value = b'{"pad": "' + b"x" * 1_040_000 + b'"}'
    headers = [(f"h{i}", b"v" * 1_000) for i in range(100)]
    world.send_raw(0, key, value, headers)
    world.send_raw(0, b"T9", b"{nope")  # a small bad record: copied whole
    world.send([created("ok-1")])
    w.runtime.step()
    big, small = world.records(TOPICS.dlq)
    got = dict(big.headers() or [])
    size = len(big.key() or b"") + len(big.value() or b"") + sum(len(k) + len(v) for k, v in big.headers() or [])
    assert size <= 900_000
    assert got["escalator-dlq-reason"] == b"oversize" and got["escalator-dlq-truncated"] == b"key,headers,value"
    assert got["escalator-dlq-value-bytes"] == str(len(value)).encode()
    assert got["escalator-dlq-value-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert big.key() == key[:1024] and value.startswith(big.value() or b"x") and len(big.value() or b"") > 800_000
    kept = [k for k, _ in big.headers() or [] if k.startswith("h")]
    assert 0 < len(kept) < 100 and kept == [f"h{i}" for i in range(len(kept))]  # the first ones, in order
    assert (got["escalator-dlq-partition"], got["escalator-dlq-offset"]) == (b"0", b"0")  # where the original is
    assert small.value() == b"{nope" and "escalator-dlq-truncated" not in dict(small.headers() or [])
    assert w.observer.batches[-1].rejected == {"oversize": 1, "invalid_json": 1}
    assert any(part.state_of("ok-1") is not None for part in w.runtime.tickets.values())


def test_a_processing_bug_dead_letters_the_record_and_keeps_the_state(monkeypatch: pytest.MonkeyPatch) -> None:
    import escalator.stream.tickets as tickets_module

    world = World(PS, T0)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()
    real = tickets_module.apply_versioned

    def broken(state, event, policy):  # type: ignore[no-untyped-def]
        if event.type == "ticket.commented":
            raise RuntimeError("boom")
        return real(state, event, policy)

    monkeypatch.setattr(tickets_module, "apply_versioned", broken)
    world.send([created("T1"), envelope("ticket.commented", "2026-11-20T10:01:00Z", "T1", {"author": "agent"})])
    w.runtime.step()
    (dead,) = world.records(TOPICS.dlq)
    headers = dict(dead.headers() or [])
    assert headers["escalator-dlq-reason"] == b"processing_error" and b"boom" in headers["escalator-dlq-detail"]
    (state,) = [s for s in (p.state_of("T1") for p in w.runtime.tickets.values()) if s is not None]
    assert state.agent_replies == 0 and len(state.seen) == 1  # the creation only


def test_a_stalled_join_rejoins_three_times_then_exits() -> None:
    world = World(PS, T0, stall_ms=30_000)
    w = world.worker()
    for _ in range(125):  # never assigned anything
        world.mono += 1.0
        w.runtime.step()
    assert getattr(w.consumer, "rejoins", 0) == 3 and world.exits == [3]
    assert w.observer.stalls == 4


def test_a_closed_ticket_is_purged_after_the_retention() -> None:
    world = World(PS, T0, retention_ms=3_600_000)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()
    world.send([created("T1"), envelope("ticket.status_changed", "2026-11-20T10:01:00Z", "T1", {"status": "closed"})])
    w.runtime.step()
    (part,) = [p for p in w.runtime.tickets.values() if p.state_of("T1") is not None]
    assert part.gauges.tickets == 1 and part.next_wake() == ms("2026-11-20T11:01:00Z")
    world.now = ms("2026-11-20T11:01:00Z")
    w.runtime.step()
    assert part.state_of("T1") is None and part.gauges.tickets == 0
    assert w.observer.batches[-1].purged == 1
    run_until_idle(world, w)
    assert world.records(TOPICS.tickets_changelog, part.partition)[-1].value() is None  # a tombstone
    assert part.stored_state("T1") is None and part.store.get("T1") is None


def test_a_handover_commits_what_was_processed_and_the_old_owner_goes_quiet() -> None:
    docs = synth_docs(20, seed=4)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(PS, T0, partitions=2)
    a, b = world.worker(), world.worker()
    world.assign((a, [0, 1]))
    half = len(docs) // 2
    drive(world, [a, b], docs[:half], ms(str(docs[half - 1]["time"])), every_ms=600_000)
    committed = dict(world.broker.groups["app"].committed)
    world.assign((a, [0]), (b, [1]))
    a.runtime.step()
    b.runtime.step()
    assert a.runtime.owned() == [0] and b.runtime.owned() == [1]
    assert world.broker.groups["app"].committed[(TOPICS.input, 1)] >= committed.get((TOPICS.input, 1), 0)
    until = drive(world, [a, b], docs[half:], end, every_ms=600_000)
    expected = oracle(docs, PS, until)
    got = world.output_ids()
    assert set(got) == set(expected) and all(v == {expected[k]} for k, v in got.items())


def test_gauges_follow_every_state_change() -> None:
    world = World(PS, T0)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()
    world.send([created(f"T{i}") for i in range(6)])
    w.runtime.step()
    total = {"urgent": 0}
    for part in w.runtime.tickets.values():
        total["urgent"] += part.gauges.open_counts()["urgent"]
    assert total["urgent"] == 6
    at_risk = sum(p.gauges.at_risk(world.now, 15 * 60_000) for p in w.runtime.tickets.values())
    assert at_risk == 6  # every warning is within 15 minutes
    world.send(
        [envelope("ticket.status_changed", "2026-11-20T10:01:00Z", f"T{i}", {"status": "solved"}) for i in range(4)]
    )
    w.runtime.step()
    assert sum(p.gauges.open_counts()["urgent"] for p in w.runtime.tickets.values()) == 2
    assert sum(p.gauges.tickets for p in w.runtime.tickets.values()) == 6


def test_incidents_in_a_backlog_spread_over_partitions_equal_replay() -> None:
    """Creations of one burst sit in partitions consumed at different speeds; the incident windows still see them
    in time order (held until every source partition's watermark passed them)."""
    docs = synth_docs(120, seed=21, per_hour=1200)
    world = World(PS, T0, partitions=3, max_batch=40)
    a, b = world.worker(), world.worker()
    world.send(docs)  # the whole history is already in the topic: a backlog
    world.now = ms(str(docs[-1]["time"])) + 3_600_000
    world.assign((a, [0, 1]), (b, [2]))
    for _ in range(3):  # b's partition lags behind a's
        a.runtime.step()
    run_until_idle(world, a, b, tick_ms=100)
    expected = oracle(docs, PS, world.now - 1000)
    incidents = sorted(k for k in expected if k.startswith("incident:"))
    assert len(incidents) >= 4
    got = world.output_ids()
    assert sorted(k for k in got if k.startswith("incident:")) == incidents
    assert set(got) == set(expected) and all(v == {expected[k]} for k, v in got.items())


def test_a_revocation_with_batches_in_flight_finishes_them_before_letting_go() -> None:
    """A rebalance arrives while batches are still in flight (outputs produced, state changes not yet stored): the
    old owner delivers, stores and commits them before it releases the partitions; it produces nothing for them
    afterwards, and the new owner starts from exactly that state -- outputs equal replay, none duplicated."""
    docs = synth_docs(30, seed=13)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(PS, T0, partitions=2)
    a, b = world.worker(), world.worker()
    world.assign((a, [0, 1]))
    half = len(docs) // 2
    drive(world, [a, b], docs[:half], ms(str(docs[half - 1]["time"])), every_ms=600_000)
    world.send(docs[half : half + 30])
    world.now = ms(str(docs[half + 29]["time"]))
    a.runtime.step()  # batches whose outputs and state changes are not delivered yet
    a.runtime.step()
    assert a.runtime._stages and a.producer.pending
    processed = {tp: o for tp, o in a.runtime.positions.items() if tp[0] == TOPICS.input}
    assert processed != {tp: world.broker.groups["app"].committed.get(tp) for tp in processed}
    world.assign((b, [0, 1]), (a, []))
    a.runtime.step()  # the revocation: everything in flight is delivered, stored and committed first
    assert a.runtime._stages == [] and a.producer.pending == [] and a.runtime.owned() == []
    assert {tp: world.broker.groups["app"].committed[tp] for tp in processed} == processed
    produced_by_a = sum(len(world.broker.records(t)) for t in world.broker.topics)
    a.runtime.step()
    assert sum(len(world.broker.records(t)) for t in world.broker.topics) == produced_by_a  # a is quiet
    until = drive(world, [a, b], docs[half + 30 :], end, every_ms=600_000)
    expected = oracle(docs, PS, until)
    got = world.output_ids()
    assert set(got) == set(expected) and all(v == {expected[k]} for k, v in got.items())
    assert len(world.outputs()) == len(expected)  # not one output produced twice


def test_a_lost_session_commits_nothing_more_and_the_next_owner_loses_nothing() -> None:
    """The group expires A's session with a batch of A's in flight: A learns its partitions are lost, commits
    nothing for them and drops what is unconfirmed; B takes over from the last commit and the outputs equal
    replay."""
    docs = synth_docs(24, seed=5)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(PS, T0, partitions=2)
    a, b = world.worker(), world.worker()
    world.assign((a, [0, 1]))
    half = len(docs) // 2
    drive(world, [a, b], docs[:half], ms(str(docs[half - 1]["time"])), every_ms=600_000)
    world.send(docs[half : half + 10])
    world.now = ms(str(docs[half + 9]["time"]))
    a.runtime.step()  # a batch in flight, not yet committed
    assert a.runtime._stages
    committed = dict(world.broker.groups["app"].committed)
    world.broker.expire(a.consumer)
    a.runtime.step()
    assert a.runtime.owned() == [] and not a.runtime._stages
    world.deliver()
    a.runtime.step()
    assert world.broker.groups["app"].committed == committed
    world.assign((b, [0, 1]), (a, []))
    until = drive(world, [a, b], docs[half + 10 :], end, every_ms=600_000)
    expected = oracle(docs, PS, until)
    got = world.output_ids()
    assert sorted(set(expected) - set(got)) == []
    assert sorted(set(got) - set(expected)) == []
    assert all(v == {expected[k]} for k, v in got.items())
