"""The engine reads a ``ticket.created``'s and a comment's fields from the validated models' ``__dict__`` (one
``__getattr__`` hook call instead of one per field, core/engine.py ``_take_attributes``): this fails loudly if a
pydantic release stops keeping exactly the model's fields there."""

from __future__ import annotations

from escalator.core.envelopes import CommentedData, CreatedData, Requester


def test_a_validated_models_dict_holds_exactly_its_fields_with_their_values() -> None:
    data = CreatedData.model_validate(
        {"priority": "high", "requester": {"id": "c-1", "timezone": "Europe/Amsterdam"}, "tags": ["a"], "group": "g"}
    )
    assert set(data.__dict__) == set(CreatedData.model_fields)
    assert data.__dict__["priority"] == data.priority == "high" and data.__dict__["group"] == "g"
    requester = data.__dict__["requester"]
    assert isinstance(requester, Requester)
    assert set(requester.__dict__) == set(Requester.model_fields)
    assert requester.__dict__["tier"] == "standard" and requester.__dict__["timezone"] == "Europe/Amsterdam"
    comment = CommentedData.model_validate({"author": "agent"})
    assert comment.__dict__ == {"author": "agent", "public": True}


def test_a_decoded_events_data_fields_are_its_models_dict_by_every_route() -> None:
    """Event.data_fields: the dict the decoder's memo keeps beside a small payload's model (shared by the events
    of that payload), or the model's own dict read when first asked for; the same by the wire route (bytes), the
    document route (binary mode: headers) and the models' route (the reference decoder)."""
    import orjson

    from escalator.core.events import decode_record, decode_record_reference
    from tests.support import envelope

    for etype, data in [
        ("ticket.commented", {"author": "agent", "public": False}),
        ("ticket.status_changed", {"status": "pending"}),
        ("ticket.rated", {"score": 2}),
        ("ticket.created", {"priority": "high", "requester": {"id": "c-1"}}),
    ]:
        doc = envelope(etype, "2026-11-20T10:00:00Z", "T1", data)
        binary = {f"ce_{k}": str(v).encode() for k, v in doc.items() if k != "data"}
        routes = [
            decode_record(orjson.dumps(doc)),
            decode_record(orjson.dumps(doc)),  # (a memo hit for the small payloads)
            decode_record(orjson.dumps(data), headers=binary),
            decode_record_reference(orjson.dumps(doc)),
        ]
        for event in routes:
            assert event.data_fields() is event.data.__dict__
            scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
            assert {k: event.data_fields()[k] for k in scalars} == scalars
