"""The worker's app factory, HTTP views and metrics, driven through in-memory Kafka ports (no broker, no network,
no wall clock): ``create_service`` wires the same runtime the real worker runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from escalator.commands.worker import check_topics
from escalator.service.app import FORWARDED, Service, create_service, web_app
from escalator.service.timesource import ManualTime
from escalator.service.topics import topic_specs
from escalator.settings import Settings
from escalator.stream.inmemory import MemoryBroker, MemoryPorts
from escalator.stream.partitioner import partition_for
from tests.support import EXAMPLE_POLICY, envelope, example_policy, ms

PS = example_policy()
T0 = ms("2026-11-20T10:00:00Z")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        bootstrap_servers="127.0.0.1:1",
        store="memory",
        data_dir=tmp_path,
        app_id="unit",
        policy_file=EXAMPLE_POLICY,
        partitions=2,
        output_partitions=2,
        web_advertised_host="worker-a",
    )


def make(settings: Settings) -> tuple[Service, MemoryBroker, MemoryPorts]:
    clock = ManualTime(T0)
    broker = MemoryBroker(clock.now_ms)  # the broker's clock is the worker's
    for spec in topic_specs(settings):
        broker.create_topic(spec.name, spec.partitions)
    ports = MemoryPorts(broker, settings.app_id)
    service = create_service(settings, clock, CollectorRegistry(), policy=PS, ports=ports, monotonic=lambda: 0.0)
    service.runtime.consumer.subscribe([settings.topic_input, settings.topic_incident_signals], service.runtime)
    return service, broker, ports


def join(service: Service, broker: MemoryBroker, partitions: list[int]) -> None:
    s = service.settings
    consumer: Any = service.runtime.consumer
    broker.rebalance(
        s.app_id, {consumer: [(t, p) for p in partitions for t in (s.topic_input, s.topic_incident_signals)]}
    )
    service.runtime.step()


async def get(app: web.Application, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = make_mocked_request("GET", path, headers=headers or {}, app=app)
    match = await app.router.resolve(request)
    request._match_info = match  # type: ignore[attr-defined]
    response = await match.handler(request)
    assert isinstance(response, web.Response)
    body = response.body
    assert isinstance(body, bytes)
    if response.content_type == "application/json":
        return response.status, orjson.loads(body)
    return response.status, body.decode()


def send(broker: MemoryBroker, settings: Settings, doc: dict[str, Any]) -> None:
    key = doc["subject"].encode()
    broker.append(settings.topic_input, partition_for(key, settings.partitions), key, orjson.dumps(doc))


async def test_health_and_readiness_follow_the_group(settings: Settings) -> None:
    service, broker, _ports = make(settings)
    app = web_app(service)
    assert await get(app, "/healthz") == (200, {"status": "ok"})
    assert await get(app, "/readyz") == (503, {"ready": False, "partitions": []})
    join(service, broker, [0, 1])
    assert await get(app, "/readyz") == (200, {"ready": True, "partitions": [0, 1]})
    status, policy = await get(app, "/policy")
    assert status == 200 and policy["version"] == PS.version


async def test_a_ticket_is_served_by_its_owner_and_otherwise_says_why(settings: Settings) -> None:
    service, broker, _ports = make(settings)
    app = web_app(service)
    tid = "T1"
    mine = partition_for(tid.encode(), settings.partitions)
    join(service, broker, [mine])
    created = {"priority": "urgent", "requester": {"id": "r"}}
    send(broker, settings, envelope("ticket.created", "2026-11-20T10:00:00Z", tid, created))
    service.runtime.step()
    status, view = await get(app, f"/tickets/{tid}")
    assert status == 200 and view["ticket_id"] == tid and view["policy"]["version"] == PS.version
    # unknown, on a partition this worker owns: 404
    owned_other = next(f"X{i}" for i in range(100) if partition_for(f"X{i}".encode(), 2) == mine)
    assert (await get(app, f"/tickets/{owned_other}"))[0] == 404
    # on a partition nobody is known to own yet: 503, saying so
    elsewhere = next(f"Y{i}" for i in range(100) if partition_for(f"Y{i}".encode(), 2) != mine)
    status, body = await get(app, f"/tickets/{elsewhere}")
    assert status == 503 and "not known yet" in body["error"]
    # a request another worker forwarded is never forwarded again
    assert (await get(app, f"/tickets/{elsewhere}", {FORWARDED: "1"}))[0] == 404


def test_the_owners_directory_learns_who_claimed_each_partition(settings: Settings) -> None:
    service, broker, _ports = make(settings)
    join(service, broker, [0, 1])
    for m in service.owners._tail.poll(0):  # what the directory's thread does
        doc = orjson.loads(m.value() or b"{}")
        service.owners.urls[int(doc["partition"])] = doc["url"]
    assert service.owners.urls == {0: "http://worker-a:6066", 1: "http://worker-a:6066"}
    assert service.owner_of("T1") == (partition_for(b"T1", 2), "http://worker-a:6066")


async def test_metrics_report_per_batch_counts_and_incremental_gauges(settings: Settings) -> None:
    service, broker, _ports = make(settings)
    join(service, broker, [0, 1])
    for i in range(3):
        send(
            broker,
            settings,
            envelope(
                "ticket.created",
                "2026-11-20T10:00:00Z",
                f"T{i}",
                {"priority": "urgent", "requester": {"id": "r", "tier": "vip"}, "tags": ["legal"]},
            ),
        )
    send(broker, settings, envelope("ticket.commented", "2026-11-20T10:00:05Z", "T0", {"author": "agent"}))
    service.runtime.step()
    clock: ManualTime = service.clock  # type: ignore[assignment]
    clock.set(ms("2026-11-20T10:07:31Z"))  # the 50 % warnings of T1 and T2 are due
    service.runtime.step()
    status, text = await get(web_app(service), "/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name.startswith("escalator_")
    }
    assert samples[("escalator_events_consumed_total", (("type", "ticket.created"),))] == 3
    assert (
        samples[("escalator_escalations_total", (("kind", "functional"), ("level", "2"), ("reason", "trigger")))] == 3
    )
    warnings = (
        "escalator_sla_warnings_total",
        (("metric", "first_response"), ("policy", "vip-urgent"), ("priority", "urgent")),
    )
    assert samples[warnings] == 2
    assert samples[("escalator_timer_lateness_seconds_count", ())] == 2
    assert samples[("escalator_time_to_first_response_seconds_count", (("priority", "urgent"),))] == 1
    assert samples[("escalator_open_tickets", (("priority", "urgent"),))] == 3
    assert samples[("escalator_table_tickets", ())] == 3
    assert samples[("escalator_ready", ())] == 1
    assert all("ticket" not in dict(labels) for _name, labels in samples)


def test_the_worker_refuses_missing_topics_and_wrong_partition_counts(settings: Settings) -> None:
    broker = MemoryBroker()
    for spec in topic_specs(settings):
        if spec.name != settings.topic_dlq:
            broker.create_topic(spec.name, 3 if spec.name == settings.topic_input else spec.partitions)
    problems = check_topics(settings, MemoryPorts(broker))
    assert problems == [
        f"topic {settings.topic_input} has 3 partitions, ESCALATOR_PARTITIONS says 2",
        f"topic {settings.topic_dlq} does not exist",
    ]


async def test_at_risk_lists_the_soonest_thresholds_with_filters_and_says_what_is_wrong(settings: Settings) -> None:
    service, broker, _ports = make(settings)
    app = web_app(service)
    join(service, broker, [0, 1])
    for tid, prio, group in (("U1", "urgent", "billing"), ("U2", "urgent", "tech"), ("L1", "low", "tech")):
        created = {"priority": prio, "group": group, "requester": {"id": "r", "tier": "vip"}}
        send(broker, settings, envelope("ticket.created", "2026-11-20T10:00:00Z", tid, created))
    service.runtime.step()
    status, body = await get(app, "/at-risk?within=20m", {FORWARDED: "1"})
    assert status == 200 and body["unanswered"] == []
    rows = body["tickets"]
    # vip urgent tickets: first-response warning at 10:07:30 (50 % of 15 m), then 80 %, then the breach at 10:15
    assert [(r["ticket_id"], r["metric"], r["threshold"], r["due_at"]) for r in rows][:2] == [
        ("U1", "first_response", "warn:0.5", "2026-11-20T10:07:30Z"),
        ("U2", "first_response", "warn:0.5", "2026-11-20T10:07:30Z"),
    ]
    assert "L1" not in {r["ticket_id"] for r in rows}  # its first threshold is hours away
    status, body = await get(app, "/at-risk?within=20m&group=billing", {FORWARDED: "1"})
    assert {r["ticket_id"] for r in body["tickets"]} == {"U1"}
    status, body = await get(app, "/at-risk?within=soon", {FORWARDED: "1"})
    assert status == 400 and "bad query" in body["error"]
