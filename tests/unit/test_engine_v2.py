"""SLA model v2, rule by rule at exact instants: ladder steps before the target (``after`` negative, reason
``sla_at_risk``) and catch-up control (``catch_up: latest``)."""

from __future__ import annotations

import pytest

from escalator.core import PolicyError, ThresholdSkipped, advance, load_policy_text, next_deadline
from escalator.core.views import describe
from tests.support import comment, created, emitted, ev, fired, ids, ms, run

POLICY = """
version: 1
calendars:
  office:
    timezone: Europe/Amsterdam
    hours: {mon: ["09:00-17:00"], tue: ["09:00-17:00"], wed: ["09:00-17:00"], thu: ["09:00-17:00"],
            fri: ["09:00-17:00"]}
policies:
  - id: urgent-latest
    match: {priority: [urgent]}
    targets: {first_response: 1h, resolution: 8h}
    warn_at: [0.5, 0.75]
    catch_up: latest
    escalation:
      - {after: -15m, level: 1, notify: [{role: team_lead}]}
      - {after: 0m, level: 2, notify: [{role: support_manager}]}
      - {after: 30m, level: 3, notify: [{role: vp_support}]}
  - id: office
    match: {priority: [high]}
    calendar: office
    targets: {first_response: 2h}
    escalation:
      - {after: -30m, level: 1, notify: [{role: team_lead}]}
  - id: normal-all
    match: {}
    targets: {first_response: 4h}
    warn_at: [0.5, 0.75]
    escalation:
      - {after: 0m, level: 1, notify: [{role: team_lead}]}
      - {after: 1h, level: 2, notify: [{role: support_manager}]}
"""
PS = load_policy_text(POLICY, "v2.yaml")
T0 = "2026-11-23T10:00:00Z"  # a Monday


# --- pre-breach steps -----------------------------------------------------------------------------------------


def test_a_negative_step_fires_before_the_target_as_at_risk() -> None:
    _, cmds = run([created(T0)], PS, until="2026-11-23T11:00:00Z")
    esc = {c.id: c for c in emitted(cmds) if c.type == "escalation.raised"}
    at_risk = esc["T1:first_response:1:esc:L1"]
    assert at_risk.event["time"] == "2026-11-23T10:45:00Z"  # 15 min of open time before the 1 h target
    assert at_risk.event["data"]["reason"] == "sla_at_risk"
    assert at_risk.event["data"]["due_at"] == "2026-11-23T11:00:00Z"
    note = next(c for c in emitted(cmds) if c.id == "T1:first_response:1:esc:L1:notify")
    assert note.event["data"]["subject"] == "Escalation L1: ticket T1 first response at risk (15m left)"
    breach_step = esc["T1:first_response:1:esc:L2"]
    assert (breach_step.event["time"], breach_step.event["data"]["reason"]) == ("2026-11-23T11:00:00Z", "sla_breach")


def test_a_reply_before_the_at_risk_instant_prevents_it() -> None:
    _, cmds = run([created(T0), comment("2026-11-23T10:44:59.999Z")], PS, until="2026-11-23T12:00:00Z")
    first_response = [i for i in ids(cmds) if i.startswith("T1:first_response")]
    assert first_response == ["T1:first_response:1:warn:0.5"]  # 10:30; the at-risk step would have been 10:45


def test_a_pre_breach_step_on_a_business_hours_calendar_counts_open_time() -> None:
    # created Friday 16:00 Amsterdam (15:00Z): 1 h open on Friday, the target (2 h) falls on Monday 10:00 local;
    # 30 min before it is Monday 09:30 local (08:30Z).
    _, cmds = run([created("2026-11-27T15:00:00Z", priority="high", tier="standard")], PS, until="2026-12-01T00:00:00Z")
    got = fired(cmds)
    assert got["T1:first_response:1:esc:L1"] == "2026-11-30T08:30:00Z"
    assert got["T1:first_response:1:breach"] == "2026-11-30T09:00:00Z"


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("{after: -1h, level: 1, notify: [{role: x}]}", "1h before the target is at or before the start"),
        ("{after: -2h, level: 1, notify: [{role: x}]}", "2h before the target is at or before the start"),
        ("{after: -x, level: 1, notify: [{role: x}]}", "invalid duration"),
    ],
)
def test_a_negative_step_beyond_the_target_is_refused_with_its_line(step: str, message: str) -> None:
    text = f"version: 1\npolicies:\n  - id: p\n    targets: {{first_response: 1h}}\n    escalation:\n      - {step}\n"
    with pytest.raises(PolicyError) as err:
        load_policy_text(text, "bad.yaml")
    issue = str(err.value.issues[0])
    assert issue.startswith("bad.yaml:6:") and "policies[0].escalation[0].after" in issue and message in issue


# --- catch-up control -----------------------------------------------------------------------------------------


def test_latest_after_a_re_plan_emits_only_the_breach_and_the_highest_step() -> None:
    """A normal ticket (4 h target, catch_up all) open for 2 h 40 min is raised to urgent (1 h target, catch_up
    latest): both warnings, the breach, the at-risk step and L2 are all overdue at once."""
    replan = "2026-11-23T12:40:00Z"
    state, cmds = run([created(T0, priority="normal"), ev("updated", replan, changes={"priority": "urgent"})], PS)
    assert state is not None and state.policy_id == "urgent-latest"
    got = [i for i in ids(cmds) if not i.endswith((":notify", ":requester"))]
    assert [i for i in got if i.startswith("T1:first_response")] == [
        "T1:first_response:1:warn:0.5",  # fired under normal-all at 12:00 (its own 50 % of 4 h), before the switch
        "T1:first_response:1:breach",
        "T1:first_response:1:esc:L3",  # 2h40m elapsed > 1h + 30m: the highest step due
    ]
    skipped = [c for c in cmds if isinstance(c, ThresholdSkipped)]
    assert [(c.metric, c.threshold, c.at_ms) for c in skipped] == [
        ("first_response", "warn:0.75", ms(replan)),
        ("first_response", "esc:L1", ms(replan)),
        ("first_response", "esc:L2", ms(replan)),
    ]
    view = describe(state, PS, ms(replan))
    clock = next(c for c in view["clocks"] if c["metric"] == "first_response")  # type: ignore[union-attr]
    assert clock["thresholds_skipped"] == ["warn:0.75", "esc:L1", "esc:L2"]  # type: ignore[index]
    assert clock["escalation_level"] == 3  # type: ignore[index]
    # skipped thresholds are never emitted later
    state, later = advance(state, ms("2026-11-24T12:00:00Z"), PS)
    assert not [i for i in ids(later) if i.startswith("T1:first_response")]


def test_all_emits_every_overdue_threshold_at_the_re_plan_instant() -> None:
    text = POLICY.replace("    catch_up: latest\n", "")
    ps = load_policy_text(text, "v2-all.yaml")
    replan = "2026-11-23T12:40:00Z"
    _, cmds = run([created(T0, priority="normal"), ev("updated", replan, changes={"priority": "urgent"})], ps)
    got = fired(cmds)
    for key in ("warn:0.75", "breach", "esc:L1", "esc:L2", "esc:L3"):
        assert got[f"T1:first_response:1:{key}"] == "2026-11-23T12:40:00Z"
    assert not [c for c in cmds if isinstance(c, ThresholdSkipped)]


def test_latest_in_normal_operation_changes_nothing() -> None:
    """Thresholds at distinct instants fire one by one, whatever the advance steps: latest only merges those
    that fall due at one instant."""
    state, cmds = run([created(T0)], PS)
    assert state is not None
    out = list(cmds)
    t = ms(T0)
    while (nd := next_deadline(state, PS)) is not None and nd <= ms("2026-11-23T19:00:00Z"):
        state, step = advance(state, nd, PS)
        out.extend(step)
        t = nd
    assert t > ms(T0)
    got = [i for i in ids(out) if not i.endswith((":notify", ":requester"))]
    assert got[:6] == [
        "T1:first_response:1:warn:0.5",
        "T1:first_response:1:warn:0.75",
        "T1:first_response:1:esc:L1",
        "T1:first_response:1:breach",
        "T1:first_response:1:esc:L2",
        "T1:first_response:1:esc:L3",
    ]
    assert not [c for c in out if isinstance(c, ThresholdSkipped)]


def test_an_existing_policy_keeps_its_version_with_the_new_fields_at_their_defaults() -> None:
    a = load_policy_text("version: 1\npolicies:\n  - {id: p, targets: {resolution: 1h}}\n", "a.yaml")
    b = load_policy_text("version: 1\npolicies:\n  - {id: p, targets: {resolution: 1h}, catch_up: all}\n", "b.yaml")
    c = load_policy_text("version: 1\npolicies:\n  - {id: p, targets: {resolution: 1h}, catch_up: latest}\n", "c")
    assert a.version == b.version != c.version
