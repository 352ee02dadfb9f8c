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
    from pydantic import ValidationError

    from ..core import PolicyError
    from ..policy_file import load_policy_file
    from ..settings import NO_BROKER, Settings

    overrides = {
        k: v
        for k, v in {
            "policy_file": args.policy,
            "web_port": args.web_port,
            "web_host": args.web_host,
            "data_dir": args.data_dir,
        }.items()
        if v is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"error: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    try:
        policy = load_policy_file(settings.policy_file)
    except PolicyError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print("error: the worker does not start with an invalid policy file", file=sys.stderr)
        return 2
    if settings.bootstrap_servers is None:
        print(f"error: {NO_BROKER}", file=sys.stderr)
        return 2

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
        if found is None:
            problems.append(f"topic {spec.name} does not exist")
        elif spec.name in (settings.topic_input, settings.topic_incident_signals) and found != spec.partitions:
            problems.append(f"topic {spec.name} has {found} partitions, ESCALATOR_PARTITIONS says {spec.partitions}")
    return problems
