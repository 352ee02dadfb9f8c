"""Decoding v1 ticket events: structured and binary CloudEvents, and every rejection reason."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from escalator.core.envelopes import CreatedData
from escalator.core.events import DecodeError, decode_record
from tests.support import envelope, ms


def created_doc(**over: Any) -> dict[str, Any]:
    doc = envelope(
        "ticket.created",
        "2026-11-20T11:00:00+01:00",
        "T-7",
        {"priority": "high", "requester": {"id": "c1", "tier": "enterprise"}, "tags": ["a", "b"]},
        event_id="ev-1",
    )
    doc.update(over)
    return doc


def test_structured_mode() -> None:
    e = decode_record(orjson.dumps(created_doc()), key=b"T-7")
    assert (e.id, e.source, e.type, e.ticket_id) == ("ev-1", "test", "ticket.created", "T-7")
    assert e.time_ms == ms("2026-11-20T10:00:00Z")
    assert isinstance(e.data, CreatedData) and e.data.status == "new" and e.data.requester.tier == "enterprise"


def test_binary_mode() -> None:
    headers = {
        "ce_specversion": b"1.0",
        "ce_id": b"b-1",
        "ce_source": b"zendesk",
        "ce_type": b"ticket.commented",
        "ce_time": b"2026-11-20T10:00:00Z",
        "ce_subject": b"T-7",
        "content-type": b"application/json",
    }
    e = decode_record(b'{"author": "requester"}', key=b"T-7", headers=headers)
    assert (e.id, e.source, e.type) == ("b-1", "zendesk", "ticket.commented")
    assert e.data.public is True  # type: ignore[union-attr]


def test_cloudevents_extensions_are_allowed() -> None:
    assert decode_record(orjson.dumps(created_doc(traceparent="00-abc", partitionkey="x"))).id == "ev-1"


@pytest.mark.parametrize(
    ("value", "key", "reason", "detail"),
    [
        (b"{not json", None, "invalid_json", ""),
        (b"[1, 2]", None, "not_an_object", "list"),
        (orjson.dumps(created_doc(specversion="0.3")), None, "unsupported_specversion", "0.3"),
        (orjson.dumps(created_doc(type="ticket.deleted")), None, "unknown_type", "ticket.deleted"),
        (orjson.dumps(created_doc(time="2026-11-20 10:00")), None, "schema_violation", "time"),
        (orjson.dumps(created_doc(time="2026-11-20T10:00:00")), None, "schema_violation", "offset"),
        (
            orjson.dumps(created_doc(data={"priority": "asap", "requester": {"id": "c"}})),
            None,
            "schema_violation",
            "priority",
        ),
        (orjson.dumps(created_doc(data={"priority": "low"})), None, "schema_violation", "requester"),
        (
            orjson.dumps(created_doc(data={"priority": "low", "requester": {"id": "c"}, "colour": 1})),
            None,
            "schema_violation",
            "colour",
        ),
        (orjson.dumps(created_doc(subject="")), None, "schema_violation", "subject"),
        (orjson.dumps(created_doc()), b"T-8", "key_mismatch", "T-8"),
        (orjson.dumps({k: v for k, v in created_doc().items() if k != "id"}), None, "schema_violation", "id"),
    ],
)
def test_rejections_have_reasons(value: bytes, key: bytes | None, reason: str, detail: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_record(value, key=key)
    assert info.value.reason == reason
    assert detail in info.value.detail


def test_rejection_keeps_event_id_when_known() -> None:
    with pytest.raises(DecodeError) as info:
        decode_record(orjson.dumps(created_doc(data={})))
    assert info.value.event_id == "ev-1"


def test_oversize() -> None:
    with pytest.raises(DecodeError) as info:
        decode_record(orjson.dumps(created_doc()), max_bytes=50)
    assert info.value.reason == "oversize"


@pytest.mark.parametrize(
    ("etype", "data"),
    [
        ("ticket.updated", {"changes": {"priority": "low", "fields": {"region": None}}}),
        ("ticket.status_changed", {"status": "on_hold"}),
        ("ticket.escalation_requested", {}),
        ("ticket.escalation_acknowledged", {"by": "lead", "escalation_id": "T:x", "level": 2}),
        ("ticket.rated", {"score": 5, "comment": "great"}),
    ],
)
def test_every_type_decodes(etype: str, data: dict[str, Any]) -> None:
    assert decode_record(orjson.dumps(envelope(etype, "2026-11-20T10:00:00Z", "T", data))).type == etype


@pytest.mark.parametrize(
    ("etype", "data", "detail"),
    [
        ("ticket.updated", {"changes": {}}, "at least one"),
        ("ticket.rated", {"score": 6}, "score"),
        ("ticket.commented", {"author": "bot"}, "author"),
        ("ticket.status_changed", {"status": "deleted"}, "status"),
    ],
)
def test_data_violations(etype: str, data: dict[str, Any], detail: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_record(orjson.dumps(envelope(etype, "2026-11-20T10:00:00Z", "T", data)))
    assert info.value.reason == "schema_violation" and detail in info.value.detail


def test_an_events_kind_names_the_class_of_its_data() -> None:
    """The engine dispatches on ``Event.kind``, not on ``type(event.data)``: every data class of the contract has a
    kind of its own, set whichever way the event is built."""
    from escalator.core.envelopes import ENVELOPES
    from escalator.core.events import KIND_OTHER, Event

    kinds = set()
    for name, model in ENVELOPES.items():
        data_class = model.model_fields["data"].annotation
        event = Event("e-1", "s", name, 0, "T-1", data_class.model_construct())  # type: ignore[union-attr]
        kinds.add(event.kind)
    assert len(kinds) == len(ENVELOPES)
    assert KIND_OTHER not in kinds
    assert Event("e-1", "s", "ticket.rated", 0, "T-1", object()).kind == KIND_OTHER  # type: ignore[arg-type]
