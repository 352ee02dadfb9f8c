"""``escalator gateway`` as its own process against a real broker: vendor webhooks land on the input topic as the
exact records the worker accepts (keyed and partitioned as the worker expects), an upstream retry produces an
identical record, a webhook flows through a real worker out as an escalation, and a broker that is down is 503."""

from __future__ import annotations

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from escalator.core.events import decode_record
from escalator.core.timefmt import format_ms
from escalator.gateway.signatures import hub_signature, zendesk_signature
from escalator.stream.partitioner import partition_for
from tests.integration.conftest import KafkaTarget, Processes
from tests.integration.workers import Collector, Deployment, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.broker

WEBHOOKS = Path(__file__).resolve().parents[1] / "data" / "webhooks"
EXPECTED: dict[str, list[dict[str, Any]]] = orjson.loads((WEBHOOKS / "expected.json").read_bytes())
SECRET = b"integration-secret"


class Gateway:
    def __init__(self, processes: Processes, env: dict[str, str]) -> None:
        self.port = free_port()
        full = {
            **os.environ,
            **env,
            "ESCALATOR_GATEWAY_HOST": "127.0.0.1",
            "ESCALATOR_GATEWAY_PORT": str(self.port),
            "ESCALATOR_GATEWAY_ZENDESK_SECRET": SECRET.decode(),
            "ESCALATOR_GATEWAY_JIRA_SECRET": SECRET.decode(),
        }
        full.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        self.proc, self.log = processes.start([sys.executable, "-m", "escalator", "gateway"], env=full, name="gateway")

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status, orjson.loads(resp.read()), dict(resp.headers)
        except urllib.error.HTTPError as err:
            return err.code, orjson.loads(err.read()), dict(err.headers)

    def status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return err.code
        except OSError:
            assert self.proc.poll() is None, self.log.read_text()
            return 0

    def zendesk(self, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        ts = format_ms(time.time_ns() // 1_000_000)
        headers = {
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature": zendesk_signature(SECRET, ts, body),
            "X-Zendesk-Webhook-Signature-Timestamp": ts,
        }
        return self.post("/webhooks/zendesk", body, headers)

    def jira(self, body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        headers = {"Content-Type": "application/json", "X-Hub-Signature": hub_signature(SECRET, body)}
        return self.post("/webhooks/jira", body, headers)


@pytest.fixture
def deployment(kafka: KafkaTarget, tmp_path: Path) -> Deployment:
    dep = Deployment(kafka.bootstrap, kafka.flavour, tmp_path)
    dep.create_topics()
    return dep


def sample(name: str) -> bytes:
    return (WEBHOOKS / name).read_bytes()


def test_webhooks_land_as_the_records_the_worker_accepts_and_a_retry_is_identical(
    deployment: Deployment, processes: Processes
) -> None:
    gateway = Gateway(processes, deployment.env())
    wait_until(lambda: gateway.status("/readyz") == 200, 30, "the gateway's /readyz")
    topic = deployment.topics["input"]
    with Collector(deployment.bootstrap, [topic]) as collector:
        assert gateway.zendesk(sample("zendesk-ticket-created.json"))[:2] == (
            202,
            {"accepted": 1, "ids": ["cbe4028c-7239-495d-b020-f22348516046"]},
        )
        assert gateway.jira(sample("jira-issue-created.json"))[0] == 202
        assert gateway.jira(sample("jira-issue-updated.json"))[0] == 202
        records = collector.wait_for(lambda rs: rs if len(rs) >= 4 else None, 30, "4 records on the input topic")
        expected = (
            EXPECTED["zendesk-ticket-created.json"]
            + EXPECTED["jira-issue-created.json"]
            + EXPECTED["jira-issue-updated.json"]
        )
        by_value = {r.value: r for r in records}
        assert sorted(by_value) == sorted(orjson.dumps(doc) for doc in expected)
        for record in records:
            event = decode_record(record.value, record.key, record.headers)
            assert record.key == event.ticket_id.encode()
            assert record.partition == partition_for(record.key, deployment.partitions)
            assert record.headers["content-type"] == b"application/cloudevents+json"
        # Zendesk retries the delivery: the same record again, which the worker de-duplicates by source and id
        assert gateway.zendesk(sample("zendesk-ticket-created.json"))[0] == 202
        records = collector.wait_for(lambda rs: rs if len(rs) >= 5 else None, 30, "the retried record")
        zendesk = [r for r in records if r.key == b"5158"]
        assert len(zendesk) == 2 and zendesk[0].value == zendesk[1].value
        assert (zendesk[0].partition, zendesk[0].headers) == (zendesk[1].partition, zendesk[1].headers)
    assert gateway.proc.poll() is None
    from tests.integration.conftest import stop_pid

    assert stop_pid(gateway.proc) == 0, gateway.log.read_text()  # SIGTERM: stops cleanly


def test_a_zendesk_webhook_flows_through_a_worker_out_as_an_escalation(
    deployment: Deployment, processes: Processes
) -> None:
    worker = deployment.worker().start()
    try:
        gateway = Gateway(processes, deployment.env())
        worker.wait_ready()
        wait_until(lambda: gateway.status("/readyz") == 200, 30, "the gateway's /readyz")
        doc = orjson.loads(sample("zendesk-ticket-created.json"))
        doc["time"] = format_ms(time.time_ns() // 1_000_000)  # now: the fast policy's first response is due in 4 s
        doc["id"] = f"e2e-{deployment.name}"
        doc["detail"]["id"] = ticket = f"zd-{deployment.name}"
        with Collector(deployment.bootstrap, [deployment.topics["escalations"]]) as collector:
            assert gateway.zendesk(orjson.dumps(doc))[0] == 202
            escalations = collector.wait_for(
                lambda rs: [r for r in rs if r.key == ticket.encode()], 30, "an escalation of the webhook's ticket"
            )
        raised = orjson.loads(escalations[0].value)
        assert raised["type"] == "escalation.raised" and raised["subject"] == ticket
    finally:
        assert worker.stop() == 0, worker.log_tail()


def test_a_broker_that_does_not_answer_is_503_with_retry_after(kafka: KafkaTarget, processes: Processes) -> None:
    env = {
        "ESCALATOR_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",  # nothing listens there
        "ESCALATOR_BROKER_FLAVOUR": kafka.flavour,
        "ESCALATOR_GATEWAY_PRODUCE_TIMEOUT_SECONDS": "1.5",
        "ESCALATOR_GATEWAY_RETRY_AFTER_SECONDS": "3",
    }
    gateway = Gateway(processes, env)
    wait_until(lambda: gateway.status("/healthz") == 200, 30, "the gateway's /healthz")
    assert gateway.status("/readyz") == 503
    status, body, headers = gateway.zendesk(sample("zendesk-ticket-created.json"))
    assert (status, headers["Retry-After"]) == (503, "3"), body
    assert body["error"] == "the broker did not take the events"
