"""Outputs are worded when first read (core/outputs.Deferred), from the facts taken when the engine decided to emit
them: changing the ticket afterwards -- in place, as the simulator does -- never changes an output already emitted."""

from __future__ import annotations

from escalator.core import Emit, advance, apply, encode_event
from tests.support import created, ev, example_policy, ms

PS = example_policy()
T0 = "2026-11-20T10:00:00Z"
LATER = "2026-11-20T10:16:00Z"


def _events() -> tuple[object, object]:
    return (
        created(T0, group="tech", assignee="ann", tags=["vip-launch"]),
        ev("updated", "2026-11-20T10:16:00.001Z", changes={"assignee": "bob", "priority": "low", "group": "billing"}),
    )


def test_outputs_read_after_the_ticket_changed_in_place_quote_the_ticket_as_it_was() -> None:
    first, update = _events()
    # built at once (read before anything else happens to the ticket), copy-on-write
    state, _ = apply(None, first, PS)  # type: ignore[arg-type]
    _, eager = advance(state, ms(LATER), PS)
    eager_bytes = [encode_event(c.event) for c in eager if type(c) is Emit]
    # built late: the same ticket changed in place by a later event before the outputs are read
    state, _ = apply(None, first, PS, in_place=True)  # type: ignore[arg-type]
    state, late = advance(state, ms(LATER), PS, in_place=True)
    apply(state, update, PS, in_place=True)  # type: ignore[arg-type]
    assert state.assignee == "bob" and state.priority == "low"
    late_emits = [c for c in late if type(c) is Emit]
    assert [c._event for c in late_emits] == [None] * len(late_emits)  # not worded yet
    late_bytes = [encode_event(c.event) for c in late_emits]
    assert late_bytes == eager_bytes
    assert len(late_bytes) >= 4  # warnings, the breach, the escalation and its notification
    notes = [c.event["data"] for c in late_emits if c.event["type"] == "notification.requested"]
    escalation = next(d for d in notes if d["kind"] == "escalation")
    assert "assignee ann" in escalation["body"] and "bob" not in escalation["body"]
    to = [r for d in notes for r in d["recipients"]]
    assert {"type": "user", "id": "ann"} in to and {"type": "user", "id": "bob"} not in to
    raised = next(c.event["data"] for c in late_emits if c.event["type"] == "escalation.raised")
    assert raised["ticket"]["priority"] == "urgent" and raised["ticket"]["group"] == "tech"


def test_an_output_is_worded_once_and_compares_by_content() -> None:
    first, _ = _events()
    state, _ = apply(None, first, PS)  # type: ignore[arg-type]
    _, cmds = advance(state, ms(LATER), PS)
    emit = next(c for c in cmds if type(c) is Emit)
    assert emit.event is emit.event  # built once, then kept
    assert emit == Emit(emit.channel, emit.key, dict(emit.event))
    assert emit != Emit(emit.channel, emit.key, {**emit.event, "id": "other"})
