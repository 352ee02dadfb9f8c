"""The deadline index: one tick per due ticket, re-armed only on change, lost ticks retried, gauges."""

from __future__ import annotations

from escalator.service.index import DeadlineIndex, TicketInfo

INFO = TicketInfo("high", True, 1_000)


def test_pop_due_hands_out_each_ticket_once() -> None:
    idx = DeadlineIndex(retry_ms=10_000)
    idx.arm(0, "a", 100, INFO)
    idx.arm(1, "b", 200, INFO)
    idx.arm(0, "c", 300, INFO)
    assert idx.pop_due(99) == []
    assert idx.pop_due(200) == [(0, "a", 100), (1, "b", 200)]
    assert idx.pop_due(250) == []  # in flight, not handed out again
    assert idx.next_wake() == 300


def test_rearming_with_the_same_instant_adds_nothing() -> None:
    idx = DeadlineIndex()
    for _ in range(1000):
        idx.arm(0, "a", 100, INFO)
    assert idx.pop_due(100) == [(0, "a", 100)]
    assert idx.pop_due(10_000) == []


def test_superseded_entries_are_skipped() -> None:
    idx = DeadlineIndex()
    idx.arm(0, "a", 100, INFO)
    idx.arm(0, "a", 500, INFO)
    assert idx.pop_due(400) == []
    assert idx.pop_due(500) == [(0, "a", 500)]


def test_disarm_and_lost_tick_retry() -> None:
    idx = DeadlineIndex(retry_ms=1_000)
    idx.arm(0, "a", 100, INFO)
    idx.arm(0, "b", 100, INFO)
    idx.arm(0, "b", None, INFO)  # nothing pending any more
    assert idx.pop_due(100) == [(0, "a", 100)]
    assert idx.pop_due(1_099) == []
    assert idx.pop_due(1_100) == [(0, "a", 100)]  # never acknowledged by a re-arm: sent again
    idx.arm(0, "a", None, None)
    assert idx.pop_due(5_000) == []


def test_drop_partition_and_gauges() -> None:
    idx = DeadlineIndex()
    idx.arm(0, "a", 100, TicketInfo("high", True, 100))
    idx.arm(0, "b", None, TicketInfo("low", True, None))
    idx.arm(1, "c", 5_000_000, TicketInfo("high", False, None))
    idx.arm(1, "d", 100, TicketInfo("urgent", True, 2_000_000))
    assert idx.tickets() == 4
    assert idx.open_by_priority() == {"high": 1, "low": 1, "urgent": 1}
    assert idx.at_risk(now_ms=0, horizon_ms=1_000_000) == 1
    idx.drop_partition(1)
    assert idx.partitions == {0} and idx.tickets() == 2
    assert idx.pop_due(10**12) == [(0, "a", 100)]


def test_heap_is_compacted_under_churn() -> None:
    idx = DeadlineIndex()
    for i in range(20_000):
        idx.arm(0, "a", i, INFO)
    assert idx.size() == 1
    assert len(idx._parts[0].heap) < 5_000
    assert idx.pop_due(10**9) == [(0, "a", 19_999)]
