"""Create every topic escalator uses (inputs, outputs, DLQ, internal topics, compacted changelogs)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from ..settings import NO_BROKER

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    sub.add_parser("create", help="create the topics (existing ones are left as they are)")
    sub.add_parser("list", help="print the topics escalator needs and their configs")


def run(args: argparse.Namespace) -> int:
    from ..service.topics import create_topics, topic_specs
    from ..settings import Settings

    settings = Settings()
    specs = topic_specs(settings)
    if args.topics_command == "list":
        for t in specs:
            configs = ",".join(f"{k}={v}" for k, v in t.configs.items()) or "-"
            print(f"{t.name}\tpartitions={t.partitions}\treplication={t.replication}\t{configs}\t{t.purpose}")
        return 0
    if settings.bootstrap_servers is None:
        print(f"error: {NO_BROKER}", file=sys.stderr)
        return 2
    return asyncio.run(create_topics(settings, specs))
