"""The ticket timeline the worker keeps with the state: order, bound, compact ids (core/timeline.py)."""

from __future__ import annotations

import orjson

from escalator.core import TicketState, advance, apply
from escalator.core.timeline import _pack_id, _unpack_id, entries, record, timeline_view
from tests.support import ev, example_policy, ms

PS = example_policy()


def test_ids_are_stored_without_the_ticket_and_read_back_exactly() -> None:
    for event_id in ("T1:first_response:1:breach", "T1", "T1x:2", "~odd", "~~odder", "other:T1:3", ":colon", "~"):
        assert _unpack_id(_pack_id(event_id, "T1"), "T1") == event_id
    assert _pack_id("T1:first_response:1:breach", "T1") == "~first_response:1:breach"


def test_thresholds_due_before_an_event_come_before_it_and_its_outputs_after() -> None:
    created = ev("created", "2026-11-20T10:00:00Z", "T1", priority="urgent", requester={"id": "r", "tier": "vip"})
    s, cmds = apply(None, created, PS)
    record(s, created, cmds)
    late = ev("commented", "2026-11-20T12:00:00Z", "T1", author="agent")  # thresholds fell due meanwhile
    s, cmds = apply(s, late, PS)
    record(s, late, cmds)
    view = timeline_view(s)
    kinds = [(e["kind"], e["type"]) for e in view["entries"]]
    assert kinds[0] == ("event", "ticket.created")
    comment = kinds.index(("event", "ticket.commented"))
    assert comment > 1 and all(k == "output" for k, _ in kinds[1:comment])
    ats = [ms(e["at"]) for e in view["entries"]]
    assert ats == sorted(ats)
    assert all(e["id"].startswith("T1:") for e in view["entries"][1:comment])


def test_the_bound_and_zero() -> None:
    s = TicketState("T1", 0)
    created = ev("created", "2026-11-20T10:00:00Z", "T1", priority="low", requester={"id": "r", "tier": "vip"})
    for _ in range(30):
        record(s, created, [], limit=7)
    assert len(entries(s)) == 7 and timeline_view(s, 7)["kept"] == 7
    t = TicketState("T2", 0)
    record(t, created, [], limit=0)
    assert t.timeline == ""


def test_the_stored_form_is_compact_json() -> None:
    created = ev("created", "2026-11-20T10:00:00Z", "T1", priority="urgent", requester={"id": "r", "tier": "vip"})
    s, _ = apply(None, created, PS)
    s, more = advance(s, ms("2026-11-20T11:00:00Z"), PS)
    record(s, None, more)
    entry = entries(s)[0]
    assert isinstance(entry[0], int) and entry[2].startswith("~")
    assert s.timeline.count("\n") == len(entries(s)) and s.timeline.endswith("\n")
    assert TicketState.from_row(orjson.loads(orjson.dumps(s.to_row()))).timeline == s.timeline
