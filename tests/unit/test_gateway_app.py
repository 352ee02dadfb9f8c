"""The gateway's HTTP application, driven through mocked requests with a fake delivery, a manual clock and its own
registry (no network, no wall clock): what is produced, and what is answered when something is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from escalator.core.events import decode_record
from escalator.core.timefmt import format_ms
from escalator.gateway.app import create_gateway
from escalator.gateway.delivery import DeliveryFailed, Record
from escalator.gateway.mapfile import MappingError
from escalator.gateway.signatures import escalator_signature, hub_signature, zendesk_signature
from escalator.service.timesource import ManualTime
from escalator.settings import Settings
from tests.support import ms

WEBHOOKS = Path(__file__).resolve().parents[1] / "data" / "webhooks"
EXPECTED: dict[str, list[dict[str, Any]]] = orjson.loads((WEBHOOKS / "expected.json").read_bytes())
NOW = ms("2026-11-20T10:00:30Z")
SECRET = "s3cr3t"


class FakeDelivery:
    def __init__(self) -> None:
        self.produced: list[tuple[str, Record]] = []
        self.failure: str | None = None
        self.is_ready = True

    async def deliver(self, topic: str, records: Sequence[Record], timeout_s: float) -> None:
        if self.failure is not None:
            raise DeliveryFailed(self.failure)
        self.produced += [(topic, r) for r in records]

    async def ready(self) -> bool:
        return self.is_ready

    def close(self) -> None:
        pass


class Harness:
    def __init__(self, **overrides: Any) -> None:
        values: dict[str, Any] = {
            "bootstrap_servers": "127.0.0.1:1",
            "topic_input": "in",
            "gateway_zendesk_secret": SECRET,
            "gateway_jira_secret": SECRET,
            "gateway_servicenow_token": SECRET,
            "gateway_events_secret": SECRET,
            **overrides,
        }
        self.settings = Settings(**values)
        self.clock = ManualTime(NOW)
        self.delivery = FakeDelivery()
        self.registry = CollectorRegistry()
        self.app = create_gateway(self.settings, self.delivery, self.registry, self.clock, monotonic=lambda: 0.0)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        stream = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
        stream.feed_data(body)
        stream.feed_eof()
        all_headers = {"Content-Length": str(len(body)), **(headers or {})}
        request = make_mocked_request(method, path, headers=all_headers, payload=stream, app=self.app)
        match = await self.app.router.resolve(request)
        request._match_info = match  # type: ignore[attr-defined]
        response = await match.handler(request)
        assert isinstance(response, web.Response) and isinstance(response.body, bytes)
        data = orjson.loads(response.body) if response.content_type == "application/json" else response.body.decode()
        return response.status, data, dict(response.headers)

    async def zendesk(self, body: bytes, timestamp_ms: int | None = None) -> tuple[int, Any, dict[str, str]]:
        ts = format_ms(NOW if timestamp_ms is None else timestamp_ms)
        headers = {
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature": zendesk_signature(SECRET.encode(), ts, body),
            "X-Zendesk-Webhook-Signature-Timestamp": ts,
        }
        return await self.request("POST", "/webhooks/zendesk", body, headers)

    async def events(self, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Any:
        ts = str(NOW // 1000)
        headers = {
            "Content-Type": content_type,
            "X-Escalator-Timestamp": ts,
            "X-Escalator-Signature": escalator_signature(SECRET.encode(), ts, body),
            **(extra or {}),
        }
        return await self.request("POST", "/v1/events", body, headers)

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def sample(name: str) -> bytes:
    return (WEBHOOKS / name).read_bytes()


def event(**changes: Any) -> dict[str, Any]:
    doc = {
        "specversion": "1.0",
        "id": "e-1",
        "source": "urn:helpdesk:acme",
        "type": "ticket.created",
        "time": "2026-11-20T10:00:00Z",
        "subject": "T-1",
        "data": {"priority": "high", "requester": {"id": "u-1"}},
    }
    doc.update(changes)
    return doc


async def test_a_zendesk_webhook_is_produced_as_the_exact_bytes_the_worker_accepts() -> None:
    h = Harness()
    status, body, _ = await h.zendesk(sample("zendesk-ticket-created.json"))
    assert status == 202
    assert body == {"accepted": 1, "ids": ["cbe4028c-7239-495d-b020-f22348516046"]}
    [(topic, record)] = h.delivery.produced
    assert topic == "in" and record.key == b"5158"
    assert record.value == orjson.dumps(EXPECTED["zendesk-ticket-created.json"][0])
    assert ("content-type", b"application/cloudevents+json") in record.headers
    assert decode_record(record.value, record.key, dict(record.headers)).ticket_id == "5158"
    assert h.metric("escalator_gateway_requests_total", source="zendesk", outcome="accepted") == 1
    assert h.metric("escalator_gateway_produce_seconds_count") == 1


async def test_an_upstream_retry_produces_an_identical_record() -> None:
    h = Harness()
    for _ in range(2):
        assert (await h.zendesk(sample("zendesk-status-changed.json")))[0] == 202
    first, second = (r for _, r in h.delivery.produced)
    assert first == second


async def test_jira_and_servicenow_webhooks() -> None:
    h = Harness()
    body = sample("jira-issue-updated.json")
    status, answer, _ = await h.request(
        "POST", "/webhooks/jira", body, {"X-Hub-Signature": hub_signature(SECRET.encode(), body)}
    )
    assert status == 202 and answer["accepted"] == 2
    status, answer, _ = await h.request(
        "POST", "/webhooks/servicenow", sample("servicenow-update.json"), {"Authorization": f"Bearer {SECRET}"}
    )
    assert status == 202 and answer["accepted"] == 3
    values = [r.value for _, r in h.delivery.produced]
    expected = EXPECTED["jira-issue-updated.json"] + EXPECTED["servicenow-update.json"]
    assert values == [orjson.dumps(doc) for doc in expected]
    assert {r.key for _, r in h.delivery.produced} == {b"SUP-42", b"INC0010042"}


async def test_a_vendor_event_with_nothing_to_map_is_answered_202_and_produces_nothing() -> None:
    h = Harness()
    status, body, _ = await h.zendesk(sample("zendesk-brand-changed.json"))
    assert status == 202 and body["accepted"] == 0
    assert h.delivery.produced == []
    assert h.metric("escalator_gateway_requests_total", source="zendesk", outcome="ignored") == 1


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing X-Zendesk-Webhook-Signature header"),
        (
            {"X-Zendesk-Webhook-Signature": "AAAA", "X-Zendesk-Webhook-Signature-Timestamp": "2026-11-20T10:00:00Z"},
            "bad signature (X-Zendesk-Webhook-Signature)",
        ),
    ],
)
async def test_a_bad_or_missing_signature_is_401_with_the_reason(headers: dict[str, str], reason: str) -> None:
    h = Harness()
    status, body, _ = await h.request("POST", "/webhooks/zendesk", sample("zendesk-ticket-created.json"), headers)
    assert (status, body) == (401, {"error": "unauthorized", "reason": reason})
    assert h.delivery.produced == []
    assert h.metric("escalator_gateway_requests_total", source="zendesk", outcome="unauthorized") == 1


async def test_a_stale_signature_is_401() -> None:
    h = Harness()
    status, body, _ = await h.zendesk(sample("zendesk-ticket-created.json"), timestamp_ms=NOW - 301_000)
    assert status == 401 and body["reason"].startswith("stale timestamp")


async def test_a_source_without_a_secret_is_not_configured_unless_unsigned_is_allowed() -> None:
    body = sample("zendesk-ticket-created.json")
    status, answer, _ = await Harness(gateway_zendesk_secret=None).request("POST", "/webhooks/zendesk", body)
    assert status == 401 and answer["reason"].startswith("not configured")
    status, _, _ = await Harness(gateway_zendesk_secret=None, gateway_allow_unsigned=True).request(
        "POST", "/webhooks/zendesk", body
    )
    assert status == 202


async def test_an_oversize_body_is_413() -> None:
    h = Harness(gateway_max_body_bytes=1_000)
    status, body, _ = await h.zendesk(sample("zendesk-ticket-created.json"))
    assert status == 413 and "larger than 1000 bytes" in body["error"]
    assert h.delivery.produced == []
    assert h.metric("escalator_gateway_requests_total", source="zendesk", outcome="too_large") == 1


async def test_too_many_events_in_one_request_is_413() -> None:
    h = Harness(gateway_max_events_per_request=2)
    batch = [event(id=f"e-{i}") for i in range(3)]
    status, body, _ = await h.events(orjson.dumps(batch), "application/cloudevents-batch+json")
    assert status == 413 and body["error"] == "3 events in one request, the limit is 2"
    assert h.delivery.produced == []


async def test_a_source_over_its_rate_is_429_with_retry_after_and_recovers_with_time() -> None:
    h = Harness(gateway_rate_per_second=0.5, gateway_rate_burst=2)
    body = sample("zendesk-status-changed.json")
    assert [(await h.zendesk(body))[0] for _ in range(2)] == [202, 202]
    status, answer, headers = await h.zendesk(body)
    assert status == 429 and headers["Retry-After"] == "2"
    assert "zendesk" in answer["error"]
    # another source has its own bucket
    jira = sample("jira-comment-created.json")
    jira_headers = {"X-Hub-Signature": hub_signature(SECRET.encode(), jira)}
    assert (await h.request("POST", "/webhooks/jira", jira, jira_headers))[0] == 202
    h.clock.advance(2_000)
    status, _, _ = await h.zendesk(body, timestamp_ms=NOW + 2_000)
    assert status == 202
    assert h.metric("escalator_gateway_requests_total", source="zendesk", outcome="rate_limited") == 1


async def test_an_unmappable_payload_is_422_naming_the_field_and_nothing_is_produced() -> None:
    h = Harness()
    doc = orjson.loads(sample("zendesk-ticket-created.json"))
    doc["detail"]["priority"] = "CRITICAL"
    status, body, _ = await h.zendesk(orjson.dumps(doc))
    assert status == 422
    assert body["field"] == "detail.priority" and body["reason"] == "unknown_value"
    assert "'CRITICAL'" in body["detail"]
    assert h.delivery.produced == []
    assert h.metric("escalator_gateway_mapping_failures_total", source="zendesk", reason="unknown_value") == 1
    status, body, _ = await h.zendesk(b"{not json")
    assert (status, body["field"], body["reason"]) == (422, "(body)", "invalid_json")


async def test_one_bad_event_in_a_batch_refuses_the_whole_batch() -> None:
    h = Harness()
    batch = [event(id="e-1"), event(id="e-2", data={"priority": "blocker", "requester": {"id": "u"}})]
    status, body, _ = await h.events(orjson.dumps(batch), "application/cloudevents-batch+json")
    assert status == 422
    assert body["field"] == "[1].data.priority" and body["reason"] == "schema_violation"
    assert h.delivery.produced == []


async def test_a_broker_failure_is_503_with_retry_after() -> None:
    h = Harness(gateway_retry_after_seconds=7)
    h.delivery.failure = "the broker did not acknowledge within 10 s"
    status, body, headers = await h.zendesk(sample("zendesk-ticket-created.json"))
    assert status == 503 and headers["Retry-After"] == "7"
    assert body["detail"] == "the broker did not acknowledge within 10 s"
    assert h.metric("escalator_gateway_requests_total", source="zendesk", outcome="unavailable") == 1
    assert h.metric("escalator_gateway_produce_seconds_count") == 0


async def test_cloudevents_structured_binary_and_batched_modes_produce_the_same_record() -> None:
    doc = event()
    structured = Harness()
    assert (await structured.events(orjson.dumps(doc), "application/cloudevents+json"))[0] == 202
    batched = Harness()
    assert (await batched.events(orjson.dumps([doc]), "application/cloudevents-batch+json"))[0] == 202
    binary = Harness()
    ce = {f"ce-{k}": v for k, v in doc.items() if k != "data"}
    status, _, _ = await binary.events(orjson.dumps(doc["data"]), "application/json", ce)
    assert status == 202
    [(_, s)] = structured.delivery.produced
    [(_, b)] = batched.delivery.produced
    [(_, n)] = binary.delivery.produced
    assert s == b
    assert orjson.loads(n.value) == {**doc, "datacontenttype": "application/json"}
    assert s.key == n.key == b"T-1"


@pytest.mark.parametrize(
    ("doc", "field", "reason"),
    [
        (event(type="ticket.exploded"), "type", "unknown_type"),
        (event(specversion="0.3"), "specversion", "unsupported_specversion"),
        (event(time="yesterday"), "time", "schema_violation"),
        ({k: v for k, v in event().items() if k != "subject"}, "subject", "schema_violation"),
    ],
)
async def test_v1_events_are_validated_like_the_worker_does(doc: dict[str, Any], field: str, reason: str) -> None:
    h = Harness()
    status, body, _ = await h.events(orjson.dumps(doc), "application/cloudevents+json")
    assert (status, body["field"], body["reason"]) == (422, field, reason)


async def test_an_unsupported_content_type_is_415() -> None:
    status, body, _ = await Harness().events(b"<xml/>", "application/xml")
    assert status == 415 and "unsupported Content-Type 'application/xml'" in body["error"]


async def test_events_take_a_bearer_token_too() -> None:
    h = Harness(gateway_events_secret=None, gateway_events_token=SECRET)
    body = orjson.dumps(event())
    headers = {"Content-Type": "application/cloudevents+json", "Authorization": f"Bearer {SECRET}"}
    assert (await h.request("POST", "/v1/events", body, headers))[0] == 202
    headers["Authorization"] = "Bearer nope"
    assert (await h.request("POST", "/v1/events", body, headers))[:2] == (
        401,
        {"error": "unauthorized", "reason": "bad bearer token"},
    )


async def test_health_readiness_and_metrics() -> None:
    h = Harness()
    assert (await h.request("GET", "/healthz"))[:2] == (200, {"status": "ok"})
    assert (await h.request("GET", "/readyz"))[:2] == (200, {"ready": True})
    h.delivery.is_ready = False
    assert (await h.request("GET", "/readyz"))[:2] == (503, {"ready": False})
    await h.zendesk(sample("zendesk-ticket-created.json"))
    status, text, _ = await h.request("GET", "/metrics")
    assert status == 200
    assert 'escalator_gateway_requests_total{outcome="accepted",source="zendesk"} 1.0' in text


def test_a_bad_mapping_file_fails_at_start_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "mappings.yaml"
    path.write_text("version: 1\nzendesk:\n  source: x\n  priorities: {urgent: blocker}\n  statuses: {new: new}\n")
    settings = Settings(bootstrap_servers="127.0.0.1:1", gateway_mapping_file=path)
    with pytest.raises(MappingError, match=r"mappings.yaml:4:\d+: zendesk.priorities.urgent"):
        create_gateway(settings, FakeDelivery(), CollectorRegistry(), ManualTime(NOW))
