"""Create every topic escalator uses (inputs, outputs, DLQ, internal topics, compacted changelogs)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..service.topics import TopicSpec
    from ..settings import Settings


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    sub.add_parser("create", help="create the topics (existing ones are left as they are)")
    sub.add_parser("list", help="print the topics escalator needs and their configs")


def run(args: argparse.Namespace) -> int:
    from ..service.topics import topic_specs
    from ..settings import Settings

    settings = Settings()
    specs = topic_specs(settings)
    if args.topics_command == "list":
        for t in specs:
            configs = ",".join(f"{k}={v}" for k, v in t.configs.items()) or "-"
            print(f"{t.name}\tpartitions={t.partitions}\treplication={t.replication}\t{configs}\t{t.purpose}")
        return 0
    if settings.bootstrap_servers is None:
        print(
            "error: no Kafka broker configured: set ESCALATOR_BOOTSTRAP_SERVERS (or KAFKA_BOOTSTRAP_SERVERS)",
            file=sys.stderr,
        )
        return 2
    return asyncio.run(_create(settings, specs))


async def _create(settings: Settings, specs: list[TopicSpec], *, verbose: bool = True) -> int:
    """Create the missing topics; returns 0, or 1 if any failed (failures are always printed on stderr)."""
    say = print if verbose else (lambda *a, **k: None)
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **settings.kafka_client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        failures = 0
        for spec in specs:
            if spec.name in existing:
                say(f"exists   {spec.name}")
                continue
            topic = NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=spec.configs)
            try:
                resp = await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                say(f"exists   {spec.name}")
                continue
            errors = [e for e in getattr(resp, "topic_errors", []) if e[1] not in (0, 36)]
            if errors:
                failures += 1
                print(f"FAILED   {spec.name}: {errors}", file=sys.stderr)
            else:
                say(f"created  {spec.name} (partitions={spec.partitions}, replication={spec.replication})")
        return 1 if failures else 0
    finally:
        await admin.close()
