"""``escalator tail`` lines: the pure formatter, fed with events the core really emits under the demo policy."""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone
from typing import Any

from escalator.commands.tail import start_plan
from escalator.core import Emit, IncidentSignal, encode_event, load_policy_text, observe
from escalator.tailfmt import LABEL_WIDTH, SUBJECT_WIDTH, format_event, format_record
from tests.support import ROOT, comment, created, emitted, ev, ms, run

PS = load_policy_text((ROOT / "examples" / "demo-policy.yaml").read_text(), "demo-policy.yaml")
T0 = "2026-11-20T10:00:00Z"
ANSI = re.compile(r"\033\[[0-9;]*m")


def at(seconds: float) -> str:
    return f"2026-11-20T10:{int(seconds) // 60:02d}:{seconds % 60:06.3f}Z"


def lines(cmds: list[Any], **kw: Any) -> list[str]:
    return [line for e in emitted(cmds) if (line := format_event(e.event, **kw)) is not None]


def unanswered_urgent() -> list[Emit]:
    _, cmds = run([created(T0, "T1", priority="urgent")], PS, until=at(60))
    return emitted(cmds)


def test_an_unanswered_urgent_ticket_reads_as_a_ladder() -> None:
    assert lines(unanswered_urgent()) == [
        "10:00:10  WARNING         T1                first_response 50% used, due in 10s  -> role:team_lead",
        "10:00:16  WARNING         T1                first_response 80% used, due in 4s  -> role:team_lead",
        "10:00:20  BREACH          T1                first_response breached  -> role:team_lead",
        "10:00:20  ESCALATION L1   T1                first_response target missed  -> role:team_lead",
        "10:00:30  ESCALATION L2   T1                first_response overdue 10s  -> role:support_manager",
        "10:00:40  ESCALATION L3   T1                first_response overdue 20s  -> role:vp_support",
        "10:00:50  ESCALATION L3   T1                first_response overdue 30s (repeat 1)  -> role:vp_support",
        "10:01:00  ESCALATION L3   T1                first_response overdue 40s (repeat 2)  -> role:vp_support",
    ]


def test_notifications_that_repeat_an_event_are_hidden_unless_asked_for() -> None:
    events = unanswered_urgent()
    hidden = [e for e in events if format_event(e.event) is None]
    assert {e.event["data"]["kind"] for e in hidden} == {"escalation", "requester_update"}
    shown = [format_event(e.event, show_all=True) for e in hidden]
    assert shown[0] == (
        "10:00:20  NOTIFY          T1                Escalation L1: ticket T1 first response overdue by 0s"
        "  -> role:team_lead"
    )
    assert shown[1] == (
        "10:00:20  REQUESTER       T1                Your request T1 has been escalated  -> requester:req-T1"
    )


def test_triggers_and_requested_escalations() -> None:
    _, legal = run([created(T0, "T2", priority="normal", tags=["gdpr"])], PS)
    _, manager = run([created(T0, "T3", priority="normal"), ev("escalation_requested", at(5), "T3")], PS)
    assert lines(legal) == ["10:00:00  ESCALATION L2   T2                trigger legal (functional)  -> team:legal"]
    assert lines(manager) == [
        "10:00:05  ESCALATION L2   T3                requester asked for escalation (manager-requested)"
        "  -> role:support_manager"
    ]


def test_acknowledged_but_still_open_and_later_cycles() -> None:
    _, acked = run(
        [created(T0, "T4", priority="urgent"), ev("escalation_acknowledged", at(25), "T4", by="lee")], PS, until=at(45)
    )
    assert lines(acked)[-1] == (
        "10:00:45  ESCALATION L2   T4                first_response overdue 25s, acknowledged but still open"
        "  -> role:support_manager"
    )
    events = [
        created(T0, "T5", priority="urgent"),
        comment(at(5), "agent", "T5"),
        comment(at(10), "requester", "T5"),
        comment(at(15), "agent", "T5"),
        comment(at(20), "requester", "T5"),
    ]
    _, cmds = run(events, PS, until=at(30))
    assert lines(cmds)[-1] == (
        "10:00:30  WARNING         T5                next_reply#2 50% used, due in 10s  -> role:team_lead"
    )


def test_incident_line() -> None:
    window, out = None, []
    for i in range(8):
        window, emits = observe(window, IncidentSignal("outage", "mail", f"M{i}", ms(at(i * 2))), PS)
        out += emits
    assert lines(out) == ["10:00:14  INCIDENT        product=mail      8 tickets in 30s  -> role:incident_manager"]
    assert lines(out, show_all=True)[1].startswith("10:00:14  NOTIFY          mail              Possible incident: 8")


def test_colour_wraps_cells_but_keeps_columns() -> None:
    events = unanswered_urgent()
    plain = lines(events)
    coloured = lines(events, colour=True)
    assert [ANSI.sub("", line) for line in coloured] == plain
    assert all("\033[" in line for line in coloured)
    assert "\033[1;97;41mESCALATION L3\033[0m" in coloured[-1]
    assert "\033[33mWARNING\033[0m" in coloured[0]
    # columns: time (8), two spaces, label, two spaces, subject, two spaces, text
    for line in plain:
        assert line[8:10] == "  " and line[10 + LABEL_WIDTH : 12 + LABEL_WIDTH] == "  "
        assert line[12 + LABEL_WIDTH + SUBJECT_WIDTH : 14 + LABEL_WIDTH + SUBJECT_WIDTH] == "  "


def test_time_zone_and_long_subjects() -> None:
    event = unanswered_urgent()[0].event
    assert str(format_event(event, tz=timezone(timedelta(hours=2)))).startswith("12:00:10  WARNING")
    long_id = {**event, "data": {**event["data"], "ticket_id": "T-k3f2-a-very-long-ticket-id"}}
    assert "  T-k3f2-a-very-long-ticket-id  first_response" in str(format_event(long_id, tz=UTC))


def test_raw_records_and_unknown_events() -> None:
    event = unanswered_urgent()[4].event
    assert format_record(encode_event(event)) == format_event(event)
    for bad in (b"not json", b"[1, 2]", None):
        line = format_record(bad)
        assert line is not None and line.startswith("--:--:--  UNREADABLE")
    other = {"type": "ticket.created", "id": "x1", "time": T0, "subject": "T9", "data": {}}
    assert format_event(other) == "10:00:00  TICKET.CREATED  T9                x1"
    assert format_event({"type": "escalation.raised", "time": "yesterday", "data": {}}) is not None


def test_where_tail_starts_reading() -> None:
    kafka = start_plan(tansu=False, from_beginning=False, started_ms=5_000)
    assert (kafka.seek, kafka.reset, kafka.skip_before) == ("end", "latest", None)
    assert kafka.keep(1)  # after seek_to_end everything read is new
    tansu = start_plan(tansu=True, from_beginning=False, started_ms=5_000)
    assert (tansu.seek, tansu.reset) == ("zero", "earliest")  # never trust Tansu's end offsets
    assert not tansu.keep(4_999) and tansu.keep(5_000) and tansu.keep(None) and tansu.keep(-1)
    for flavour in (True, False):
        everything = start_plan(tansu=flavour, from_beginning=True, started_ms=5_000)
        assert (everything.seek, everything.reset) == ("zero", "earliest") and everything.keep(0)


def test_an_incident_with_members_reads_as_joins_and_an_end() -> None:
    import orjson

    from escalator.core.events import decode_record
    from escalator.replay.simulate import simulate
    from tests.support import envelope

    docs = [
        envelope("ticket.created", at(i), f"M{i}", {"priority": "normal", "product": "mail", "requester": {"id": "r"}})
        for i in range(9)
    ]
    by = {"rule": "outage", "group_value": "mail", "by": "status-page", "reason": "mail is back up"}
    docs.append(envelope("incident.resolved", at(30), "S", by))
    cmds = list(simulate([decode_record(orjson.dumps(d)) for d in docs], PS, ms(at(30))))
    shown = [line for line in lines(cmds) if "product=mail" in line or "incident" in line]
    assert shown[0].startswith("10:00:07  INCIDENT        product=mail      8 tickets in 30s")
    assert "10:00:08  INCIDENT +      product=mail      M8 joined: 9 tickets" in shown
    assert (
        "10:00:30  INCIDENT OVER   product=mail      resolved by status-page after 23s (mail is back up): 9 tickets"
    ) in shown
    assert lines(cmds)[-1] == (
        "10:00:30  RESOLVED        M8                L1 escalation closed (incident_resolved by status-page) after 22s"
    )
    member = next(line for line in shown if line.startswith("10:00:08  ESCALATION L1   M8"))
    assert member.endswith(f"member of incident:outage:mail:{ms(at(7))}  -> team:sre")
