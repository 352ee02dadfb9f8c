"""`escalator notify` against the real broker and real loopback servers: a Slack sink, a webhook sink that verifies
the Standard Webhooks signature, a PagerDuty sink (HTTP, one recording server) and an aiosmtpd SMTP server. The
relay runs as its own process, stopped by PID; for PagerDuty resolves a worker runs beside it (also by PID)."""

from __future__ import annotations

import sys
import time
import urllib.request
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import orjson
import pytest

from escalator.core.timefmt import format_ms
from escalator.notify.channels.pagerduty import pagerduty_payload
from escalator.notify.channels.slack import slack_payload
from escalator.notify.channels.webhook import webhook_payload
from escalator.notify.routing import parse_notice
from tests.integration.conftest import KafkaTarget, Processes, TopicFactory, stop_pid
from tests.integration.workers import Collector, Deployment, event_record, produce
from tests.support_sinks import HttpSink, SmtpSink, escalation_event, free_port, notification_event
from tests.waiting import wait_until

pytestmark = pytest.mark.broker

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _files(tmp: Path, sink: HttpSink) -> tuple[Path, Path]:
    directory = tmp / "directory.yaml"
    directory.write_text(
        f"""version: 1
services: {{support: {{routing_key: RK-SUPPORT}}}}
roles:
  team_lead: {{slack: "{sink.url("/slack")}", email: lead@example.com}}
  support_manager: {{pagerduty: support}}
  broken: {{slack: "{sink.url("/failing")}"}}
requesters:
  "*": {{webhook: "{sink.url("/webhook")}"}}
"""
    )
    routing = tmp / "routing.yaml"
    routing.write_text(
        """version: 1
rules:
  - {name: page, match: {min_level: 2}, channels: [pagerduty]}
  - {name: requesters, match: {recipient_type: [requester]}, channels: [webhook]}
  - {name: rest, channels: [slack, email]}
"""
    )
    return routing, directory


def _produce(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "acks": "all"})
    for event in events:
        producer.produce(topic, orjson.dumps(event), key=event["subject"].encode(), headers=[("escalator-id", b"1")])
    assert producer.flush(15) == 0


def _read_all(bootstrap: str, topic: str) -> list[Any]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    try:
        return [m for m in consumer.consume(100, timeout=1.0) if m.error() is None]
    finally:
        consumer.close()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture
def relay_env(kafka: KafkaTarget, topics: TopicFactory, app_id: str, tmp_path: Path) -> dict[str, str]:
    notes, escs, dlq = topics.one("notes"), topics.one("escs"), topics.one("notes-dlq")
    return {
        **kafka.env(),
        "ESCALATOR_APP_ID": app_id,
        "ESCALATOR_TOPIC_NOTIFICATIONS": notes,
        "ESCALATOR_TOPIC_ESCALATIONS": escs,
        "ESCALATOR_NOTIFY_DLQ_TOPIC": dlq,
        "ESCALATOR_NOTIFY_DATA_DIR": str(tmp_path / "state"),
        "ESCALATOR_NOTIFY_WEB_PORT": str(free_port()),
        "ESCALATOR_NOTIFY_WEBHOOK_SECRET": SECRET,
        "ESCALATOR_NOTIFY_SMTP_STARTTLS": "false",
        "ESCALATOR_NOTIFY_MAX_ATTEMPTS": "3",
        "ESCALATOR_NOTIFY_BACKOFF_INITIAL_SECONDS": "0.2",
        "ESCALATOR_NOTIFY_BACKOFF_MAX_SECONDS": "0.5",
        "ESCALATOR_NOTIFY_HTTP_TIMEOUT_SECONDS": "1",
        "ESCALATOR_NOTIFY_DIGEST_WINDOW_SECONDS": "0",
        "ESCALATOR_NOTIFY_WARNING_MAX_AGE_SECONDS": "0",
    }


def test_the_relay_delivers_to_every_channel_and_dead_letters_after_retries(
    kafka: KafkaTarget, relay_env: dict[str, str], processes: Processes, tmp_path: Path
) -> None:
    with HttpSink(secret=SECRET, hang_s=3.0) as sink, SmtpSink() as smtp:
        routing, directory = _files(tmp_path, sink)
        sink.behave["/failing"] = [503, "timeout", 500]
        env = {
            **relay_env,
            "ESCALATOR_NOTIFY_ROUTING_FILE": str(routing),
            "ESCALATOR_NOTIFY_DIRECTORY_FILE": str(directory),
            "ESCALATOR_NOTIFY_SMTP_HOST": "127.0.0.1",
            "ESCALATOR_NOTIFY_SMTP_PORT": str(smtp.port),
            "ESCALATOR_NOTIFY_PAGERDUTY_URL": sink.url("/pagerduty"),
        }
        proc, log = processes.start([sys.executable, "-m", "escalator", "notify"], env=env, name="notify")
        port = int(env["ESCALATOR_NOTIFY_WEB_PORT"])
        wait_until(lambda: _ready(port) or proc.poll() is not None, 30, "the relay to be ready")
        assert proc.poll() is None, log.read_text()

        breach = notification_event("T-1:first_response:1:breach")
        update = notification_event(
            "T-1:requester:1", kind="requester_update", severity="info", recipients=[("requester", "R-7")]
        )
        failing = notification_event("T-2:breach", recipients=[("role", "broken")], ticket="T-2")
        escalation = escalation_event("T-1:esc:L2", level=2)
        _produce(kafka.bootstrap, env["ESCALATOR_TOPIC_NOTIFICATIONS"], [breach, update, failing])
        _produce(kafka.bootstrap, env["ESCALATOR_TOPIC_ESCALATIONS"], [escalation])

        wait_until(
            lambda: (
                sink.received("/slack") and sink.received("/webhook") and sink.received("/pagerduty") and smtp.messages
            ),
            30,
            "a delivery to every channel",
        )
        # Slack: the exact payload
        [(_, slack_body)] = sink.received("/slack")
        assert orjson.loads(slack_body) == slack_payload([parse_notice(orjson.dumps(breach))], "role:team_lead")
        # webhook: the exact body, and a signature the sink verified
        [(headers, hook_body)] = sink.received("/webhook")
        expected = webhook_payload([parse_notice(orjson.dumps(update))], "requester:R-7")
        assert hook_body == orjson.dumps(expected, option=orjson.OPT_SORT_KEYS)
        assert headers["webhook-id"] == "T-1:requester:1" and sink.bad_signatures == 0
        # PagerDuty: the exact event, dedup_key = the escalation id
        [(_, pd_body)] = sink.received("/pagerduty")
        assert orjson.loads(pd_body) == pagerduty_payload(parse_notice(orjson.dumps(escalation)), "RK-SUPPORT")
        # e-mail over SMTP
        [(rcpt, raw)] = smtp.messages
        mail = message_from_bytes(raw, policy=default_policy)
        assert isinstance(mail, EmailMessage) and rcpt == ["lead@example.com"]
        assert mail["Subject"] == "[escalator] sla_breach on T-1 <T-1:first_response:1:breach>"
        assert mail.get_content().replace("\r\n", "\n") == (
            "Body of T-1:first_response:1:breach & more.\n\nKind: sla_breach\nSeverity: high\nTicket: T-1\n"
            "Fired at: 2026-03-02T10:00:00Z\nNotification: T-1:first_response:1:breach\n"
        )

        # the failing destination: 503, a time-out, 500 -> the dead-letter topic with the reason
        dlq = env["ESCALATOR_NOTIFY_DLQ_TOPIC"]
        letters = wait_until(lambda: _read_all(kafka.bootstrap, dlq), 30, "a dead letter")
        [letter] = letters
        headers_of = dict(letter.headers())
        assert headers_of["escalator-dlq-reason"] == b"http_5xx"
        assert headers_of["escalator-dlq-channel"] == b"slack"
        assert headers_of["escalator-dlq-recipient"] == b"role:broken"
        assert letter.value() == orjson.dumps(failing) and letter.key() == b"T-2"
        assert len(sink.received("/failing")) == 2  # the time-out never answered: three attempts, two answers
        assert len(sink.received("/slack")) == 1  # nothing was sent twice


def _metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_no_double_send_after_a_relay_restart_mid_batch(
    kafka: KafkaTarget, relay_env: dict[str, str], processes: Processes, tmp_path: Path
) -> None:
    with HttpSink() as sink, SmtpSink() as smtp:
        routing, directory = _files(tmp_path, sink)
        sink.behave["/failing"] = [503] * 100  # until the restart
        env = {
            **relay_env,
            "ESCALATOR_NOTIFY_ROUTING_FILE": str(routing),
            "ESCALATOR_NOTIFY_DIRECTORY_FILE": str(directory),
            "ESCALATOR_NOTIFY_SMTP_HOST": "127.0.0.1",
            "ESCALATOR_NOTIFY_SMTP_PORT": str(smtp.port),
            "ESCALATOR_NOTIFY_MAX_ATTEMPTS": "50",
        }
        port = int(env["ESCALATOR_NOTIFY_WEB_PORT"])
        first, log = processes.start([sys.executable, "-m", "escalator", "notify"], env=env, name="notify")
        wait_until(lambda: _ready(port) or first.poll() is not None, 30, "the relay to be ready")
        # offset 0 cannot be delivered yet, offset 1 is: nothing of the batch may be committed
        pending = notification_event("T-2:breach", recipients=[("role", "broken")], ticket="T-2")
        delivered = notification_event("T-1:breach")
        _produce(kafka.bootstrap, env["ESCALATOR_TOPIC_NOTIFICATIONS"], [pending, delivered])
        wait_until(lambda: sink.received("/slack") and sink.received("/failing") and smtp.messages, 30, "deliveries")
        stop_pid(first)
        assert first.returncode == 0, log.read_text()

        sink.behave["/failing"] = []  # the destination recovers
        second, log = processes.start([sys.executable, "-m", "escalator", "notify"], env=env, name="notify")
        duplicates = 'escalator_notify_suppressed_total{reason="duplicate"}'
        wait_until(
            lambda: _metric(port, "escalator_notify_delivered_total") >= 1 and _metric(port, duplicates) >= 2,
            30,
            "the pending delivery, and the delivered record recognised (Slack and e-mail)",
        )
        assert _metric(port, duplicates) == 2
        assert len(sink.received("/slack")) == 1 and len(smtp.messages) == 1  # not sent twice
        assert second.poll() is None, log.read_text()


RESOLVING_POLICY = """version: 1
policies:
  - id: fast
    match: {}
    calendar: always
    targets: {first_response: 1s, resolution: 60s}
    resolve_events: true
    escalation:
      - {after: 0s, level: 1, notify: [{role: team_lead}]}
      - {after: 1s, level: 2, notify: [{role: support_manager}]}
"""


def _ticket_event(ticket: str, n: int, etype: str, data: dict[str, Any]) -> dict[str, Any]:
    at = format_ms(int(time.time() * 1000))
    return {
        "specversion": "1.0",
        "id": f"{ticket}-{n}",
        "source": "it",
        "type": f"ticket.{etype}",
        "time": at,
        "subject": ticket,
        "data": data,
    }


def test_a_worker_escalation_pages_pagerduty_and_its_resolution_resolves_it(
    kafka: KafkaTarget, relay_env: dict[str, str], processes: Processes, tmp_path: Path
) -> None:
    """The worker (policy with resolve_events) raises L1 and L2 for an unanswered ticket; only L2 pages. The agent's
    reply resolves both: L2's resolve reaches the service its trigger went to, L1's is skipped (never triggered)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(RESOLVING_POLICY)
    dep = Deployment(kafka.bootstrap, kafka.flavour, tmp_path, partitions=1, policy_file=policy)
    dep.create_topics()
    worker = dep.worker().start()
    try:
        worker.wait_ready()
        with HttpSink() as sink, Collector(dep.bootstrap, [dep.topics["escalations"]]) as outputs:
            directory, routing = tmp_path / "directory.yaml", tmp_path / "routing.yaml"
            directory.write_text(
                "version: 1\nservices: {support: {routing_key: RK-SUPPORT}}\n"
                "roles: {support_manager: {pagerduty: support}}\n"
            )
            routing.write_text("version: 1\nrules: [{name: page, match: {min_level: 2}, channels: [pagerduty]}]\n")
            env = {
                **relay_env,
                "ESCALATOR_TOPIC_NOTIFICATIONS": dep.topics["notifications"],
                "ESCALATOR_TOPIC_ESCALATIONS": dep.topics["escalations"],
                "ESCALATOR_NOTIFY_ROUTING_FILE": str(routing),
                "ESCALATOR_NOTIFY_DIRECTORY_FILE": str(directory),
                "ESCALATOR_NOTIFY_PAGERDUTY_URL": sink.url("/pagerduty"),
            }
            relay, log = processes.start([sys.executable, "-m", "escalator", "notify"], env=env, name="notify")
            port = int(env["ESCALATOR_NOTIFY_WEB_PORT"])
            wait_until(lambda: _ready(port) or relay.poll() is not None, 30, "the relay to be ready")
            assert relay.poll() is None, log.read_text()

            ticket = f"{dep.name}-1"
            created = {"priority": "high", "requester": {"id": "c1", "tier": "standard"}}
            produce(dep.bootstrap, dep.topics["input"], [event_record(_ticket_event(ticket, 0, "created", created))])
            wait_until(lambda: sink.received("/pagerduty"), 30, "the L2 escalation's trigger")
            reply = _ticket_event(ticket, 1, "commented", {"author": "agent"})
            produce(dep.bootstrap, dep.topics["input"], [event_record(reply)])
            wait_until(lambda: len(sink.received("/pagerduty")) >= 2, 30, "the resolve")

            records = {orjson.loads(r.value)["id"]: r.value for r in outputs.snapshot()}
            l1, l2 = f"{ticket}:first_response:1:esc:L1", f"{ticket}:first_response:1:esc:L2"
            assert {l1, l2, f"{l1}:resolved", f"{l2}:resolved"} <= set(records)
            trigger, resolve = (orjson.loads(body) for _, body in sink.received("/pagerduty"))
            assert trigger == pagerduty_payload(parse_notice(records[l2]), "RK-SUPPORT")
            assert resolve == {"routing_key": "RK-SUPPORT", "event_action": "resolve", "dedup_key": l2}
            assert orjson.loads(records[f"{l2}:resolved"])["data"]["reason"] == "clock_achieved"
            not_triggered = 'escalator_notify_suppressed_total{reason="not_triggered"}'
            wait_until(lambda: _metric(port, not_triggered) == 1, 30, "L1's resolve skipped (never triggered)")
            assert _metric(port, "escalator_notify_resolves_delivered_total") == 1
            assert len(sink.received("/pagerduty")) == 2 and relay.poll() is None, log.read_text()
    finally:
        assert worker.stop() == 0, worker.log_tail()
