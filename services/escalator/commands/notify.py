"""Run the notification relay: deliver escalator's notifications to Slack, webhooks, e-mail and PagerDuty.

``--check`` validates the routing and directory files (errors name file, line and field) and exits.
``--dev-sink`` (what ``make run`` uses) delivers everything to a local sink that prints each delivery.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..notify.routing import Routing
    from ..settings import Settings

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--routing", type=Path, help="routing file (default: ESCALATOR_NOTIFY_ROUTING_FILE)")
    parser.add_argument("--directory", type=Path, help="directory file (default: ESCALATOR_NOTIFY_DIRECTORY_FILE)")
    parser.add_argument("--web-port", type=int, help="HTTP port (default: ESCALATOR_NOTIFY_WEB_PORT or 6067)")
    parser.add_argument("--check", action="store_true", help="validate the routing and directory files and exit")
    parser.add_argument(
        "--dev-sink",
        type=int,
        metavar="PORT",
        help="development: deliver to a local sink on 127.0.0.1:PORT (HTTP) and PORT+1 (SMTP) that prints each one",
    )


def _settings(args: argparse.Namespace) -> Settings:
    from .startup import settings_or_fail

    overrides = {
        "notify_routing_file": args.routing,
        "notify_directory_file": args.directory,
        "notify_web_port": args.web_port,
    }
    forced: dict[str, object] = {}
    if args.dev_sink is not None:
        forced.update(
            notify_pagerduty_url=f"http://127.0.0.1:{args.dev_sink}/pagerduty",
            notify_smtp_host="127.0.0.1",
            notify_smtp_port=args.dev_sink + 1,
            notify_smtp_starttls=False,
            notify_smtp_tls=False,
            notify_smtp_username=None,
            notify_smtp_password=None,
        )
    return settings_or_fail(overrides, **forced)


def run(args: argparse.Namespace) -> int:
    from ..notify.routing import RoutingError, load_files
    from .startup import StartupError, file_or_fail, needs_broker

    try:
        settings = _settings(args)
        routing = file_or_fail(
            lambda: load_files(settings.notify_routing_file, settings.notify_directory_file),
            RoutingError,
            "the relay does not start with an invalid routing or directory file",
        )
        if args.check:
            print(f"ok: {len(routing.rules)} rules, channels {', '.join(sorted(routing.channels()))}")
            return 0
        needs_broker(settings)
    except StartupError as exc:
        return exc.code
    return _serve(settings, routing, args.dev_sink)


def _serve(settings: Settings, routing: Routing, dev_sink: int | None) -> int:
    import asyncio

    from prometheus_client import CollectorRegistry

    from ..notify.app import build_channels, build_relay, run_relay
    from ..notify.channels import AiohttpTransport
    from ..notify.devsink import local_directory, start_dev_sink
    from ..notify.routing import Routing
    from ..service.logs import configure_logging
    from ..service.timesource import WallTime
    from ..service.topics import TopicSpec, create_topics

    configure_logging(settings.log_format, settings.log_level, settings.debug_loggers)
    dlq = TopicSpec(
        settings.notify_dlq,
        settings.output_partitions,
        settings.replication_factor,
        {"retention.ms": str(30 * 86_400_000)},
    )
    if asyncio.run(create_topics(settings, [dlq], verbose=False)) != 0:
        print(f"error: the delivery dead-letter topic {settings.notify_dlq} could not be created", file=sys.stderr)
        return 2
    if dev_sink is not None:
        routing = Routing(routing.spec, local_directory(routing.directory, dev_sink))
    http = AiohttpTransport()
    registry = CollectorRegistry()
    relay = build_relay(settings, routing, WallTime(), registry, build_channels(settings, http))
    print(
        f"escalator notify: topics {', '.join(relay.topics())} (group {settings.app_id}-notify), dead letters "
        f"{settings.notify_dlq}, http://{settings.notify_web_host}:{settings.notify_web_port}",
        file=sys.stderr,
        flush=True,
    )
    startup = None if dev_sink is None else (lambda: start_dev_sink(dev_sink, dev_sink + 1))
    return run_relay(relay, registry, http, startup)
