"""Run the stream-processing worker: consume ticket events, keep SLA state, emit escalations and notifications."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

__all__ = ["check_topics", "register", "run"]

if TYPE_CHECKING:
    from ..service.app import KafkaPorts
    from ..settings import Settings


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", type=Path, help="policy file (default: ESCALATOR_POLICY_FILE or examples/policy.yaml)"
    )
    parser.add_argument("--web-port", type=int, help="HTTP port (default: ESCALATOR_WEB_PORT or 6066)")
    parser.add_argument("--web-host", help="HTTP bind address (default: ESCALATOR_WEB_HOST or 127.0.0.1)")
    parser.add_argument("--data-dir", type=Path, help="state directory (default: ESCALATOR_DATA_DIR)")


def run(args: argparse.Namespace) -> int:
    from ..core import PolicyError
    from ..policy_file import load_policy_file
    from .startup import StartupError, file_or_fail, needs_broker, settings_or_fail

    try:
        settings = settings_or_fail(
            {
                "policy_file": args.policy,
                "web_port": args.web_port,
                "web_host": args.web_host,
                "data_dir": args.data_dir,
            }
        )
        policy = file_or_fail(
            lambda: load_policy_file(settings.policy_file),
            PolicyError,
            "the worker does not start with an invalid policy file",
        )
        needs_broker(settings)
    except StartupError as exc:
        return exc.code

    from prometheus_client import CollectorRegistry

    from ..service.app import ConfluentPorts, create_service, run_worker
    from ..service.logs import configure_logging
    from ..service.timesource import WallTime

    configure_logging(settings.log_format, settings.log_level, settings.debug_loggers)
    ports = ConfluentPorts(settings)
    problems = check_topics(settings, ports)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print("error: create the topics with `escalator topics create`", file=sys.stderr)
        return 2
    service = create_service(settings, WallTime(), CollectorRegistry(), policy=policy, ports=ports)
    from ..build_info import core_build

    print(
        f"escalator worker: policy {settings.policy_file} (version {policy.version}), broker "
        f"{settings.bootstrap_servers} ({settings.broker_flavour}), store {settings.store}, core {core_build()}, "
        f"http://{settings.web_host}:{settings.web_port}",
        file=sys.stderr,
        flush=True,
    )
    return run_worker(service)


def check_topics(settings: Settings, ports: KafkaPorts) -> list[str]:
    """Problems with the topics the worker needs: missing ones, and partition counts that do not match
    ``ESCALATOR_PARTITIONS`` (every input partition is a source of incident watermarks)."""
    from ..service.topics import topic_specs

    problems = []
    for spec in topic_specs(settings):
        found = ports.partitions(spec.name)
        if found is None and spec.name == settings.topic_policies:
            continue  # optional: without it the worker runs its policy file alone (a deployment from before it)
        if found is None:
            problems.append(f"topic {spec.name} does not exist")
        elif spec.name in (settings.topic_input, settings.topic_incident_signals) and found != spec.partitions:
            problems.append(f"topic {spec.name} has {found} partitions, ESCALATOR_PARTITIONS says {spec.partitions}")
    return problems
