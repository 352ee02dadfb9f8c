"""Run the ingest gateway: ticketing webhooks (Zendesk, Jira, ServiceNow) and CloudEvents over HTTP in, v1 events out.

``escalator gateway`` serves until SIGTERM/SIGINT, then stops taking requests and flushes its producer (exit 0).
``escalator gateway --openapi`` prints the OpenAPI document of its HTTP API (schemas/openapi-gateway.yaml).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..gateway.mapfile import Mappings
    from ..settings import Settings

__all__ = ["register", "run", "serve"]


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="bind address (default: ESCALATOR_GATEWAY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: ESCALATOR_GATEWAY_PORT or 8088)")
    parser.add_argument(
        "--mappings", type=Path, help="vendor mapping file (default: ESCALATOR_GATEWAY_MAPPING_FILE or packaged)"
    )
    parser.add_argument("--openapi", action="store_true", help="print the OpenAPI document of the HTTP API and exit")


def run(args: argparse.Namespace) -> int:
    from .startup import StartupError, file_or_fail, needs_broker, settings_or_fail

    if args.openapi:
        from ..gateway.openapi import openapi_yaml

        sys.stdout.write(openapi_yaml())
        return 0
    from ..gateway.mapfile import MappingError, load_mapping_file

    try:
        settings = settings_or_fail(
            {"gateway_host": args.host, "gateway_port": args.port, "gateway_mapping_file": args.mappings}
        )
        mappings = file_or_fail(
            lambda: load_mapping_file(settings.gateway_mapping_file),
            MappingError,
            "the gateway does not start with an invalid mapping file",
        )
        needs_broker(settings)
    except StartupError as exc:
        return exc.code
    from ..service.logs import configure_logging

    configure_logging(settings.log_format, settings.log_level, settings.debug_loggers)
    return serve(settings, mappings)


def serve(settings: Settings, mappings: Mappings) -> int:
    """Serve the gateway until SIGTERM/SIGINT; the producer is flushed before returning."""
    import asyncio
    import signal

    from aiohttp import web
    from prometheus_client import CollectorRegistry

    from ..gateway.app import create_gateway
    from ..gateway.delivery import KafkaDelivery
    from ..service.timesource import WallTime
    from ..service.webauth import server_ssl_context

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        delivery = KafkaDelivery(settings)
        app = create_gateway(settings, delivery, CollectorRegistry(), WallTime(), mappings=mappings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(
                runner, settings.gateway_host, settings.gateway_port, ssl_context=server_ssl_context(settings)
            ).start()
            print(
                f"escalator gateway: http://{settings.gateway_host}:{settings.gateway_port} -> "
                f"{settings.topic_input} on {settings.bootstrap_servers} ({settings.broker_flavour}), "
                f"mappings {mappings.filename}",
                file=sys.stderr,
                flush=True,
            )
            await stopping.wait()
        finally:
            await runner.cleanup()  # stops taking requests, lets the ones in flight finish
            await loop.run_in_executor(None, delivery.close)
        return 0

    return asyncio.run(main())
