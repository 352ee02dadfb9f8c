"""The ``escalator`` command line. Each sub-command lives in its own module and is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = [
    "build_parser",
    "main",
]

# name -> (module, help). Every module has ``register(parser)`` and ``run(args) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "policy": ("escalator.commands.policy", "validate and explain a policy file"),
    "simulate": ("escalator.commands.simulate", "what-if replay of recorded ticket events under a policy"),
    "import": ("escalator.commands.importer", "convert a real ticket log (ServiceNow, help desk) to v1 events"),
    "worker": ("escalator.commands.worker", "run the stream-processing worker (Kafka)"),
    "gateway": ("escalator.commands.gateway", "run the ingest gateway: ticketing webhooks in, v1 events out (Kafka)"),
    "topics": ("escalator.commands.topics", "create the Kafka topics with the right configs"),
    "demo": ("escalator.commands.demo", "produce realistic demo ticket traffic"),
    "tail": ("escalator.commands.tail", "print escalations and notifications as they arrive"),
    "broker": ("escalator.commands.broker", "run the embedded development broker (Tansu)"),
    "notify": ("escalator.commands.notify", "run the notification relay (Slack, webhooks, e-mail, PagerDuty)"),
    "dev": ("escalator.commands.dev", "run broker, topics, worker, demo traffic and a live tail (make run)"),
    "schemas": ("escalator.commands.schemas", "write or check the JSON Schemas and AsyncAPI document"),
    "config": ("escalator.commands.config", "show settings and their environment variables"),
}
# Command modules import heavy dependencies (confluent-kafka, aiohttp, aiokafka) inside run(), never at module
# level, so that `escalator --help` and the light commands start fast.


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    from .settings import Settings

    epilog = "settings (environment variables):\n" + "\n".join(
        f"  {env}  [{default}]\n      {text}" for env, default, text in Settings.describe()
    )
    parser = argparse.ArgumentParser(
        prog="escalator",
        description="Event-driven SLA and escalation service for ticket events on Kafka.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"escalator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)  # a packaging mistake fails loudly, never drops a command
        cmd = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip().splitlines()[0])
        module.register(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_module", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._module.run(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
