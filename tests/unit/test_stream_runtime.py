"""The batched stream runtime against the in-memory broker: batches, deadlines, recovery, fencing, delivery order."""

from __future__ import annotations

import orjson
import pytest

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


def test_an_event_is_stored_changelogged_and_committed() -> None:
    world = World(PS, T0)
    w = world.worker()
    world.assign((w, [0, 1]))
    w.runtime.step()  # joins: recovers and claims every partition
    assert w.runtime.ready and w.runtime.owned() == [0, 1]
    world.send([created("T1")])
    w.runtime.step()
    p = next(p for p, part in w.runtime.tickets.items() if part.stored("T1") is not None)
    state = w.runtime.tickets[p].stored("T1")
    assert state is not None and state.policy_id == "vip-urgent"
    changelog = world.broker.records(TOPICS.tickets_changelog, p)
    assert [m.key() for m in changelog] == [b"\x00escalator:owner", b"T1"]
    assert decode_ticket(changelog[-1].value() or b"").ticket_id == "T1"
    assert w.consumer.commits[-1] == {(TOPICS.input, p): 1}
    assert w.observer.batches[-1].consumed["ticket.created"] == 1


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
