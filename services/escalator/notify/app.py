"""The relay process: its HTTP endpoints (``/healthz``, ``/readyz``, ``/metrics`` on an injected registry) and
the wiring of the real seams (confluent-kafka consumer group ``<app_id>-notify`` and producer, aiohttp, aiosmtplib,
RocksDB delivery log) around :class:`~escalator.notify.relay.Relay`."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..service.timesource import TimeSource
from ..service.webauth import protect, server_ssl_context
from ..settings import Settings
from .channels import AiohttpTransport, ChannelSender
from .channels.email import AiosmtplibTransport, EmailChannel, SmtpOptions
from .channels.pagerduty import PagerDutyChannel
from .channels.slack import SlackChannel
from .channels.webhook import WebhookChannel
from .delivery import RocksDeliveryLog
from .metrics import NotifyMetrics
from .relay import Relay
from .routing import Routing

__all__ = ["build_channels", "build_relay", "notify_web_app", "run_relay"]

log = logging.getLogger("escalator.notify")


def notify_web_app(relay: Relay, registry: CollectorRegistry) -> web.Application:
    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ready": relay.ready, "pending": relay.pending()}, status=200 if relay.ready else 503)

    async def metrics(request: web.Request) -> web.StreamResponse:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def build_channels(settings: Settings, http: AiohttpTransport) -> dict[str, ChannelSender]:
    """Every channel the settings allow: e-mail only with an SMTP host."""
    timeout = settings.notify_http_timeout_seconds
    secret = settings.notify_webhook_secret.get_secret_value() if settings.notify_webhook_secret else None
    channels: dict[str, ChannelSender] = {
        "slack": SlackChannel(http, timeout, settings.notify_slack_format),
        "webhook": WebhookChannel(http, timeout, secret),
        "pagerduty": PagerDutyChannel(http, timeout, settings.notify_pagerduty_url),
    }
    if settings.notify_smtp_host:
        password = settings.notify_smtp_password.get_secret_value() if settings.notify_smtp_password else None
        options = SmtpOptions(
            settings.notify_smtp_host,
            settings.notify_smtp_port,
            settings.notify_smtp_starttls,
            settings.notify_smtp_tls,
            settings.notify_smtp_username,
            password,
            timeout,
        )
        channels["email"] = EmailChannel(AiosmtplibTransport(options), settings.notify_smtp_from)
    return channels


def build_relay(
    settings: Settings,
    routing: Routing,
    clock: TimeSource,
    registry: CollectorRegistry,
    channels: Mapping[str, ChannelSender],
) -> Relay:
    from ..stream.kafka import KafkaGroupConsumer, KafkaProducer

    group = settings.model_copy(update={"app_id": f"{settings.app_id}-notify"})  # group id and client id
    return Relay(
        settings,
        routing,
        KafkaGroupConsumer(group),
        KafkaProducer(group),
        channels,
        RocksDeliveryLog(settings.notify_data_dir / f"{settings.app_id}-notify" / "delivered"),
        clock,
        NotifyMetrics(registry),
    )


def run_relay(
    relay: Relay,
    registry: CollectorRegistry,
    http: AiohttpTransport,
    startup: Callable[[], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
) -> int:
    """Serve HTTP and run the relay until SIGTERM/SIGINT (``startup`` starts a helper and returns its stop)."""
    settings = relay.settings

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        app = protect(notify_web_app(relay, registry), settings, api=False)  # /metrics: ESCALATOR_WEB_METRICS_TOKENS
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(
            runner, settings.notify_web_host, settings.notify_web_port, ssl_context=server_ssl_context(settings)
        ).start()
        stop_helper = None if startup is None else await startup()
        try:
            await relay.run(stop)
        finally:
            relay.consumer.close()
            relay.producer.close()
            relay.delivery_log.close()
            await http.close()
            await runner.cleanup()
            if stop_helper is not None:
                await stop_helper()
        return 0

    return asyncio.run(main())
