"""The channels' payloads, byte for byte, and the Standard Webhooks signature against the convention's own vector."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from escalator.notify.channels import HttpAnswer, SendError, check_answer, message_id
from escalator.notify.channels.email import EmailChannel, email_message
from escalator.notify.channels.pagerduty import PagerDutyChannel, pagerduty_payload
from escalator.notify.channels.slack import SlackChannel, slack_payload
from escalator.notify.channels.webhook import WebhookChannel, sign, webhook_payload
from escalator.notify.routing import Destination, Notice, parse_notice
from tests.support_sinks import FakeHttp, FakeSmtp, escalation_event, notification_event, resolution_event

NOW = 1_772_445_600_000  # 2026-03-02T10:00:00Z


def note(nid: str = "N1", **kw: object) -> Notice:
    return parse_notice(orjson.dumps(notification_event(nid, **kw)))  # type: ignore[arg-type]


def test_standard_webhooks_signature_matches_the_conventions_published_vector() -> None:
    # from the Standard Webhooks reference libraries' tests (standard-webhooks/standard-webhooks)
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    got = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_a_webhook_carries_id_timestamp_and_a_signature_a_receiver_can_verify() -> None:
    http = FakeHttp()
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    n = note()
    await WebhookChannel(http, 5.0, secret).send(Destination("webhook", "https://h/x", "requester:R"), [n], NOW)
    [post] = http.posts
    assert post.url == "https://h/x"
    assert post.headers["webhook-id"] == "N1"
    assert post.headers["webhook-timestamp"] == "1772445600"
    mac = hmac.new(b"0123456789abcdef0123456789abcdef", b"N1.1772445600." + post.body, hashlib.sha256).digest()
    assert post.headers["webhook-signature"] == "v1," + base64.b64encode(mac).decode()
    assert post.json() == {"type": "notification.requested", "id": "N1", "recipient": "requester:R", "data": n.data}
    assert post.body == orjson.dumps(post.json(), option=orjson.OPT_SORT_KEYS)


def test_a_webhook_digest_lists_its_notifications_under_a_stable_id() -> None:
    a, b = note("A"), note("B")
    body = webhook_payload([a, b], "role:x")
    assert body == {
        "type": "notification.digest",
        "id": message_id([a, b]),
        "recipient": "role:x",
        "notifications": [a.data, b.data],
    }
    assert message_id([a, b]) == message_id([note("A"), note("B")]) != message_id([b, a])


def test_slack_blocks_text_and_digest_payloads() -> None:
    n = note()
    assert slack_payload([n], "role:team_lead") == {
        "text": "sla_breach on T-1 &lt;N1&gt;",
        "blocks": [
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "*sla_breach on T-1 &lt;N1&gt;*\nBody of N1 &amp; more."},
            },
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": "sla_breach · high · ticket T-1 · 2026-03-02T10:00:00Z"}],
            },
        ],
    }
    assert slack_payload([n], "role:team_lead", "text") == {
        "text": "sla_breach on T-1 &lt;N1&gt;\nBody of N1 &amp; more."
    }
    assert slack_payload([n, note("N2", severity="warning")], "role:team_lead", "text") == {
        "text": "2 notifications for role:team_lead\n• [high] sla_breach on T-1 &lt;N1&gt;\n"
        "• [warning] sla_breach on T-1 &lt;N2&gt;"
    }


async def test_slack_posts_json_to_the_incoming_webhook() -> None:
    http = FakeHttp()
    await SlackChannel(http, 5.0).send(Destination("slack", "https://hooks/x", "role:a"), [note()], NOW)
    assert http.posts[0].url == "https://hooks/x"
    assert http.posts[0].json() == slack_payload([note()], "role:a")


async def test_pagerduty_triggers_with_the_escalation_id_as_dedup_key() -> None:
    esc = parse_notice(orjson.dumps(escalation_event("T-1:esc:L2", level=2)))
    http = FakeHttp(script=[202])
    await PagerDutyChannel(http, 5.0, "https://events.example/v2/enqueue").send(
        Destination("pagerduty", "RK", "role:support_manager"), [esc], NOW
    )
    assert http.posts[0].url == "https://events.example/v2/enqueue"
    assert http.posts[0].json() == {
        "routing_key": "RK",
        "event_action": "trigger",
        "dedup_key": "T-1:esc:L2",
        "client": "escalator",
        "payload": {
            "summary": "L2 escalation of ticket T-1 (sla_breach: first_response)",
            "source": "escalator",
            "severity": "critical",
            "timestamp": "2026-03-02T10:00:00Z",
            "component": "T-1",
            "group": "tier1",
            "class": "escalation",
            "custom_details": esc.data,
        },
    }
    level1 = parse_notice(orjson.dumps(escalation_event("E", level=1)))
    assert pagerduty_payload(level1, "RK")["payload"]["severity"] == "error"


async def test_pagerduty_resolves_with_the_same_dedup_key_and_nothing_else() -> None:
    done = parse_notice(orjson.dumps(resolution_event("T-1:esc:L2")))
    assert (done.id, done.action, done.alert_key) == ("T-1:esc:L2:resolved", "resolve", "T-1:esc:L2")
    assert done.recipients == () and done.fired_at == "2026-03-02T10:30:00Z"
    http = FakeHttp(script=[202])
    await PagerDutyChannel(http, 5.0, "https://events.example/v2/enqueue").send(
        Destination("pagerduty", "RK", "role:support_manager"), [done], NOW
    )
    assert http.posts[0].url == "https://events.example/v2/enqueue"
    assert http.posts[0].body == b'{"routing_key":"RK","event_action":"resolve","dedup_key":"T-1:esc:L2"}'


async def test_email_subject_body_and_headers() -> None:
    smtp = FakeSmtp()
    await EmailChannel(smtp, "escalator@example.com").send(
        Destination("email", "lead@example.com", "role:a"), [note()], NOW
    )
    [mail] = smtp.sent
    assert mail["From"] == "escalator@example.com"
    assert mail["To"] == "lead@example.com"
    assert mail["Subject"] == "[escalator] sla_breach on T-1 <N1>"
    assert mail["Date"] == "Mon, 02 Mar 2026 10:00:00 +0000"
    assert mail["Message-ID"] == f"<{hashlib.sha256(b'N1').hexdigest()[:32]}@escalator>"
    assert mail.get_content() == (
        "Body of N1 & more.\n\nKind: sla_breach\nSeverity: high\nTicket: T-1\nFired at: 2026-03-02T10:00:00Z\n"
        "Notification: N1\n"
    )
    digest = email_message([note("A"), note("B")], "x@example.com", "e@example.com", "team:legal", NOW)
    assert digest["Subject"] == "[escalator] 2 notifications for team:legal"
    assert digest.get_content().startswith("2 notifications for team:legal:\n\n- [high] sla_breach on T-1 <A>\n")


@pytest.mark.parametrize(
    ("status", "reason", "retryable"),
    [
        (500, "http_5xx", True),
        (503, "http_5xx", True),
        (429, "http_429", True),
        (408, "http_4xx", True),
        (400, "http_4xx", False),
        (404, "http_4xx", False),
    ],
)
def test_answers_are_classified(status: int, reason: str, retryable: bool) -> None:
    with pytest.raises(SendError) as err:
        check_answer(HttpAnswer(status, "7"))
    assert (err.value.reason, err.value.retryable) == (reason, retryable)
    check_answer(HttpAnswer(204))


def test_the_dev_sink_prints_a_pagerduty_resolve_by_the_alert_it_closes() -> None:
    from escalator.notify.devsink import _summary

    trigger = {"event_action": "trigger", "dedup_key": "T-1:esc:L2", "payload": {"severity": "error", "summary": "L2"}}
    assert _summary("pagerduty", trigger) == "trigger [error] L2"
    assert _summary("pagerduty", {"event_action": "resolve", "dedup_key": "T-1:esc:L2"}) == "resolve T-1:esc:L2"
