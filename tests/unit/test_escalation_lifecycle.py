"""Escalations with a whole lifecycle: requested by people (requests:), resolved when their cause ends
(escalation.resolved, opt-in per policy with resolve_events), de-escalated by agents (ticket.deescalated)."""

from __future__ import annotations

from typing import Any

import pytest

from escalator.core import Emit, Ignored, load_policy_text
from escalator.core.views import describe
from tests.support import comment, created, emitted, ev, ids, ms, run, status

POLICY = """
version: 1
policies:
  - id: p
    match: {}
    targets: {first_response: 1h, resolution: 8h}
    resolve_events: true
    escalation:
      - {after: 0m, level: 1, notify: [{role: team_lead}]}
      - {after: 1h, level: 2, notify: [{role: support_manager}]}
      - {after: 2h, level: 3, notify: [{role: director}]}
requests:
  max_level: {requester: 1, agent: 2}
  teams: {legal: [{team: legal-ops}]}
triggers:
  - {id: legal, when: {tags_any: [legal]}, escalate: {kind: functional, level: 2, notify: [{team: legal}]}}
"""
PS = load_policy_text(POLICY, "lifecycle.yaml")
T0 = "2026-11-23T10:00:00Z"


def resolved(cmds: list[Any]) -> dict[str, dict[str, Any]]:
    return {e.event["data"]["escalation_id"]: e.event["data"] for e in emitted(cmds) if e.type == "escalation.resolved"}


def raised(cmds: list[Any]) -> dict[str, dict[str, Any]]:
    return {e.id: e.event["data"] for e in emitted(cmds) if e.type == "escalation.raised"}


def test_a_reply_after_the_breach_resolves_the_ladder_it_raised() -> None:
    _, cmds = run([created(T0, tier="standard"), comment("2026-11-23T12:30:00Z")], PS)
    assert sorted(raised(cmds)) == ["T1:first_response:1:esc:L1", "T1:first_response:1:esc:L2"]
    got = resolved(cmds)
    assert got["T1:first_response:1:esc:L1"] | {"policy": None} == {
        "escalation_id": "T1:first_response:1:esc:L1",
        "ticket_id": "T1",
        "level": 1,
        "reason": "clock_achieved",
        "raised_at": "2026-11-23T11:00:00Z",
        "fired_at": "2026-11-23T12:30:00Z",
        "open_ms": 90 * 60_000,
        "acknowledged_by": None,
        "acknowledged_at": None,
        "by": None,
        "policy": None,
    }
    resolved_event = next(e for e in emitted(cmds) if e.type == "escalation.resolved")
    assert resolved_event.id == "T1:first_response:1:esc:L1:resolved" and resolved_event.key == "T1"


def test_solving_resolves_what_is_open_and_records_the_acknowledgement() -> None:
    events = [
        created(T0, tier="standard"),
        ev("escalation_acknowledged", "2026-11-23T11:10:00Z", by="lead-ann"),
        status("2026-11-23T11:30:00Z", "solved"),
    ]
    _, cmds = run(events, PS)
    got = resolved(cmds)["T1:first_response:1:esc:L1"]
    assert (got["reason"], got["acknowledged_by"], got["acknowledged_at"]) == (
        "ticket_solved",
        "lead-ann",
        "2026-11-23T11:10:00Z",
    )


def test_a_trigger_escalation_is_resolved_when_its_condition_clears() -> None:
    events = [created(T0, tier="standard", tags=["legal"]), ev("updated", "2026-11-23T10:20:00Z", changes={"tags": []})]
    _, cmds = run(events, PS)
    assert resolved(cmds)["T1:trigger:legal:1"]["reason"] == "trigger_cleared"
    assert resolved(cmds)["T1:trigger:legal:1"]["open_ms"] == 20 * 60_000


def test_requested_escalations_are_bounded_functional_or_hierarchical() -> None:
    events = [
        created(T0, tier="standard"),
        ev("escalation_requested", "2026-11-23T10:05:00Z", by="requester", level=3, reason="x" * 900),
        ev("escalation_requested", "2026-11-23T10:06:00Z", by="agent", team="legal", reason="contract question"),
        ev("escalation_requested", "2026-11-23T10:07:00Z", by="agent", level=9),
    ]
    _, cmds = run(events, PS)
    got = raised(cmds)
    first, second, third = got["T1:request:1"], got["T1:request:2"], got["T1:request:3"]
    assert (first["level"], first["kind"], first["reason"], len(first["note"])) == (
        1,
        "hierarchical",
        "requester_request",
        500,
    )
    assert (second["kind"], second["team"], second["targets"], second["reason"]) == (
        "functional",
        "legal",
        [{"type": "team", "id": "legal-ops"}],
        "agent_request",
    )
    assert (third["level"], third["targets"]) == (2, [{"type": "role", "id": "support_manager"}])  # the L2 step's


def test_an_older_style_request_only_sets_the_flag_the_triggers_test() -> None:
    state, cmds = run([created(T0, tier="standard"), ev("escalation_requested", "2026-11-23T10:05:00Z", by="x")], PS)
    assert state is not None and state.escalation_requested
    assert not [i for i in ids(cmds) if ":request:" in i]


def test_deescalation_by_id_by_level_and_of_an_unknown_id() -> None:
    base = [created(T0, tier="standard")]
    state, _ = run(base, PS, until="2026-11-23T13:00:00Z")  # L1 11:00, L2 12:00, L3 13:00 open
    _, cmds = run([ev("deescalated", "2026-11-23T13:10:00Z", by="kim", level=2)], PS, state=state.clone())  # type: ignore[union-attr]
    assert sorted(resolved(cmds)) == ["T1:first_response:1:esc:L2", "T1:first_response:1:esc:L3"]
    assert {d["reason"] for d in resolved(cmds).values()} == {"deescalated"}
    assert {d["by"] for d in resolved(cmds).values()} == {"kim"}
    _, cmds = run(
        [ev("deescalated", "2026-11-23T13:10:00Z", by="kim", escalation_id="T1:first_response:1:esc:L1")],
        PS,
        state=state.clone(),  # type: ignore[union-attr]
    )
    assert sorted(resolved(cmds)) == ["T1:first_response:1:esc:L1"]
    _, cmds = run(
        [ev("deescalated", "2026-11-23T13:10:00Z", "T1", "e-x", by="kim", escalation_id="nope")], PS, state=state
    )
    assert [c for c in cmds if isinstance(c, Ignored)] == [Ignored("e-x", "unknown_escalation")]


def test_the_ticket_view_lists_open_and_resolved_escalations() -> None:
    events = [created(T0, tier="standard"), comment("2026-11-23T11:30:00Z")]
    state, _ = run(events, PS, until="2026-11-23T11:20:00Z")
    assert state is not None
    view = describe(state, PS, ms("2026-11-23T11:40:00Z"))
    assert [(e["id"], e["status"]) for e in view["escalations"]] == [  # type: ignore[index, union-attr]
        ("T1:first_response:1:esc:L1", "resolved")
    ]


def test_without_resolve_events_nothing_changes() -> None:
    plain = load_policy_text(POLICY.replace("    resolve_events: true\n", ""), "plain.yaml")
    _, cmds = run([created(T0, tier="standard"), comment("2026-11-23T12:30:00Z")], plain)
    assert not [e for e in emitted(cmds) if e.type == "escalation.resolved"]
    state, _ = run([created(T0, tier="standard")], plain, until="2026-11-23T12:00:00Z")
    assert state is not None and state.escalations == []


@pytest.mark.parametrize("emit_type", ["escalation.resolved"])
def test_resolved_events_validate_against_the_contract(emit_type: str) -> None:
    import orjson
    from jsonschema import Draft202012Validator

    from tests.support import ROOT

    schema = orjson.loads((ROOT / "schemas" / "v1" / f"{emit_type}.json").read_bytes())
    _, cmds = run([created(T0, tier="standard"), status("2026-11-23T11:30:00Z", "solved")], PS, until=None)
    events = [e for e in cmds if isinstance(e, Emit) and e.type == emit_type]
    assert events
    for e in events:
        Draft202012Validator(schema).validate(orjson.loads(orjson.dumps(e.event)))
