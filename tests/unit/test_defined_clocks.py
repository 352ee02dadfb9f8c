"""SLA model v2, definable clocks: metrics defined by start/stop/cancel conditions, and per-metric pause_on and
on_reopen for built-in and defined metrics, at exact instants."""

from __future__ import annotations

import pytest

from escalator.core import ClockOutcome, PolicyError, load_policy_text
from escalator.core.views import describe
from tests.support import created, emitted, ev, fired, ids, ms, run, status

POLICY = """
version: 1
metrics:
  time_to_assign: {start: {}, stop: {assignee_set: true}}
  vendor_wait:
    start: {status: [on_hold]}
    stop: {status: [open]}
    cancel: {tags_any: [vendor_gone]}
    pause_on: []
  resolution: {on_reopen: restart, pause_on: [on_hold]}
policies:
  - id: p
    match: {}
    targets: {first_response: 1h, resolution: 8h, time_to_assign: 1h, vendor_wait: 2h}
    warn_at: [0.5]
    escalation: [{after: 0m, level: 1, notify: [{role: lead}]}]
"""
PS = load_policy_text(POLICY, "clocks.yaml")
T0 = "2026-11-23T10:00:00Z"


def outcomes(cmds: list[object], metric: str) -> list[tuple[str, str, int, int]]:
    return [
        (o.outcome, o.ended, o.cycle, o.elapsed_ms) for o in cmds if isinstance(o, ClockOutcome) and o.metric == metric
    ]


def test_time_to_assign_is_met_when_an_assignee_is_set() -> None:
    events = [created(T0, tier="standard"), ev("updated", "2026-11-23T10:40:00Z", changes={"assignee": "ann"})]
    _, cmds = run(events, PS, until="2026-11-23T12:00:00Z")
    assert outcomes(cmds, "time_to_assign") == [("met", "achieved", 1, 40 * 60_000)]
    assert fired(cmds)["T1:time_to_assign:1:warn:0.5"] == "2026-11-23T10:30:00Z"
    assert "T1:time_to_assign:1:breach" not in ids(cmds)


def test_time_to_assign_breaches_and_escalates_like_any_metric() -> None:
    _, cmds = run([created(T0, tier="standard")], PS, until="2026-11-23T12:00:00Z")
    assert fired(cmds)["T1:time_to_assign:1:breach"] == "2026-11-23T11:00:00Z"
    esc = next(e for e in emitted(cmds) if e.id == "T1:time_to_assign:1:esc:L1")
    assert esc.event["data"]["metric"] == "time_to_assign"
    note = next(e for e in emitted(cmds) if e.id == "T1:time_to_assign:1:breach")
    assert note.event["data"]["subject"] == "SLA breached: ticket T1 time to assign (target 1h)"


def test_a_ticket_created_with_an_assignee_meets_it_at_once() -> None:
    _, cmds = run([created(T0, tier="standard", assignee="ann")], PS, until="2026-11-23T12:00:00Z")
    assert outcomes(cmds, "time_to_assign") == [("met", "achieved", 1, 0)]


def test_a_defined_clock_starts_on_each_rising_edge_and_keeps_its_own_pause_rule() -> None:
    """vendor_wait runs while on hold (its pause_on is empty, though the policy pauses on_hold), stops on open;
    each new hold starts the next cycle."""
    events = [
        created(T0, tier="standard"),
        status("2026-11-23T10:10:00Z", "on_hold"),
        status("2026-11-23T11:10:00Z", "open"),
        status("2026-11-23T12:00:00Z", "on_hold"),
        status("2026-11-23T15:00:00Z", "open"),
    ]
    _, cmds = run(events, PS, until="2026-11-23T16:00:00Z")
    assert outcomes(cmds, "vendor_wait") == [
        ("met", "achieved", 1, 3_600_000),
        ("breached", "achieved", 2, 3 * 3_600_000),
    ]
    assert fired(cmds)["T1:vendor_wait:2:breach"] == "2026-11-23T14:00:00Z"


def test_cancel_ends_a_defined_clock_without_a_verdict_on_it() -> None:
    events = [
        created(T0, tier="standard"),
        status("2026-11-23T10:10:00Z", "on_hold"),
        ev("updated", "2026-11-23T10:30:00Z", changes={"tags": ["vendor_gone"]}),
    ]
    state, cmds = run(events, PS, until="2026-11-23T16:00:00Z")
    assert outcomes(cmds, "vendor_wait") == [("met", "cancelled", 1, 20 * 60_000)]
    assert state is not None
    view = describe(state, PS, ms("2026-11-23T16:00:00Z"))
    assert [c["metric"] for c in view["clocks"]] == [  # type: ignore[index, union-attr]
        "first_response",
        "resolution",
        "time_to_assign",
        "vendor_wait",
    ]


def test_a_built_in_metric_takes_its_own_pause_on_and_on_reopen() -> None:
    """resolution: pending does not pause it (only on_hold does); a reopen restarts it (cycle 2), where by default
    it would resume cycle 1."""
    events = [
        created(T0, tier="standard", assignee="ann"),
        status("2026-11-23T11:00:00Z", "pending"),
        status("2026-11-23T12:00:00Z", "solved"),
        status("2026-11-23T13:00:00Z", "open"),
    ]
    _, cmds = run(events, PS, until="2026-11-23T22:00:00Z")
    res = outcomes(cmds, "resolution")
    assert res[0] == ("met", "achieved", 1, 2 * 3_600_000)  # 10:00-12:00, pending counted
    assert fired(cmds)["T1:resolution:2:breach"] == "2026-11-23T21:00:00Z"  # a fresh 8 h from the reopen


@pytest.mark.parametrize(
    ("metrics", "where"),
    [
        ("  resolution: {start: {}}\n", "x.yaml:3:16: metrics.resolution.start: resolution is a built-in metric"),
        ("  x: {start: {}}\n", "x.yaml:3:3: metrics.x: a defined metric needs a stop condition"),
        ("  x: {stop: {}}\n", "x.yaml:3:7: metrics.x.stop: an empty stop"),
        (
            "  x: {start: {group_set: true}, stop: {group_set: true}}\n",
            "x.yaml:3:33: metrics.x.stop: stop is the start",
        ),
        ("  Bad-Name: {stop: {group_set: true}}\n", "x.yaml:3:3: metrics.Bad-Name: metric name 'Bad-Name'"),
        ("  x: {stop: {group_set: true}, pause_on: [solved]}\n", "x.yaml:3:32: metrics.x.pause_on: solved ends clocks"),
    ],
)
def test_metric_definition_errors_name_file_line_and_field(metrics: str, where: str) -> None:
    text = f"version: 1\nmetrics:\n{metrics}policies:\n  - {{id: p, targets: {{resolution: 1h}}}}\n"
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, "x.yaml")
    assert str(err.value.issues[0]).startswith(where), str(err.value.issues[0])


def test_a_target_for_an_undefined_metric_is_refused() -> None:
    text = "version: 1\npolicies:\n  - {id: p, targets: {resolution: 1h, time_to_assign: 1h}}\n"
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, "x.yaml")
    assert str(err.value.issues[0]).startswith("x.yaml:3:39: policies[0].targets.time_to_assign: unknown metric")
