"""The relay's loop on the in-memory broker with a manual clock and fake transports: delivery before commit,
retries, dead letters, the circuit breaker, de-duplication across a restart, digests, quiet hours, staleness, and
PagerDuty resolves (where the trigger went, after the trigger, across a restart, retried and dead-lettered)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from escalator.notify.channels import SendError
from escalator.notify.channels.email import EmailChannel
from escalator.notify.channels.pagerduty import PagerDutyChannel
from escalator.notify.channels.slack import SlackChannel
from escalator.notify.channels.webhook import WebhookChannel
from escalator.notify.delivery import Backoff, CircuitBreaker, DeliveryLog, MemoryDeliveryLog, RocksDeliveryLog
from escalator.notify.metrics import NotifyMetrics
from escalator.notify.relay import Relay
from escalator.notify.routing import load_directory, load_routing
from escalator.service.timesource import ManualTime
from escalator.settings import Settings
from escalator.stream.inmemory import MemoryBroker, MemoryGroupConsumer, MemoryProducer
from escalator.stream.ports import headers_get
from tests.support_sinks import (
    FakeHttp,
    FakeSmtp,
    escalation_event,
    incident_event,
    notification_event,
    resolution_event,
)

NOW = 1_772_445_600_000  # 2026-03-02T10:00:00Z
NOTES, ESCS, DLQ = "ticket-notifications", "ticket-escalations", "ticket-notifications.delivery-dlq"

DIRECTORY = """\
version: 1
services: {support: {routing_key: RK}}
roles:
  team_lead: {slack: "https://hooks.example/lead"}
  night: {slack: "https://hooks.example/night", quiet_hours: "22:00-07:00", timezone: UTC}
  support_manager: {pagerduty: support}
requesters:
  "*": {webhook: "https://helpdesk.example/hook"}
users:
  bob: {email: bob@example.com}
"""
ROUTING = """\
version: 1
rules:
  - {name: page, match: {min_level: 2}, channels: [pagerduty]}
  - {name: requesters, match: {recipient_type: [requester]}, channels: [webhook]}
  - {name: rest, channels: [slack, email]}
"""


class Harness:
    def __init__(
        self,
        delivery_log: DeliveryLog | None = None,
        broker: MemoryBroker | None = None,
        directory: str = DIRECTORY,
        **settings: Any,
    ):
        self.clock = ManualTime(NOW)
        self.broker = broker or MemoryBroker(self.clock.now_ms)
        for topic in (NOTES, ESCS, DLQ):
            self.broker.create_topic(topic, 1)
        self.settings = Settings(
            **{
                "app_id": "t",
                "notify_max_attempts": 3,
                "notify_backoff_initial_seconds": 1,
                "notify_backoff_max_seconds": 8,
                "notify_breaker_failures": 100,
                "notify_digest_window_seconds": 0,
                **settings,
            }
        )
        self.http = FakeHttp()
        self.smtp = FakeSmtp()
        self.registry = CollectorRegistry()
        self.consumer = MemoryGroupConsumer(self.broker, "t-notify")
        self.producer = MemoryProducer(self.broker)
        channels = {
            "slack": SlackChannel(self.http, 5.0),
            "webhook": WebhookChannel(self.http, 5.0, None),
            "email": EmailChannel(self.smtp, "e@example.com"),
            "pagerduty": PagerDutyChannel(self.http, 5.0, "https://pd.example/enqueue"),
        }
        routing = load_routing(ROUTING, "routing.yaml", load_directory(directory, "directory.yaml"))
        self.log = delivery_log or MemoryDeliveryLog()
        metrics = NotifyMetrics(self.registry)
        self.relay = Relay(
            self.settings,
            routing,
            self.consumer,
            self.producer,
            channels,
            self.log,
            self.clock,
            metrics,
            random.Random(7),
        )
        self.relay.start()
        self.broker.rebalance("t-notify", {self.consumer: [(NOTES, 0), (ESCS, 0)]})

    def produce(self, event: dict[str, Any], topic: str = NOTES) -> None:
        self.broker.append(topic, 0, event["subject"].encode(), orjson.dumps(event), [("escalator-id", b"x")])

    async def step(self, advance_ms: int = 0) -> None:
        self.clock.advance(advance_ms)
        self.producer.transmit()  # the network: what was produced reaches the broker
        await self.relay.step()

    def committed(self, topic: str = NOTES) -> int | None:
        return self.broker.groups["t-notify"].committed.get((topic, 0))

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0

    def urls(self) -> list[str]:
        return [p.url for p in self.http.posts]


async def test_a_notification_is_delivered_and_only_then_committed() -> None:
    h = Harness()
    h.http.script = [SendError("timeout", "slow")]
    h.produce(notification_event("N1"))
    await h.step()
    assert h.urls() == ["https://hooks.example/lead"] and h.committed() is None
    await h.step(advance_ms=8_000)
    assert h.urls() == ["https://hooks.example/lead"] * 2
    assert h.committed() == 1
    assert h.metric("escalator_notify_delivered_total", channel="slack") == 1
    assert h.metric("escalator_notify_attempts_total", channel="slack") == 2
    assert h.metric("escalator_notify_failed_total", channel="slack", reason="timeout") == 1
    assert h.metric("escalator_notify_delivery_latency_seconds_sum") == 8.0


async def test_retries_then_the_dead_letter_topic_with_the_reason_then_the_commit() -> None:
    h = Harness()
    h.http.script = [503, 503, 503]
    h.produce(notification_event("N1"))
    await h.step()
    await h.step(advance_ms=8_000)
    assert h.broker.records(DLQ) == [] and h.committed() is None
    await h.step(advance_ms=8_000)  # third attempt fails: dead-lettered (produced, not yet acknowledged)
    assert len(h.http.posts) == 3 and h.committed() is None
    await h.step()  # the dead letter reaches the broker and its acknowledgement is served
    [letter] = h.broker.records(DLQ)
    assert letter.value() == h.broker.records(NOTES)[0].value() and letter.key() == b"T-1"
    assert headers_get(letter.headers(), "escalator-id") == b"x"
    assert headers_get(letter.headers(), "escalator-dlq-reason") == b"http_5xx"
    assert headers_get(letter.headers(), "escalator-dlq-detail") == b"status 503"
    assert headers_get(letter.headers(), "escalator-dlq-channel") == b"slack"
    assert headers_get(letter.headers(), "escalator-dlq-recipient") == b"role:team_lead"
    assert headers_get(letter.headers(), "escalator-dlq-offset") == b"0"
    assert h.committed() == 1
    assert h.metric("escalator_notify_dead_lettered_total", channel="slack") == 1


async def test_a_permanent_refusal_is_dead_lettered_at_once_and_unreadable_records_too() -> None:
    h = Harness()
    h.http.script = [404]
    h.produce(notification_event("N1"))
    h.broker.append(NOTES, 0, b"k", b"{oops")
    await h.step()
    await h.step()
    reasons = [headers_get(m.headers(), "escalator-dlq-reason") for m in h.broker.records(DLQ)]
    assert sorted(reasons) == [b"http_4xx", b"invalid_record"]  # type: ignore[type-var]
    assert len(h.http.posts) == 1 and h.committed() == 2


async def test_an_output_type_the_relay_does_not_deliver_is_skipped_not_dead_lettered() -> None:
    """v1 grows by adding output types: a well-formed event of a type this relay does not know is counted and
    committed, never a dead letter; a record without a type still is one."""
    h = Harness()
    h.broker.append(NOTES, 0, b"T-1", orjson.dumps({"specversion": "1.0", "type": "escalation.renamed", "id": "x"}))
    h.broker.append(NOTES, 0, b"T-1", orjson.dumps({"specversion": "1.0", "id": "y"}))
    await h.step()
    await h.step()
    reasons = [headers_get(m.headers(), "escalator-dlq-reason") for m in h.broker.records(DLQ)]
    assert reasons == [b"invalid_record"] and h.committed() == 2
    assert h.metric("escalator_notify_suppressed_total", reason="other_type") == 1


def test_backoff_is_exponential_with_full_jitter_and_bounded() -> None:
    b = Backoff(1000, 8000, random.Random(3))
    for retry, ceiling in [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (9, 8000), (80, 8000)]:
        delays = [b.delay_ms(retry) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= ceiling and max(delays) > ceiling * 0.8


def test_circuit_breaker_opens_after_n_failures_and_half_opens_after_the_cool_down() -> None:
    cb = CircuitBreaker(threshold=3, cooldown_ms=30_000)
    for _ in range(2):
        assert cb.allow("d", 0)
        cb.record("d", False, 0)
    assert cb.state("d", 0) == "closed"
    cb.record("d", False, 1_000)
    assert cb.state("d", 1_000) == "open" and not cb.allow("d", 20_000)
    assert cb.state("d", 31_000) == "half_open"
    assert cb.allow("d", 31_000) and not cb.allow("d", 31_000)  # one probe only
    cb.record("d", False, 31_500)  # the probe failed: open again for a full cool-down
    assert not cb.allow("d", 60_000) and cb.allow("d", 61_500)
    cb.record("d", True, 61_600)
    assert cb.state("d", 61_600) == "closed" and cb.allow("e", 0)


async def test_an_open_breaker_refuses_sends_without_touching_the_destination() -> None:
    h = Harness(notify_breaker_failures=2, notify_breaker_cooldown_seconds=30, notify_max_attempts=10)
    h.http.script = [500, 500]
    h.produce(notification_event("N1"))
    await h.step()
    await h.step(advance_ms=8_000)
    assert len(h.http.posts) == 2
    await h.step(advance_ms=8_000)  # open: the attempt fails at once, nothing is posted
    assert len(h.http.posts) == 2
    assert h.metric("escalator_notify_failed_total", channel="slack", reason="circuit_open") == 1
    await h.step(advance_ms=30_000)  # half-open: the probe goes through and succeeds
    assert len(h.http.posts) == 3 and h.committed() == 1


async def test_no_double_send_after_a_restart_mid_batch(tmp_path: Path) -> None:
    first = Harness(RocksDeliveryLog(tmp_path / "log"))
    first.http.script = [500]  # the first record's send fails; the second one's succeeds
    first.produce(notification_event("N1"))
    first.produce(notification_event("N2"))
    await first.step()
    assert first.urls() == ["https://hooks.example/lead"] * 2
    assert first.committed() is None  # N1 is unsettled: nothing of the batch is committed
    first.log.close()  # the process dies here
    second = Harness(RocksDeliveryLog(tmp_path / "log"), broker=first.broker)
    await second.step()  # reads N1 and N2 again: N2 was delivered before, only N1 goes out
    assert [p.json()["text"] for p in second.http.posts] == ["sla_breach on T-1 &lt;N1&gt;"]
    assert second.metric("escalator_notify_suppressed_total", reason="duplicate") == 1
    assert second.committed() == 2
    second.log.close()


async def test_several_notifications_for_one_recipient_within_the_window_become_one_digest() -> None:
    h = Harness(notify_digest_window_seconds=60)
    h.produce(notification_event("N1"))
    await h.step()
    h.produce(notification_event("N2"))
    await h.step(advance_ms=10_000)
    h.produce(notification_event("N3", severity="warning"))
    await h.step(advance_ms=10_000)
    assert len(h.http.posts) == 1 and h.committed() == 1  # N2 and N3 wait for the window (and hold the commit)
    await h.step(advance_ms=40_000)
    assert len(h.http.posts) == 2
    assert h.http.posts[1].json()["text"] == "2 notifications for role:team_lead"
    assert h.metric("escalator_notify_digests_total") == 1
    assert h.metric("escalator_notify_delivered_total", channel="slack") == 3
    assert h.committed() == 3


async def test_quiet_hours_defer_non_critical_notifications_and_let_critical_ones_through() -> None:
    h = Harness()
    h.clock.set(NOW + 13 * 3_600_000)  # 23:00 UTC: the night role is in its quiet hours until 07:00
    h.produce(notification_event("N1", severity="warning", recipients=[("role", "night")]))
    h.produce(notification_event("N2", severity="critical", recipients=[("role", "night")]))
    await h.step()
    assert [p.json()["text"] for p in h.http.posts] == ["sla_breach on T-1 &lt;N2&gt;"]
    assert h.committed() is None  # N1 (offset 0) waits, so nothing is committed yet
    await h.step(advance_ms=8 * 3_600_000 - 1)
    assert len(h.http.posts) == 1
    await h.step(advance_ms=1)  # 07:00
    assert [p.json()["text"] for p in h.http.posts][1] == "sla_breach on T-1 &lt;N1&gt;"
    assert h.committed() == 2


async def test_stale_warnings_are_suppressed_and_committed() -> None:
    h = Harness(notify_warning_max_age_seconds=900)
    h.produce(notification_event("N1", kind="sla_warning", severity="warning", fired_at="2026-03-02T09:44:59Z"))
    h.produce(notification_event("N2", kind="sla_breach", fired_at="2026-03-02T08:00:00Z"))
    h.produce(notification_event("N3", kind="sla_warning", severity="warning", fired_at="2026-03-02T09:50:00Z"))
    await h.step()
    assert [p.json()["text"] for p in h.http.posts] == ["sla_breach on T-1 &lt;N2&gt;", "sla_warning on T-1 &lt;N3&gt;"]
    assert h.metric("escalator_notify_suppressed_total", reason="stale") == 1
    assert h.committed() == 3


async def test_escalations_page_pagerduty_and_email_goes_to_smtp() -> None:
    h = Harness()
    h.produce(escalation_event("T-1:esc:L2", level=2), topic=ESCS)
    h.produce(notification_event("N1", recipients=[("user", "bob")]))
    await h.step()
    assert h.urls() == ["https://pd.example/enqueue"]
    assert h.http.posts[0].json()["dedup_key"] == "T-1:esc:L2"
    assert [m["To"] for m in h.smtp.sent] == ["bob@example.com"]
    assert h.committed(ESCS) == 1 and h.committed(NOTES) == 1


async def test_a_revocation_commits_what_is_settled_and_forgets_the_rest() -> None:
    h = Harness(notify_digest_window_seconds=60)
    h.produce(notification_event("N1"))
    h.produce(notification_event("N2", recipients=[("requester", "R1")]))
    await h.step()
    h.produce(notification_event("N3"))
    await h.step(advance_ms=1_000)
    assert h.relay.pending() == 1
    h.broker.rebalance("t-notify", {})
    await h.step()
    assert h.committed() == 2 and h.relay.pending() == 0 and len(h.relay.outbox) == 0


def test_the_relay_refuses_a_routing_file_whose_channels_are_not_configured() -> None:
    import pytest

    h = Harness()
    with pytest.raises(ValueError, match="not configured: email"):
        Relay(
            h.settings,
            h.relay.routing,
            h.consumer,
            h.producer,
            {
                "slack": SlackChannel(h.http, 1.0),
                "webhook": WebhookChannel(h.http, 1.0, None),
                "pagerduty": PagerDutyChannel(h.http, 1.0, "u"),
            },
            MemoryDeliveryLog(),
            h.clock,
            NotifyMetrics(CollectorRegistry()),
        )


# -- PagerDuty resolves ------------------------------------------------------------------------------------------

PD = "https://pd.example/enqueue"
TWO_SERVICES = DIRECTORY.replace(
    "services: {support: {routing_key: RK}}", "services: {support: {routing_key: RK}, ops: {routing_key: RK-OPS}}"
).replace("roles:\n", "roles:\n  duty: {pagerduty: ops}\n")


def resolve_body(routing_key: str, dedup_key: str = "T-1:esc:L2") -> dict[str, str]:
    return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup_key}


async def test_a_resolve_goes_to_every_service_the_trigger_went_to_and_only_there() -> None:
    h = Harness(directory=TWO_SERVICES)
    h.produce(escalation_event("T-1:esc:L2", targets=[("role", "support_manager"), ("role", "duty")]), topic=ESCS)
    await h.step()
    assert sorted(p.json()["routing_key"] for p in h.http.posts) == ["RK", "RK-OPS"]
    h.produce(resolution_event("T-1:esc:L2"), topic=ESCS)
    h.produce(resolution_event("T-1:esc:L1", level=1), topic=ESCS)  # level 1 was never paged
    await h.step(advance_ms=1_000)
    resolves = h.http.posts[2:]
    assert [p.url for p in resolves] == [PD, PD]
    assert sorted((p.json() for p in resolves), key=str) == [resolve_body("RK"), resolve_body("RK-OPS")]
    assert h.metric("escalator_notify_resolves_delivered_total") == 2
    assert h.metric("escalator_notify_suppressed_total", reason="not_triggered") == 1
    assert h.metric("escalator_notify_resolves_held_total") == 0
    assert h.committed(ESCS) == 3


async def test_a_resolve_waits_for_its_trigger_being_retried_and_goes_after_it() -> None:
    h = Harness()
    h.http.script = [503]  # the trigger's first attempt fails
    h.produce(escalation_event("T-1:esc:L2"), topic=ESCS)
    h.produce(resolution_event("T-1:esc:L2"), topic=ESCS)
    await h.step()
    assert [p.json()["event_action"] for p in h.http.posts] == ["trigger"]
    assert h.metric("escalator_notify_resolves_held_total") == 1 and h.committed(ESCS) is None
    await h.step(advance_ms=8_000)  # the retry succeeds; the resolve is released behind it
    await h.step()
    assert [p.json()["event_action"] for p in h.http.posts] == ["trigger", "trigger", "resolve"]
    assert h.http.posts[2].json() == resolve_body("RK")
    assert h.committed(ESCS) == 2 and h.relay.pending() == 0


async def test_a_resolve_whose_trigger_was_dead_lettered_is_skipped() -> None:
    h = Harness()
    h.http.script = [400]  # PagerDuty refuses the trigger: dead-lettered at once
    h.produce(escalation_event("T-1:esc:L2"), topic=ESCS)
    h.produce(resolution_event("T-1:esc:L2"), topic=ESCS)
    await h.step()
    await h.step()
    assert [p.json()["event_action"] for p in h.http.posts] == ["trigger"]
    assert h.metric("escalator_notify_resolves_held_total") == 1
    assert h.metric("escalator_notify_suppressed_total", reason="not_triggered") == 1
    [letter] = h.broker.records(DLQ)
    assert orjson.loads(letter.value())["type"] == "escalation.raised"
    assert h.committed(ESCS) == 2


async def test_a_resolve_after_a_restart_uses_the_triggers_routing_key_and_is_not_sent_twice(tmp_path: Path) -> None:
    first = Harness(RocksDeliveryLog(tmp_path / "log"))
    first.produce(escalation_event("T-1:esc:L2"), topic=ESCS)
    await first.step()
    assert first.committed(ESCS) == 1
    first.log.close()
    # the relay restarts with a directory whose service has a new routing key: the alert lives under the old one
    second = Harness(
        RocksDeliveryLog(tmp_path / "log"), broker=first.broker, directory=DIRECTORY.replace("RK}", "RK-NEW}")
    )
    second.produce(resolution_event("T-1:esc:L2"), topic=ESCS)
    second.produce(resolution_event("T-1:esc:L2"), topic=ESCS)  # the worker replaying its output (same id)
    await second.step()
    await second.step()
    assert [p.json() for p in second.http.posts] == [resolve_body("RK")]
    assert second.metric("escalator_notify_suppressed_total", reason="duplicate") == 1
    assert second.committed(ESCS) == 3
    second.log.close()


async def test_a_failing_resolve_is_retried_then_dead_lettered_like_any_message() -> None:
    h = Harness()
    h.produce(escalation_event("T-1:esc:L2"), topic=ESCS)
    await h.step()
    h.http.script = [503, SendError("timeout", "slow"), 503]
    h.produce(resolution_event("T-1:esc:L2"), topic=ESCS)
    await h.step()
    await h.step(advance_ms=8_000)
    await h.step(advance_ms=8_000)
    await h.step()
    assert [p.json()["event_action"] for p in h.http.posts] == ["trigger", "resolve", "resolve", "resolve"]
    [letter] = h.broker.records(DLQ)
    assert orjson.loads(letter.value())["type"] == "escalation.resolved"
    assert headers_get(letter.headers(), "escalator-dlq-channel") == b"pagerduty"
    assert headers_get(letter.headers(), "escalator-dlq-recipient") == b"role:support_manager"
    assert h.metric("escalator_notify_dead_lettered_total", channel="pagerduty") == 1
    assert h.metric("escalator_notify_resolves_delivered_total") == 0
    assert h.committed(ESCS) == 2


def test_trigger_routes_are_kept_by_alert_for_their_own_retention(tmp_path: Path) -> None:
    for log in (MemoryDeliveryLog(), RocksDeliveryLog(tmp_path / "routes")):
        log.mark("N1", "slack:x", 100)
        log.mark_trigger("E", "RK", "role:a", 100)
        log.mark_trigger("E", "RK-OPS", "role:b", 100)
        log.mark_trigger("E1", "RK", "role:c", 100)  # another alert whose key starts with E
        assert sorted(log.triggers("E")) == [("RK", "role:a"), ("RK-OPS", "role:b")]
        assert log.triggers("E1") == [("RK", "role:c")] and log.triggers("X") == []
        assert log.purge(before_ms=200, triggers_before_ms=50) == 1  # the delivery only
        assert not log.seen("N1", "slack:x") and len(log.triggers("E")) == 2
        assert log.purge(before_ms=200, triggers_before_ms=200) == 3
        assert log.triggers("E") == [] and log.triggers("E1") == []
        log.close()


async def test_an_incident_over_resolves_its_alert_and_an_update_goes_nowhere() -> None:
    h = Harness()
    h.produce(incident_event("incident:outage:mail:1"), topic=ESCS)
    h.produce(incident_event("incident:outage:mail:1", "incident.updated", "2026-03-02T10:05:00Z"), topic=ESCS)
    await h.step()
    h.produce(incident_event("incident:outage:mail:1", "incident.resolved", "2026-03-02T10:10:00Z"), topic=ESCS)
    await h.step()
    assert [p.json()["event_action"] for p in h.http.posts] == ["trigger", "resolve"]
    assert h.http.posts[0].json()["dedup_key"] == "incident:outage:mail:1"
    assert h.http.posts[1].json() == resolve_body("RK", "incident:outage:mail:1")
    assert h.metric("escalator_notify_suppressed_total", reason="unrouted") == 1  # the update names nobody
    assert h.metric("escalator_notify_resolves_delivered_total") == 1
    assert h.broker.records(DLQ) == [] and h.committed(ESCS) == 3
