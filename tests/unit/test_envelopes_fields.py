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
