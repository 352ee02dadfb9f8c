"""The relay's routing decisions and its files' errors (file:line:field)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from escalator.notify.routing import RecordError, Routing, RoutingError, load_directory, load_routing, parse_notice
from tests.support_sinks import escalation_event, notification_event, resolution_event

DIRECTORY = """\
version: 1
services:
  support: {routing_key: RK-SUPPORT}
roles:
  team_lead: {slack: "https://hooks.example/lead", email: lead@example.com}
  support_manager: {slack: "https://hooks.example/mgr", pagerduty: support}
teams:
  legal: {email: legal@example.com, quiet_hours: "19:00-08:00", timezone: America/New_York}
  oncall: {slack: "https://hooks.example/oncall"}
groups:
  "*": {slack: "https://hooks.example/lead"}
users:
  alice: {email: alice@example.com, team: legal}
requesters:
  "*": {webhook: "https://helpdesk.example/hook"}
"""

ROUTING = """\
version: 1
rules:
  - {name: page, match: {min_level: 2}, channels: [pagerduty]}
  - {name: requesters, match: {recipient_type: [requester]}, channels: [webhook]}
  - {name: critical, match: {severity: [critical]}, channels: [slack], to: ["team:oncall"]}
  - {name: warnings, match: {kind: [sla_warning]}, channels: [slack]}
  - {name: rest, channels: [slack, email]}
"""


def routing() -> Routing:
    return load_routing(ROUTING, "routing.yaml", load_directory(DIRECTORY, "directory.yaml"))


def notice(**kw: object) -> object:
    return parse_notice(orjson.dumps(notification_event("N1", **kw)))  # type: ignore[arg-type]


def decide(**kw: object) -> list[tuple[str, str, str]]:
    return sorted((d.channel, d.recipient, d.address) for d in routing().route(notice(**kw)))  # type: ignore[arg-type]


def test_a_breach_goes_to_every_channel_of_the_first_matching_rule() -> None:
    assert decide(recipients=[("role", "team_lead")]) == [
        ("email", "role:team_lead", "lead@example.com"),
        ("slack", "role:team_lead", "https://hooks.example/lead"),
    ]


def test_rules_by_kind_severity_and_recipient_type() -> None:
    assert decide(kind="sla_warning", severity="warning") == [("slack", "role:team_lead", "https://hooks.example/lead")]
    assert decide(severity="critical") == [("slack", "team:oncall", "https://hooks.example/oncall")]
    assert decide(kind="requester_update", severity="info", recipients=[("requester", "R-9")]) == [
        ("webhook", "requester:R-9", "https://helpdesk.example/hook")
    ]


def test_a_wildcard_entry_answers_for_unlisted_ids_and_unknown_recipients_get_nothing() -> None:
    assert decide(recipients=[("group", "tier-7")]) == [("slack", "group:tier-7", "https://hooks.example/lead")]
    assert decide(recipients=[("role", "nobody")]) == []


def test_two_recipients_with_one_address_get_one_message() -> None:
    got = decide(kind="sla_warning", recipients=[("role", "team_lead"), ("group", "tier1")])
    assert got == [("slack", "role:team_lead", "https://hooks.example/lead")]


def test_pagerduty_takes_escalations_by_level_and_notifications_never_page() -> None:
    r = routing()
    high = parse_notice(orjson.dumps(escalation_event("E1", level=2)))
    assert [(d.channel, d.address) for d in r.route(high)] == [("pagerduty", "RK-SUPPORT")]
    assert r.needs_escalations()
    low = parse_notice(orjson.dumps(escalation_event("E2", level=1)))
    assert r.route(low) == []  # rule "rest" matches, but its channels carry notifications, not escalations
    assert all(d.channel != "pagerduty" for d in r.route(notice(recipients=[("role", "support_manager")])))  # type: ignore[arg-type]


def test_quiet_hours_come_from_the_entry_or_its_team() -> None:
    [dest] = routing().route(notice(recipients=[("user", "alice")]))  # type: ignore[arg-type]
    assert dest.quiet is not None and (dest.quiet.start, dest.quiet.end, dest.quiet.zone) == (
        19 * 60,
        8 * 60,
        "America/New_York",
    )


def test_the_destination_key_never_contains_the_address() -> None:
    for d in routing().route(notice(recipients=[("role", "team_lead")])):  # type: ignore[arg-type]
        assert d.address not in d.key and "hooks" not in d.key


def test_a_resolution_is_read_but_never_routed_by_the_rules() -> None:
    done = parse_notice(orjson.dumps(resolution_event("T-1:esc:L2", reason="ticket_solved")))
    assert done.action == "resolve" and done.escalation_id == "T-1:esc:L2" and done.level == 2
    assert done.subject == "Resolved: L2 escalation of ticket T-1 (ticket_solved)"
    assert routing().route(done) == []  # no recipients: the relay sends it where the trigger went
    bad = resolution_event("E")
    bad["data"]["reason"] = "vanished"
    with pytest.raises(RecordError):
        parse_notice(orjson.dumps(bad))


def test_records_that_are_not_notifications_are_record_errors() -> None:
    with pytest.raises(RecordError):
        parse_notice(b"{not json")
    with pytest.raises(RecordError, match=r"type 'ticket\.created'"):
        parse_notice(b'{"type": "ticket.created"}')
    bad = notification_event("N1")
    bad["data"]["severity"] = "apocalyptic"
    with pytest.raises(RecordError):
        parse_notice(orjson.dumps(bad))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            ROUTING.replace("channels: [pagerduty]", "channels: [pager]"),
            "routing.yaml:3:52: rules[0].channels[0]: Input should be 'slack'",
        ),
        (
            ROUTING.replace("{min_level: 2}", "{min_level: 0}"),
            "routing.yaml:3:26: rules[0].match.min_level: Input should be greater",
        ),
        (ROUTING.replace("[requester]", "[customer]"), "routing.yaml:4:49: rules[1].match.recipient_type[0]: Input"),
        (ROUTING.replace('"team:oncall"', '"team:nobody"'), "routing.yaml:5:77: rules[2].to[0]: 'team:nobody' is not"),
        (ROUTING.replace('"team:oncall"', '"oncall"'), "routing.yaml:5:77: rules[2].to[0]: 'oncall': expected TYPE:ID"),
        (
            ROUTING.replace("name: rest,", "name: rest, colour: red,"),
            "routing.yaml:7:18: rules[4].colour: unknown field",
        ),
        (ROUTING + "  - {name: x, channels: [slack\n", "routing.yaml:9:1: YAML syntax error"),
    ],
)
def test_routing_file_errors_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(RoutingError) as err:
        load_routing(text, "routing.yaml", load_directory(DIRECTORY, "directory.yaml"))
    assert str(err.value.issues[0]).startswith(expected), str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"19:00-08:00"', '"7pm-8am"', "directory.yaml:8:37: teams.legal.quiet_hours: quiet hours '7pm-8am'"),
        ("America/New_York", "Mars/Olympus", "directory.yaml:8:65: teams.legal.timezone: unknown time zone"),
        (
            "pagerduty: support}",
            "pagerduty: billing}",
            "directory.yaml:6:57: roles.support_manager.pagerduty: unknown service",
        ),
        ("lead@example.com", "lead at example", "directory.yaml:5:52: roles.team_lead.email: 'lead at example' is not"),
        (
            '"https://hooks.example/oncall"',
            "hooks.example",
            "directory.yaml:9:12: teams.oncall.slack: 'hooks.example' is not an",
        ),
        ("team: legal", "team: sales", "directory.yaml:13:37: users.alice.team: unknown team 'sales'"),
    ],
)
def test_directory_errors_name_file_line_and_field(old: str, new: str, expected: str) -> None:
    with pytest.raises(RoutingError) as err:
        load_directory(DIRECTORY.replace(old, new), "directory.yaml")
    assert str(err.value.issues[0]).startswith(expected), str(err.value)


def test_the_shipped_examples_are_valid_and_reach_every_recipient_of_the_demo_policy() -> None:
    from escalator.notify.routing import load_files

    root = Path(__file__).resolve().parents[2]
    r = load_files(root / "examples" / "routing.yaml", root / "examples" / "directory.yaml")
    assert r.channels() == {"slack", "webhook", "email", "pagerduty"}
    for recipient in [
        ("role", "team_lead"),
        ("role", "support_manager"),
        ("role", "vp_support"),
        ("role", "incident_manager"),
        ("team", "legal"),
        ("group", "tech"),
        ("requester", "cust-1"),
    ]:
        assert r.route(notice(recipients=[recipient])), recipient  # type: ignore[arg-type]


def test_an_unreadable_file_is_a_routing_error_naming_it(tmp_path: Path) -> None:
    from escalator.notify.routing import load_files

    missing = tmp_path / "nope.yaml"
    with pytest.raises(RoutingError, match=r"nope\.yaml: cannot read"):
        load_files(missing, missing)
