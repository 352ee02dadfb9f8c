"""The policy language: the issue's example loads as-is and means what its comments say; errors name file/line/field."""

from __future__ import annotations

import pytest

from escalator.core.policy import PolicyError, load_policy_text
from tests.support import EXAMPLE_POLICY, example_policy

M = 60_000
H = 60 * M


def test_example_loads_and_means_what_it_says() -> None:
    ps = example_policy()
    vip, default = ps.policies
    assert (vip.id, default.id) == ("vip-urgent", "default")
    assert vip.targets == {"first_response": 15 * M, "next_reply": 30 * M, "periodic_update": H, "resolution": 4 * H}
    assert vip.pause_on == frozenset({"pending", "on_hold"})
    assert vip.warn_at == (0.5, 0.8)
    assert [(s.after_ms, s.level, s.repeat_every_ms, s.repeat_times) for s in vip.steps] == [
        (0, 1, 0, 0),
        (30 * M, 2, 0, 0),
        (2 * H, 3, H, 3),
    ]
    assert vip.ack_timeout_ms == H and vip.requester_updates
    assert vip.calendar.always_open
    assert default.calendar.name == "amsterdam-office" and default.calendar.timezone == "Europe/Amsterdam"
    assert default.targets == {"first_response": 4 * H, "resolution": 40 * H}
    assert default.pause_on == frozenset({"pending", "on_hold"})  # the default
    assert [t.id for t in ps.triggers] == [
        "legal",
        "repeated-contact",
        "low-csat",
        "reopened-twice",
        "manager-requested",
    ]
    assert ps.triggers[4].reason == "requester_request" and ps.triggers[0].reason == "trigger"
    rule = ps.incidents[0]
    assert (rule.group_by, rule.threshold, rule.window_ms, rule.cooldown_ms) == ("product", 10, 15 * M, H)


def test_version_ignores_formatting_and_comments() -> None:
    text = EXAMPLE_POLICY.read_text()
    a = load_policy_text(text)
    b = load_policy_text("# a comment\n" + text.replace("calendar: always", 'calendar:    "always"'))
    c = load_policy_text(text.replace("first_response: 4h", "first_response: 5h"))
    assert a.version == b.version != c.version


BASE = """version: 1
policies:
  - id: p
    targets: {first_response: 1h}
"""


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        (BASE.replace("1h", "15x"), 4, "policies[0].targets.first_response", "invalid duration '15x'"),
        (BASE.replace("1h", "15"), 4, "policies[0].targets.first_response", "needs a unit"),
        (BASE + "    bogus: 1\n", 5, "policies[0].bogus", "unknown field"),
        (BASE + "    calendar: nope\n", 5, "policies[0].calendar", "unknown calendar 'nope'"),
        (BASE.replace("version: 1", "version: 2"), 1, "version", "Input should be 1"),
        ("policies: []\n", 1, "version", "required field is missing"),
        (BASE + "    warn_at: [0.5, 1.5]\n", 5, "policies[0].warn_at", "strictly between 0 and 1"),
        (BASE + "    pause_on: [solved]\n", 5, "policies[0].pause_on", "cannot contain solved"),
        (
            BASE + "    escalation:\n      - {after: 1h, level: 2, notify: [{role: a}]}\n"
            "      - {after: 2h, level: 1, notify: [{role: b}]}\n",
            7,
            "policies[0].escalation[1].level",
            "levels must increase",
        ),
        (
            BASE
            + "    escalation:\n      - {after: 1h, level: 1, notify: [{role: a}], repeat: {every: 1h, times: 2}}\n"
            "      - {after: 2h, level: 2, notify: [{role: b}]}\n",
            6,
            "policies[0].escalation[0].repeat",
            "only the last escalation step can repeat",
        ),
        (
            BASE + "    escalation:\n      - {after: 0m, level: 1, notify: [{role: a, team: b}]}\n",
            6,
            "policies[0].escalation[0].notify[0]",
            "exactly one of",
        ),
        (BASE + "  - id: p\n    targets: {resolution: 1h}\n", 5, "policies[1].id", "duplicate id 'p'"),
        (BASE + "calendars:\n  c: {timezone: Nowhere/City}\n", 6, "calendars.c.timezone", "unknown time zone"),
        (BASE + "calendars:\n  c: {hours: {mon: ['9-5']}}\n", 6, "calendars.c.hours", "invalid opening interval"),
        (BASE + "calendars:\n  c: {hours: {funday: ['09:00-17:00']}}\n", 6, "calendars.c.hours", "unknown weekday"),
        (BASE + "calendars:\n  c: {holidays: ['2026-13-01']}\n", 6, "calendars.c.holidays", "invalid holiday"),
        (
            BASE + "triggers:\n  - {id: t, when: {}, escalate: {notify: [{role: x}]}}\n",
            6,
            "triggers[0].when",
            "at least one condition",
        ),
        (
            BASE + "incidents:\n  - {id: i, group_by: colour, threshold: 3, window: 1m, notify: [{role: x}]}\n",
            6,
            "incidents[0].group_by",
            "group_by must be one of",
        ),
        (BASE + "policies: []\n", 5, "policies", "duplicate key"),
        ("version: 1\npolicies:\n  - id: p\n    targets: {first_response: 1h\n", 5, "", "YAML syntax error"),
        ("- just\n- a list\n", 1, "", "must be a YAML mapping"),
    ],
)
def test_errors_name_file_line_and_field(text: str, line: int, path: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "team.yaml")
    issue = info.value.issues[0]
    assert issue.filename == "team.yaml"
    assert issue.line == line, str(info.value)
    assert issue.path == path, str(info.value)
    assert message in issue.message, str(info.value)
    assert str(issue).startswith(f"team.yaml:{line}:")


def test_all_errors_are_reported_at_once() -> None:
    text = BASE.replace("1h", "15x") + "    bogus: 1\n    warn_at: [2]\n"
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, "p.yaml")
    assert {i.path for i in info.value.issues} == {
        "policies[0].targets.first_response",
        "policies[0].bogus",
        "policies[0].warn_at",
    }


def test_warn_fraction_offsets_are_exact() -> None:
    ps = load_policy_text(BASE.replace("1h", "100ms".replace("ms", "s")) + "    warn_at: [0.57]\n")
    plan = ps.policies[0].plans["first_response"]
    assert plan[0].offset_ms == 57_000  # 0.57 * 100 s, not 56.999...


def test_notify_targets_compile() -> None:
    ps = load_policy_text(
        BASE + "    escalation:\n      - {after: 0m, level: 1, notify: [{assignee: true}, "
        "{ticket_group: true}, {user: bob}]}\n"
    )
    assert [(t.type, t.id) for t in ps.policies[0].steps[0].notify] == [
        ("assignee", None),
        ("ticket_group", None),
        ("user", "bob"),
    ]
