"""TicketState and Clock spell their fields out by hand in clone/copy and in both stored forms (speed: no
reflection on the hot path). These tests fail when a field is added and one of those places forgets it."""

from __future__ import annotations

import inspect

import orjson
from hypothesis import given
from hypothesis import strategies as st

from escalator.core.state import Clock, EscalationRecord, TicketState, has_text


def _every_field_set() -> TicketState:
    """A state in which every field differs from its default (so a forgotten field shows up as a default)."""
    clock = Clock(
        "resolution",
        3,
        "achieved",
        11,
        12,
        13,
        ("warn:0.5", "breach"),
        14,
        15,
        (16, 17),
        2,
        18,
        "esc:L2",
        ("warn:0.5",),
    )
    return TicketState(
        ticket_id="T-1",
        created_ms=1,
        priority="urgent",
        status="pending",
        requester_id="cust-1",
        requester_tier="vip",
        group="network",
        assignee="ada",
        channel="email",
        product="mail",
        category="outage",
        tags=("gdpr", "legal"),
        fields={"region": "eu", "seats": 12},
        reopen_count=2,
        reassignment_count=3,
        unanswered=4,
        agent_replies=5,
        rating=1,
        escalation_requested=True,
        policy_id="p-vip",
        policy_version="abc123",
        clocks=[clock],
        triggers_on=("legal",),
        trigger_fires={"legal": 2},
        seen=("src\x1fid-1", "src\x1fid-2"),
        watermark_ms=21,
        closed_ms=22,
        last_event_ms=23,
        flags=("implicit",),
        requester_timezone="America/New_York",
        agreements={"ola@network": _instance()},
        escalations=[
            EscalationRecord("T-1:resolution:1:esc:L1", 1, "clock:resolution:1", 40, "lead", 41),
            EscalationRecord("T-1:request:1", 2, "request", 42, None, None, 43, "deescalated", "kim"),
        ],
        trace="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        timeline='[1795000000000,"created","~e1","urgent, new"]\n',
    )


def _instance() -> TicketState:
    """An agreement instance as the ticket stores it (its attributes are the ticket's, copied in when used)."""
    clock = Clock("resolution", 2, "running", 31, 32, 33, ("breach",), 34, None, (), 1, 35, "esc:L1")
    return TicketState(
        "T-1",
        1,
        instance="ola@network",
        policy_id="net-ola",
        policy_version="abc123",
        clocks=[clock],
        watermark_ms=36,
        flags=("left",),
    )


def _fields(cls: type) -> list[str]:
    return list(inspect.signature(cls).parameters)


def test_the_sample_sets_every_field_away_from_its_default() -> None:
    names = _fields(TicketState)
    bare = TicketState("T-1", 1)
    full = _every_field_set()
    # ``instance`` is set only on an agreement instance's own state, never on a ticket's
    same = [
        n for n in names if n not in ("ticket_id", "created_ms", "instance") and getattr(bare, n) == getattr(full, n)
    ]
    assert same == []


def test_clone_copies_every_field() -> None:
    s = _every_field_set()
    assert s.clone() == s
    c = s.clock("resolution")
    assert c is not None and c.copy() == c


def test_both_stored_forms_keep_every_field() -> None:
    s = _every_field_set()
    assert TicketState.from_dict(orjson.loads(orjson.dumps(s.to_dict()))) == s
    assert TicketState.from_row(orjson.loads(orjson.dumps(s.to_row()))) == s
    assert set(s.to_dict()) == {"v", *_fields(TicketState)}
    # the format, the fields (without ``instance``), the seen ids' common prefix
    assert len(s.to_row()) == 1 + (len(_fields(TicketState)) - 1) + 1


def test_clock_stored_form_keeps_every_field() -> None:
    c = _every_field_set().clock("resolution")
    assert c is not None
    assert Clock.from_list(orjson.loads(orjson.dumps(c.to_list()))) == c
    assert len(c.to_list()) == len(_fields(Clock))


def test_a_clock_without_skipped_thresholds_keeps_the_older_13_element_form() -> None:
    c = Clock("resolution", 1, "running", 1, 0, 1)
    assert len(c.to_list()) == 13
    assert Clock.from_list(c.to_list()) == c


def test_state_fields_names_every_field_in_order() -> None:
    from escalator.core.state import STATE_FIELDS

    assert list(STATE_FIELDS) == _fields(TicketState)


@given(st.lists(st.text(max_size=6), max_size=8), st.text(max_size=6))
def test_has_text_is_in_for_texts(texts: list[str], text: str) -> None:
    """The compiled core's ``in`` for a ticket's seen ids, fired thresholds and flags agrees with Python's, for
    texts equal by value but not the same object too (a stored state's texts are never the engine's)."""
    items = tuple(texts)
    assert has_text(items, text) == (text in items)
    assert has_text(items, "".join([text, ""])) == (text in items)
    if texts:
        assert has_text(items, "".join(list(texts[-1])))
