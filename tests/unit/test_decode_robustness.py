"""Whatever bytes arrive, decoding either returns an Event or raises DecodeError (never anything else): a worker
must never crash-loop on a record, it must dead-letter it."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from escalator.core.events import DecodeError, Event, decode_record
from tests.support import envelope

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
VALID = [
    envelope(
        "ticket.created",
        "2026-11-20T10:00:00Z",
        "T",
        {"priority": "low", "requester": {"id": "r"}, "tags": ["a"], "fields": {"x": 1}},
    ),
    envelope("ticket.updated", "2026-11-20T10:00:00Z", "T", {"changes": {"priority": "high", "tags": ["b"]}}),
    envelope("ticket.escalation_acknowledged", "2026-11-20T10:00:00Z", "T", {"by": "x", "level": 2}),
]


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*prefix, i))
    return out


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: replaced(doc[head], rest, value)}
    copy = list(doc)
    copy[head] = replaced(copy[head], rest, value)
    return copy


def check(raw: bytes, key: bytes | None = None) -> None:
    try:
        assert isinstance(decode_record(raw, key), Event)
    except DecodeError as exc:
        assert exc.reason in DecodeError.REASONS and exc.detail


@settings(max_examples=600, deadline=None)
@given(base=st.sampled_from(VALID), data=st.data(), value=json_values)
def test_any_field_replaced_by_any_json(base: dict[str, Any], data: Any, value: Any) -> None:
    path = data.draw(st.sampled_from(paths(base)))
    check(orjson.dumps(replaced(base, path, value)), key=b"T")


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)


def test_non_string_type_is_an_unknown_type() -> None:
    for bad in ([1], {"a": 1}, 3, None):
        try:
            decode_record(orjson.dumps({**VALID[0], "type": bad}))
        except DecodeError as exc:
            assert exc.reason == "unknown_type"
        else:
            raise AssertionError("accepted")
