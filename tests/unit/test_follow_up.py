"""A policy's follow_up: a feedback request after the ticket is solved, cancelled by a reopen."""

from __future__ import annotations

from escalator.core import load_policy_text
from tests.support import created, emitted, fired, run, status

POLICY = """
version: 1
policies:
  - id: p
    match: {}
    targets: {resolution: 8h}
    follow_up: {after: 24h}
"""
PS = load_policy_text(POLICY, "follow.yaml")
T0 = "2026-11-23T10:00:00Z"


def test_a_feedback_request_follows_the_solve() -> None:
    _, cmds = run(
        [created(T0, tier="standard"), status("2026-11-23T12:00:00Z", "solved")], PS, until="2026-11-25T00:00:00Z"
    )
    assert fired(cmds)["T1:follow_up:1"] == "2026-11-24T12:00:00Z"
    note = next(e for e in emitted(cmds) if e.id == "T1:follow_up:1")
    data = note.event["data"]
    assert (data["kind"], data["recipients"], data["severity"]) == (
        "follow_up",
        [{"type": "requester", "id": "req-T1"}],
        "info",
    )
    assert data["subject"] == "How did we do with your request T1?"


def test_a_reopen_cancels_it_and_the_next_solve_schedules_the_next() -> None:
    events = [
        created(T0, tier="standard"),
        status("2026-11-23T12:00:00Z", "solved"),
        status("2026-11-23T20:00:00Z", "open"),
        status("2026-11-24T09:00:00Z", "solved"),
        status("2026-11-24T10:00:00Z", "closed"),
    ]
    _, cmds = run(events, PS, until="2026-11-26T00:00:00Z")
    follow = {k: v for k, v in fired(cmds).items() if ":follow_up:" in k}
    assert follow == {"T1:follow_up:2": "2026-11-25T09:00:00Z"}  # closing after the solve does not cancel it


def test_without_follow_up_nothing_is_sent() -> None:
    plain = load_policy_text(POLICY.replace("    follow_up: {after: 24h}\n", ""), "plain.yaml")
    _, cmds = run(
        [created(T0, tier="standard"), status("2026-11-23T12:00:00Z", "solved")], plain, until="2026-11-26T00:00:00Z"
    )
    assert not [e for e in emitted(cmds) if ":follow_up:" in e.id]
    assert plain.version != PS.version
