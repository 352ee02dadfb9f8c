"""The decoder's fast path (envelope checked by hand, ``data`` by its pydantic model) against the contract's
definition (:func:`decode_record_reference`, every envelope through the pydantic model): for any input, the same
event or the same error (reason, detail, event id)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalator.core.envelopes import WIRE_DECODER, TicketStatusChanged, WireEnvelope
from escalator.core.events import DecodeError, _compact_size, _wire_event, decode_record, decode_record_reference
from escalator.synth import lifecycle_events

BASE = list(lifecycle_events(40, seed=3))
BASE += [
    {**BASE[0], "type": "ticket.escalation_requested", "data": None},
    {**BASE[0], "type": "ticket.escalation_requested"},
    {**BASE[0], "type": "ticket.escalation_acknowledged", "data": {"by": "lead", "level": 2}},
    {**BASE[0], "type": "ticket.rated", "data": {"score": 2, "comment": "meh"}},
    {**BASE[0], "type": "ticket.updated", "data": {"changes": {"fields": {"a": None, "b": 1.5}, "group": None}}},
]
KEYS = ["specversion", "id", "source", "type", "time", "subject", "data", "datacontenttype", "dataschema", "x-ext"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(
        [
            "",
            "1.0",
            "ticket.created",
            "application/json",
            "text/plain",
            "2026-11-22T10:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-22T10:00:00+25:00",
            "2026-11-22 10:00:00.123456789-05:30",
            "x" * 1025,
            "x" * 1024,
        ]
    ),
    st.lists(st.text(max_size=3), max_size=2),
    st.dictionaries(
        st.sampled_from(["priority", "status", "author", "public", "score", "by", "changes"]),
        st.sampled_from(["urgent", "open", "agent", True, 3, "x", {}, None]),
        max_size=3,
    ),
)


def outcome(fn: Any, raw: bytes, key: bytes | None) -> Any:
    try:
        return ("ok", fn(raw, key))
    except DecodeError as exc:
        return ("error", exc.reason, exc.detail, exc.event_id)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(BASE),
    edits=st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.just("<delete>"), VALUES)), max_size=3),
    data_edits=st.lists(st.tuples(st.text(max_size=8), VALUES), max_size=2),
    use_key=st.sampled_from([None, "subject", "other"]),
)
def test_fast_path_equals_model_path(
    base: dict[str, Any], edits: list[tuple[str, Any]], data_edits: list[tuple[str, Any]], use_key: str | None
) -> None:
    doc = dict(base)
    for k, v in edits:
        if v == "<delete>":
            doc.pop(k, None)
        else:
            doc[k] = v
    if isinstance(doc.get("data"), dict):
        doc["data"] = dict(doc["data"])
        for k, v in data_edits:
            doc["data"][k] = v
    try:
        raw = orjson.dumps(doc)
    except TypeError:  # e.g. integers beyond 64 bits
        return
    key = None if use_key is None else (str(doc.get("subject")) if use_key == "subject" else "other").encode()
    try:
        expected = outcome(decode_record_reference, raw, key)
    except TypeError:  # an unhashable "type" (a list) is not a DecodeError in the reference either
        return
    assert outcome(decode_record, raw, key) == expected


def test_every_synthetic_event_decodes_identically() -> None:
    for doc in BASE:
        raw = orjson.dumps(doc)
        assert outcome(decode_record, raw, None) == outcome(decode_record_reference, raw, None)


EDGE_VALUES: list[Any] = [
    "<delete>",
    None,
    "",
    "x",
    "x" * 1024,
    "x" * 1025,
    "é" * 1024,  # length counts characters, not bytes
    1,
    1.5,
    True,
    ["x"],
    {"x": 1},
    "1.0",
    "application/json",
    "application/json; charset=utf-8",
    "2026-11-22T10:00:00Z",
    "2026-11-22T24:00:00Z",
    "2026-02-29T10:00:00Z",
    "2026-11-22T10:00:00+23:59",
    "2026-11-22T10:00:60.5Z",
]


def test_each_envelope_check_on_edge_values() -> None:
    base = {**BASE[1]}
    for field in ["id", "source", "subject", "time", "datacontenttype", "dataschema", "data", "specversion", "x"]:
        for value in EDGE_VALUES:
            doc = dict(base)
            if value == "<delete>":
                doc.pop(field, None)
            else:
                doc[field] = value
            raw = orjson.dumps(doc)
            assert outcome(decode_record, raw, None) == outcome(decode_record_reference, raw, None), (field, value)


@pytest.mark.parametrize(
    ("etype", "payloads"),
    [
        ("ticket.rated", [{"score": 1}, {"score": True}, {"score": 1.0}, {"score": "1"}, {"score": 1}]),
        ("ticket.commented", [{"author": "agent", "public": True}, {"author": "agent", "public": 1}]),
        ("ticket.commented", [{"author": "agent", "public": 1}, {"author": "agent", "public": True}]),
        ("ticket.status_changed", [{"status": "open"}, {"status": "open", "x": None}, {"status": "Open"}]),
        ("ticket.escalation_acknowledged", [{"by": "lead", "level": 2}, {"by": "lead", "level": 0}]),
    ],
)
def test_memoised_payloads_keep_the_contract(etype: str, payloads: list[dict[str, Any]]) -> None:
    """Payloads that compare equal in Python but not in the contract (True == 1 == 1.0) never share a result, and a
    payload decoded before gives the same event or error the second time."""
    for data in payloads + payloads[::-1]:
        raw = orjson.dumps({**BASE[0], "type": etype, "data": data})
        assert outcome(decode_record, raw, None) == outcome(decode_record_reference, raw, None), data


# Records written byte by byte, for the fast route's reader (msgspec: the envelope into a struct, ``data`` kept
# raw): what it skips unread (unknown attributes, an earlier duplicate ``data``, a raw ``data``) is where it could
# take a record the models' route refuses. Each must decode the same as the reference.
_HEAD = b'{"specversion":"1.0","id":"e-1","source":"s","type":"ticket.status_changed","time":"2026-11-22T10:00:00Z"'
_HEAD += b',"subject":"T-1"'
WIRE_EDGES: list[bytes] = [
    _HEAD + b',"data":{"status":"open"}}',
    _HEAD + b',"data" : { "status" : "open" } }',
    _HEAD + b',\n\t"data":{"status":"open"}\r\n}  ',
    _HEAD + b',"data":{"status":"open"}}\x0c',
    b"\xef\xbb\xbf" + _HEAD + b',"data":{"status":"open"}}',
    _HEAD + b',"data":{"status":"open"}}x',
    _HEAD + b',"data":1e999,"data":{"status":"open"}}',
    _HEAD + b',"data":{"status":"open"},"data":{"status":"pending"}}',
    _HEAD + b',"data":1e999,"d\\u0061ta":{"status":"open"}}',
    _HEAD + b',"d\\u0061ta":{"status":"open"}}',
    _HEAD + b',"data":{"status":"open","x":1e999}}',
    _HEAD + b',"data":{"status":"open","x":123456789012345678901234567890}}',
    _HEAD + b',"data":{"status":"open"},"ext":1e999}',
    _HEAD + b',"data":{"status":"open"},"ext":"\xff"}',
    _HEAD + b',"data":{"status":"open"},"\xff":1}',
    _HEAD + b',"data":{"status":"open"},"ext":"\\ud800"}',
    _HEAD + b',"data":{"status":"\\ud800"}}',
    _HEAD + b',"data":{"status":"\\u006fpen"}}',
    _HEAD + b',"data":{"status":"open"},"ext":NaN}',
    _HEAD + b',"data":{"status":"open"},"ext":' + b"[" * 2000 + b"]" * 2000 + b"}",
    _HEAD + b',"data":' + b"[" * 2000 + b"]" * 2000 + b"}",
    _HEAD + b',"data":null}',
    _HEAD.replace(b"ticket.status_changed", b"ticket.escalation_requested") + b',"data":null}',
    _HEAD + b',"data":"open"}',
    _HEAD + b',"data":{"status":"open"},"id":5}',
    _HEAD + b',"data":{"status":"open"},"id":"e-2"}',
    _HEAD + b',"data":{"status":"open"},"subject":"T-2"}',
    _HEAD + b',"data":{"status":"open"},"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}',
    _HEAD + b',"data":{"status":"open"},"traceparent":7}',
    _HEAD + b',"data":{"status":"open"},"tracestate":null}',
    _HEAD + b',"data":{"status":"open"},"datacontenttype":"text/plain"}',
    _HEAD + b',"data":{"status":"open"},"dataschema":null}',
    _HEAD.replace(b'"1.0"', b'"1.1"') + b',"data":{"status":"open"}}',
    _HEAD.replace(b"ticket.status_changed", b"ticket.nope") + b',"data":{"status":"open"}}',
    _HEAD.replace(b'"e-1"', b'""') + b',"data":{"status":"open"}}',
    _HEAD.replace(b'"T-1"', b'"data"') + b',"data":{"status":"open"}}',
    _HEAD.replace(b"10:00:00Z", b"25:00:00Z") + b',"data":{"status":"open"}}',
    _HEAD + b"}",
    b"[]",
    b"",
]


def test_fast_route_edges_decode_as_the_models_route() -> None:
    for raw in WIRE_EDGES + WIRE_EDGES:  # twice: the second time through the memo of raw payloads
        for key in (None, b"T-1", b"T-2"):
            assert outcome(decode_record, raw, key) == outcome(decode_record_reference, raw, key), (raw[-80:], key)


def test_fast_route_is_taken_for_plain_records_and_refused_where_it_could_differ() -> None:
    """The edges above pass through the fast route where it applies (else that test would prove nothing)."""
    assert _wire_event(WIRE_EDGES[0]) is not None
    assert _wire_event(WIRE_EDGES[1]) is not None
    for doc in BASE:
        raw = orjson.dumps(doc)
        if doc.get("data") is not None and outcome(decode_record_reference, raw, None)[0] == "ok":
            assert _wire_event(raw) is not None, doc
    for raw in WIRE_EDGES[6:10] + WIRE_EDGES[12:16]:
        assert _wire_event(raw) is None, raw


def test_wire_envelope_reads_the_envelope_attributes_in_the_order_the_decoder_unpacks() -> None:
    """``_wire_event`` unpacks the struct positionally; its attributes are the envelope model's own (plus the
    tracing extensions), so the fast route never takes an attribute the models do not know of as theirs."""
    assert WireEnvelope.__struct_fields__ == (
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "data",
        "datacontenttype",
        "dataschema",
        "traceparent",
        "tracestate",
    )
    model_fields = set(TicketStatusChanged.model_fields)
    assert set(WireEnvelope.__struct_fields__) - {"traceparent", "tracestate"} == model_fields


def test_a_compact_record_measures_its_own_length() -> None:
    """The fast route trusts a record without scanning it when its length is that of its attributes written
    compactly; orjson writes exactly that form (with every optional attribute too), anything longer is scanned."""
    extra = {
        "datacontenttype": "application/json",
        "dataschema": "urn:x",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "tracestate": "a=b",
    }
    for doc in BASE[:12]:
        for more in ({}, extra):
            raw = orjson.dumps({**doc, **more})
            env = WIRE_DECODER.decode(raw)
            assert len(raw) == _compact_size(
                *msgspec.structs.astuple(env)[:6], bytes(env.data), *msgspec.structs.astuple(env)[7:]
            )
            spaced = raw.replace(b'":', b'": ', 1)
            env = WIRE_DECODER.decode(spaced)
            assert len(spaced) > _compact_size(
                *msgspec.structs.astuple(env)[:6], bytes(env.data), *msgspec.structs.astuple(env)[7:]
            )


def test_types_kept_out_of_the_payload_memo_never_have_a_flat_payload() -> None:
    """The fast route neither looks up nor keeps a ``ticket.created``'s or ``ticket.updated``'s payload in its memo:
    each has a required attribute that is an object, so no valid payload of theirs is a small flat one."""
    from pydantic import BaseModel

    from escalator.core.envelopes import ENVELOPES
    from escalator.core.events import _NEVER_FLAT

    for etype in _NEVER_FLAT:
        data_model = ENVELOPES[etype].model_fields["data"].annotation
        assert any(
            f.is_required() and isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)
            for f in data_model.model_fields.values()  # type: ignore[union-attr]
        ), etype
