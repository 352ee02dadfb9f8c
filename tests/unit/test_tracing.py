"""Distributed tracing: the traceparent of an input event is carried to every output it leads to."""

from __future__ import annotations

import orjson

from escalator.core import advance, apply, decode_record
from escalator.core.events import trace_context
from tests.support import envelope, example_policy, ms

PS = example_policy()
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def created(trace: str | None, **headers: str) -> bytes:
    data = {"priority": "urgent", "requester": {"id": "r", "tier": "vip"}}
    doc = envelope("ticket.created", "2026-11-20T10:00:00Z", "T1", data)
    doc["data"]["tags"] = ["legal"]  # a trigger: outputs at once
    if trace is not None:
        doc["traceparent"] = trace
    return orjson.dumps(doc)


def test_outputs_at_once_and_later_carry_the_events_trace() -> None:
    state, now = apply(None, decode_record(created(TRACE)), PS)
    assert now and {c.event.get("traceparent") for c in now if hasattr(c, "event")} == {TRACE}
    state, later = advance(state, ms("2026-11-20T11:00:00Z"), PS)
    assert later and all(c.event["traceparent"] == TRACE for c in later if hasattr(c, "event"))


def test_an_event_without_a_trace_adds_none_and_a_bad_one_is_ignored() -> None:
    for trace in (None, "not-a-trace", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"):
        _state, cmds = apply(None, decode_record(created(trace)), PS)
        assert all("traceparent" not in c.event for c in cmds if hasattr(c, "event"))


def test_binary_mode_headers_carry_it_too() -> None:
    data = orjson.dumps({"priority": "urgent", "requester": {"id": "r"}})
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"e1",
        "ce_source": b"test",
        "ce_type": b"ticket.created",
        "ce_time": b"2026-11-20T10:00:00Z",
        "ce_subject": b"T1",
        "ce_traceparent": TRACE.encode(),
    }
    assert decode_record(data, b"T1", headers).traceparent == TRACE


def test_trace_context_accepts_only_w3c_traceparents() -> None:
    assert trace_context(TRACE) == TRACE
    for bad in (TRACE.upper(), TRACE[:-1], "ff" + TRACE[2:], 42, None, TRACE.replace("-", "_")):
        assert trace_context(bad) is None
