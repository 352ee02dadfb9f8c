"""Per-ticket state is bounded: a ticket with 100,000 events stays small; each bound reached is reported
(StateCapped, counted by the worker in escalator_state_capped_total)."""

from __future__ import annotations

from collections import Counter

import orjson

from escalator.core import StateCapped, apply, load_policy_text
from escalator.core.state import MAX_ACKS, MAX_FIELDS, MAX_INSTANCES, MAX_OPEN_ESCALATIONS, MAX_TAGS
from tests.support import created, ev

POLICY = """
version: 1
policies:
  - id: p
    match: {}
    targets: {first_response: 1h, next_reply: 1h, periodic_update: 1h, resolution: 8h}
    resolve_events: true
    escalation: [{after: 0m, level: 1, notify: [{role: lead}]}]
requests:
  max_level: {agent: 3}
agreements:
  - id: ola
    per: group
    policies: [{id: any, match: {}, targets: {resolution: 2h}}]
"""
PS = load_policy_text(POLICY, "bounds.yaml")
T0 = 1_795_000_000_000


def _at(i: int) -> str:
    from escalator.core.timefmt import format_ms

    return format_ms(T0 + i * 1000)


def hostile_history(n: int) -> list[object]:
    """A ticket that never ends: every event adds something a naive state would keep forever."""
    events = [created(_at(0), tier="standard", group="g0")]
    for i in range(1, n):
        kind = i % 8
        if kind == 0:
            events.append(ev("updated", _at(i), changes={"fields": {f"f{i}": "x" * 5000}}))
        elif kind == 1:
            events.append(ev("updated", _at(i), changes={"tags": [f"t{j}" for j in range(i % 500)]}))
        elif kind == 2:
            events.append(ev("updated", _at(i), changes={"group": f"g{i % 997}"}))
        elif kind == 3:
            events.append(ev("escalation_requested", _at(i), by="agent", reason="y" * 2000))
        elif kind == 4:
            events.append(ev("escalation_acknowledged", _at(i), by="lead"))
        else:
            events.append(ev("commented", _at(i), author="requester" if kind == 5 else "agent"))
    return events


def test_a_ticket_with_100000_events_stays_small() -> None:
    state = None
    capped: Counter[str] = Counter()
    sizes = []
    for i, e in enumerate(hostile_history(100_000)):
        state, cmds = apply(state, e, PS, in_place=True)  # type: ignore[arg-type]
        capped.update(c.what for c in cmds if isinstance(c, StateCapped))
        if i % 10_000 == 9_999:
            sizes.append(len(orjson.dumps(state.to_row())))
    assert state is not None
    assert len(state.fields) <= MAX_FIELDS and len(state.tags) <= MAX_TAGS
    assert all(len(v) <= 1000 for v in state.fields.values() if isinstance(v, str))
    assert sum(1 for r in state.escalations if r.resolved_ms is None) <= MAX_OPEN_ESCALATIONS
    assert len(state.agreements) <= MAX_INSTANCES
    assert all(len(c.acks) <= MAX_ACKS for c in state.clocks)
    assert max(sizes) < 300_000  # bytes of the stored row, whatever the history's length
    assert sizes[-1] <= sizes[1] * 1.1  # and it stops growing
    assert {"fields", "field_value", "tags", "escalations", "instances"} <= set(capped)
