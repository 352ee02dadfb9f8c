"""The stream processor's parts on their own: value codec, stores, changelog lineage and recovery, gauges, the
ticket overlay. (The batch loop that combines them: test_stream_runtime.py.)"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator.core import apply, decode_record
from escalator.stream.changelog import H_MARKER, H_WRITER, MARKER_KEY, Lineage, contiguous, marker_record, recover
from escalator.stream.codec import NO_INSTANT, decode_ticket, encode_ticket, ticket_header
from escalator.stream.gauges import PartitionGauges
from escalator.stream.inmemory import MemoryBroker, MemoryReader
from escalator.stream.store import Checkpoint, Marker, MemoryStore, RocksStore
from escalator.stream.tickets import TicketPartition
from tests.support import envelope, example_policy, ms

PS = example_policy()


def state_of(*docs: dict[str, object]):  # type: ignore[no-untyped-def]
    state = None
    for d in docs:
        state, _ = apply(state, decode_record(orjson.dumps(d)), PS)
    assert state is not None
    return state


CREATED = envelope(
    "ticket.created",
    "2026-11-20T10:00:00Z",
    "T1",
    {"priority": "high", "requester": {"id": "r", "tier": "vip"}, "tags": ["a", "b"], "fields": {"region": "eu"}},
    event_id="T1-c",
)


# --- codec --------------------------------------------------------------------------------------------------------


def test_a_store_value_round_trips_and_its_header_needs_no_decoding() -> None:
    state = state_of(CREATED, envelope("ticket.commented", "2026-11-20T10:01:00Z", "T1", {"author": "requester"}))
    value = encode_ticket(state, 1234, 1000)
    assert decode_ticket(value).to_dict() == state.to_dict()
    h = ticket_header(value)
    assert (h.is_open, h.priority, h.wake_ms, h.deadline_ms) == (True, 2, 1234, 1000)  # high = index 2
    assert ticket_header(encode_ticket(state, None, None)).wake_ms == NO_INSTANT
    assert len(value) < len(orjson.dumps(state.to_dict()))  # the positional row is smaller than the dict form
    with pytest.raises(ValueError, match="format"):
        decode_ticket(b"\x07" + value[1:])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=0, max_size=70, unique=True))
def test_seen_ids_survive_the_common_prefix_compression(ids: list[str]) -> None:
    state = state_of(CREATED)
    state.seen = tuple(ids)
    assert type(state).from_row(orjson.loads(orjson.dumps(state.to_row()))).seen == tuple(ids)


# --- stores -------------------------------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "rocksdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    s = MemoryStore() if request.param == "memory" else RocksStore(tmp_path / "p0", block_cache_mib=8)
    yield s
    s.close()


def test_a_store_writes_changes_and_checkpoint_together(store) -> None:  # type: ignore[no-untyped-def]
    marker = Marker(4, "w1", 3, -1)
    store.write([("a", b"1"), ("b", b"2")], Checkpoint(5, marker))
    store.write([("a", None), ("c", b"3")], Checkpoint(7, marker))
    assert store.get("a") is None and store.get("b") == b"2" and store.get("c") == b"3"
    assert sorted(store.items()) == [("b", b"2"), ("c", b"3")]
    assert store.checkpoint() == Checkpoint(7, marker)
    store.wipe()
    assert store.get("b") is None and store.checkpoint() == Checkpoint()


def test_a_rocksdb_store_keeps_data_and_checkpoint_across_a_reopen(tmp_path: Path) -> None:
    s = RocksStore(tmp_path / "p1", block_cache_mib=8)
    s.write([("T1", b"x")], Checkpoint(3, Marker(2, "w", 1, -1)))
    s.close()
    again = RocksStore(tmp_path / "p1", block_cache_mib=8)
    try:
        assert again.get("T1") == b"x" and again.checkpoint() == Checkpoint(3, Marker(2, "w", 1, -1))
    finally:
        again.close()


# --- changelog: lineage and recovery -----------------------------------------------------------------------------


def _claim(broker: MemoryBroker, writer: str, generation: int, seen: int) -> int:
    key, value, headers = marker_record(writer, generation, seen, "http://x")
    return broker.append("log", 0, key, value, headers).offset()


def _write(broker: MemoryBroker, writer: str, key: str, value: bytes | None) -> int:
    return broker.append("log", 0, key.encode(), value, [(H_WRITER, writer.encode())]).offset()


def test_recovery_applies_only_the_current_owners_records_and_rejects_a_zombies_late_claim() -> None:
    broker = MemoryBroker()
    broker.create_topic("log", 1)
    a = _claim(broker, "A", 0, -1)  # offset 0: A owns the partition
    _write(broker, "A", "t1", b"a1")
    b = _claim(broker, "B", 1, a)  # B took over, having read A's claim
    _write(broker, "B", "t1", b"b1")
    _write(broker, "A", "t2", b"stale")  # A woke up: a late record ...
    _claim(broker, "A", 0, a)  # ... and a late claim that never saw B's
    _write(broker, "A", "t1", b"stale")
    _write(broker, "B", "t3", None)
    store = MemoryStore()
    rec = recover(store, MemoryReader(broker, batch=2), ("log", 0))
    assert dict(store.items()) == {"t1": b"b1"}
    assert rec.checkpoint == Checkpoint(8, Marker(b, "B", 1, a))
    assert (rec.applied, rec.ignored, rec.rejected_markers) == (3, 2, 1)
    # recovery resumes from the checkpoint: later records of the owner are applied, nothing is read twice
    _write(broker, "B", "t4", b"b4")
    reader = MemoryReader(broker)
    rec = recover(store, reader, ("log", 0))
    assert reader.reads == [(("log", 0), 8)] and rec.applied == 1 and store.get("t4") == b"b4"


def test_a_claim_that_names_the_current_marker_is_accepted_whatever_its_generation() -> None:
    """After a consumer group is deleted its generations start again at 0; a new owner's claim still holds because
    it names the marker it took over from."""
    lineage = Lineage(Marker(10, "old", 57, 3))
    assert lineage.marker(20, orjson.dumps({"writer": "new", "generation": 0, "seen": 10}))
    assert lineage.accepts(b"new") and not lineage.accepts(b"old")
    assert not lineage.marker(21, b"not json")


def test_contiguity() -> None:
    assert contiguous(5, [7, 5, 6]) and contiguous(5, [])
    assert not contiguous(5, [5, 7]) and not contiguous(5, [6, 7]) and not contiguous(5, [5, 5])


def test_marker_records_carry_their_headers() -> None:
    key, _value, headers = marker_record("w", 2, 9, "u")
    assert key == MARKER_KEY and dict(headers) == {H_MARKER: b"1", H_WRITER: b"w"}


# --- gauges --------------------------------------------------------------------------------------------------------


def test_gauges_add_and_subtract_header_contributions() -> None:
    g = PartitionGauges()
    open_high = ticket_header(encode_ticket(state_of(CREATED), 10_000, ms("2026-11-20T10:05:00Z")))
    g.add(open_high)
    assert (g.tickets, g.armed, g.open_counts()["high"]) == (1, 1, 1)
    assert g.at_risk(ms("2026-11-20T09:50:00Z"), 15 * 60_000) == 1
    assert g.at_risk(ms("2026-11-20T09:40:00Z"), 15 * 60_000) == 0
    g.change(open_high, None)
    assert (g.tickets, g.armed, g.open_counts()["high"], dict(g.at_risk_minutes)) == (0, 0, 0, {})


# --- the ticket overlay --------------------------------------------------------------------------------------------


def test_the_overlay_forgets_tickets_once_stored_and_nothing_leaks() -> None:
    store = MemoryStore()
    part = TicketPartition(0, store, PS, lateness_ms=1000, retention_ms=3_600_000)
    part.apply(decode_record(orjson.dumps(CREATED)))
    dup = decode_record(orjson.dumps(CREATED))  # a duplicate: loaded, unchanged
    part.apply(decode_record(orjson.dumps({**CREATED, "subject": "T2", "id": "T2-c"})))
    seq, changes = part.snapshot()
    assert sorted(k for k, _ in changes) == ["T1", "T2"] and part.gauges.tickets == 2
    part.apply(dup)
    _seq2, changes2 = part.snapshot()
    assert changes2 == []  # the duplicate changed nothing
    part.stored(seq, Checkpoint(3))
    assert part._states == {} and part._next == {} and part._headers == {}
    assert store.checkpoint() == Checkpoint(3) and decode_ticket(store.get("T1") or b"").ticket_id == "T1"
    assert part.next_wake() == ms("2026-11-20T10:07:31Z")  # the 50 % warning of a vip-high ticket + lateness
    assert part.rebuild() == 2 and part.next_wake() == ms("2026-11-20T10:07:31Z")
