"""The gateway's aiohttp application: ``create_gateway(settings, delivery, registry, clock)``.

Every request goes through the same steps, and stops at the first that refuses it: body size (413), authenticity
(401), the source's rate limit (429 with ``Retry-After``), mapping and validation of the *whole* request against
the v1 contract (422 naming the field; nothing is produced), then delivery: 202 only once the broker acknowledged
every record, 503 with ``Retry-After`` when it failed or did not answer within the timeout. Time comes from the
injected time source (signature timestamps, rate limits) and ``monotonic`` (produce latency).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..service.timesource import TimeSource
from ..service.webauth import protect
from ..settings import Settings
from .cloudevents import UnsupportedMedia, documents, to_record
from .delivery import Delivery, DeliveryFailed, Record
from .limits import RateLimiter
from .mapfile import Mappings, SourceMapping, default_mappings, load_mapping_file
from .mapping import Unmappable, map_jira, map_servicenow, map_zendesk
from .metrics import GatewayMetrics
from .signatures import SourceAuth, Unauthorized, source_auths, verify

__all__ = ["ROUTES", "Gateway", "Refused", "create_gateway"]

Convert = Callable[[bytes, Mapping[str, str]], list[dict[str, Any]]]
Mapper = Callable[[Any, Mapping[str, str], SourceMapping], list[dict[str, Any]]]
_VENDORS: Final[dict[str, Mapper]] = {"zendesk": map_zendesk, "jira": map_jira, "servicenow": map_servicenow}
#: (method, path) -> source label, for every route (the OpenAPI document lists exactly these).
ROUTES: Final[dict[tuple[str, str], str]] = {
    ("POST", "/v1/events"): "events",
    ("POST", "/webhooks/zendesk"): "zendesk",
    ("POST", "/webhooks/jira"): "jira",
    ("POST", "/webhooks/servicenow"): "servicenow",
    ("GET", "/healthz"): "",
    ("GET", "/readyz"): "",
    ("GET", "/metrics"): "",
}
_CHUNK = 65_536


def _json(data: Any, status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json", headers=headers)


class Refused(Exception):
    """A request answered with an error: status, metric outcome, JSON body, extra headers."""

    def __init__(self, status: int, outcome: str, body: dict[str, Any], headers: Mapping[str, str] | None = None):
        self.status = status
        self.outcome = outcome
        self.body = body
        self.headers = dict(headers or {})
        super().__init__(f"{status} {body}")


@dataclass
class Gateway:
    """The parts every request uses."""

    settings: Settings
    delivery: Delivery
    clock: TimeSource
    metrics: GatewayMetrics
    mappings: Mappings
    monotonic: Callable[[], float] = time.monotonic
    auths: dict[str, SourceAuth] = field(init=False)
    limiter: RateLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.auths = source_auths(self.settings)
        self.limiter = RateLimiter(self.settings.gateway_rate_per_second, self.settings.gateway_rate_burst)

    async def handle(self, request: web.Request, source: str, convert: Convert) -> web.Response:
        try:
            status, body = await self._accept(request, source, convert)
        except Refused as refused:
            self.metrics.request(source, refused.outcome)
            return _json(refused.body, refused.status, refused.headers)
        self.metrics.request(source, "accepted" if body["accepted"] else "ignored")
        return _json(body, status)

    async def _accept(self, request: web.Request, source: str, convert: Convert) -> tuple[int, dict[str, Any]]:
        body = await self._body(request)
        now_ms = self.clock.now_ms()
        try:
            verify(self.auths[source], request.headers, body, now_ms)
        except Unauthorized as exc:
            raise Refused(401, "unauthorized", {"error": "unauthorized", "reason": exc.reason}) from None
        wait = self.limiter.retry_after(source, now_ms)
        if wait:
            raise Refused(
                429, "rate_limited", {"error": f"rate limit of source {source} exceeded"}, {"Retry-After": str(wait)}
            )
        records = self._records(source, body, request.headers, convert)
        if not records:
            return 202, {"accepted": 0, "ids": [], "note": "nothing in this request maps to a v1 ticket event"}
        await self._deliver(records)
        self.metrics.events.labels(source).inc(len(records))
        return 202, {"accepted": len(records), "ids": [orjson.loads(r.value)["id"] for r in records]}

    async def _body(self, request: web.Request) -> bytes:
        limit = self.settings.gateway_max_body_bytes
        too_large = Refused(413, "too_large", {"error": f"the body is larger than {limit} bytes"})
        if request.content_length is not None and request.content_length > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _records(self, source: str, body: bytes, headers: Mapping[str, str], convert: Convert) -> list[Record]:
        """Map and validate the whole request before anything is produced."""
        try:
            docs = convert(body, headers)
            limit = self.settings.gateway_max_events_per_request
            if len(docs) > limit:
                raise Refused(413, "too_large", {"error": f"{len(docs)} events in one request, the limit is {limit}"})
            prefix = len(docs) > 1
            return [
                to_record(doc, self.settings.max_event_bytes, f"[{i}]." if prefix else "") for i, doc in enumerate(docs)
            ]
        except UnsupportedMedia as exc:
            raise Refused(415, "bad_request", {"error": str(exc)}) from None
        except Unmappable as exc:
            self.metrics.mapping_failures.labels(source, exc.reason).inc()
            raise Refused(
                422,
                "unprocessable",
                {"error": "unprocessable", "field": exc.field, "reason": exc.reason, "detail": exc.message},
            ) from None

    async def _deliver(self, records: list[Record]) -> None:
        started = self.monotonic()
        try:
            await self.delivery.deliver(
                self.settings.topic_input, records, self.settings.gateway_produce_timeout_seconds
            )
        except DeliveryFailed as exc:
            retry = str(self.settings.gateway_retry_after_seconds)
            raise Refused(
                503,
                "unavailable",
                {"error": "the broker did not take the events", "detail": str(exc)},
                {"Retry-After": retry},
            ) from None
        self.metrics.produce_seconds.observe(self.monotonic() - started)


def _vendor(mapper: Mapper, spec: SourceMapping) -> Convert:
    def convert(body: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]]:
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise Unmappable("(body)", "invalid_json", f"not JSON: {exc}") from None
        return mapper(payload, headers, spec)

    return convert


def create_gateway(
    settings: Settings,
    delivery: Delivery,
    registry: CollectorRegistry,
    clock: TimeSource,
    *,
    mappings: Mappings | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> web.Application:
    """The gateway's application. ``mappings`` default to ``settings.gateway_mapping_file`` (or the packaged
    defaults); a bad file raises :class:`escalator.gateway.mapfile.MappingError` here, before anything serves."""
    if mappings is None:
        mappings = (
            load_mapping_file(settings.gateway_mapping_file) if settings.gateway_mapping_file else default_mappings()
        )
    gateway = Gateway(settings, delivery, clock, GatewayMetrics(registry), mappings, monotonic)
    app = web.Application()

    def route(source: str, convert: Convert) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            return await gateway.handle(request, source, convert)

        return handler

    app.router.add_post("/v1/events", route("events", documents))
    for name, mapper in _VENDORS.items():
        app.router.add_post(f"/webhooks/{name}", route(name, _vendor(mapper, getattr(mappings, name))))

    async def healthz(request: web.Request) -> web.StreamResponse:
        return _json({"status": "ok"}, 200)

    async def readyz(request: web.Request) -> web.StreamResponse:
        ready = await delivery.ready()
        return _json({"ready": ready}, 200 if ready else 503)

    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return protect(app, settings, api=False)  # /metrics behind ESCALATOR_WEB_METRICS_TOKENS; webhooks sign
