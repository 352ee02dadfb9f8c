"""Print escalations, incidents and notifications as escalator publishes them.

Reads the escalations and notifications topics and prints one aligned line per event (coloured on a terminal);
``--json`` prints the raw CloudEvents instead, one per line. Without ``--group`` no consumer group is used: every
partition is assigned, nothing is committed.

"From now on" (the default) on Apache Kafka seeks to the end of each partition. On the embedded Tansu broker
(``ESCALATOR_BROKER_FLAVOUR=tansu``) ListOffsets is unreliable, so seeking to the end (or
``auto_offset_reset=latest``) cannot be trusted: there tail reads every partition from offset 0 and skips records
whose timestamp is older than the moment tail started. ``--from-beginning`` shows everything still retained.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from ..tailfmt import format_record

__all__ = ["StartPlan", "register", "run", "start_plan"]


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from-beginning", action="store_true", help="show every retained event, not only new ones")
    parser.add_argument("--json", action="store_true", help="print the raw CloudEvents, one JSON document per line")
    parser.add_argument("--all", action="store_true", help="also show escalation, incident and requester notifications")
    parser.add_argument("--group", default=None, help="consume in this consumer group (default: none, all partitions)")
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="colours (default: auto)")
    parser.add_argument("--utc", action="store_true", help="times in UTC (default: the local time zone)")


def _use_colour(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _now_ms() -> int:
    import time

    return time.time_ns() // 1_000_000


async def _assign_all(consumer: Any, topics: list[str]) -> list[Any]:
    """Every partition of ``topics``, waiting for topics that do not exist yet."""
    from aiokafka import TopicPartition

    waiting_said = False
    while True:
        await consumer.topics()  # refreshes the metadata
        missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        if not missing:
            break
        if not waiting_said:
            print(f"waiting for topic(s) {', '.join(missing)} (is the worker running?)", file=sys.stderr, flush=True)
            waiting_said = True
        await asyncio.sleep(2)
    tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t))]
    consumer.assign(tps)
    return tps


@dataclass(frozen=True, slots=True)
class StartPlan:
    """Where tail starts reading. ``seek``: ``end`` or ``zero`` (without a group); ``reset``: aiokafka's
    ``auto_offset_reset``; ``skip_before``: drop records with an older timestamp (ms), or ``None``."""

    seek: str
    reset: str
    skip_before: int | None

    def keep(self, timestamp: int | None) -> bool:
        """Whether a record with this timestamp is shown (a record without one always is)."""
        return self.skip_before is None or timestamp is None or timestamp < 0 or timestamp >= self.skip_before


def start_plan(*, tansu: bool, from_beginning: bool, started_ms: int) -> StartPlan:
    """Apache Kafka: "from now" is the end of each partition. Tansu: its ListOffsets answer is wrong, so the end
    (``seek_to_end``, ``auto_offset_reset="latest"``) cannot be trusted; read from offset 0 and skip what is older
    than ``started_ms`` instead."""
    if from_beginning:
        return StartPlan("zero", "earliest", None)
    if tansu:
        return StartPlan("zero", "earliest", started_ms)
    return StartPlan("end", "latest", None)


async def _tail(args: argparse.Namespace, servers: str, topics: list[str], tansu: bool, kwargs: dict[str, Any]) -> None:
    import orjson
    from aiokafka import AIOKafkaConsumer

    plan = start_plan(tansu=tansu, from_beginning=args.from_beginning, started_ms=_now_ms())
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        client_id="escalator-tail",
        group_id=args.group,
        enable_auto_commit=args.group is not None,
        auto_offset_reset=plan.reset,
        **kwargs,
    )
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()  # releases the half-open client
        raise
    try:
        if args.group is not None:
            consumer.subscribe(topics)
        else:
            tps = await _assign_all(consumer, topics)
            if plan.seek == "zero":
                for tp in tps:
                    consumer.seek(tp, 0)  # no ListOffsets; out of range falls back to "earliest"
            else:
                await consumer.seek_to_end(*tps)
        colour = _use_colour(args.color)
        tz = UTC if args.utc else None  # None: the local time zone
        async for record in consumer:
            if not plan.keep(record.timestamp):
                continue
            if args.json:
                try:
                    line = orjson.dumps(orjson.loads(record.value)).decode()
                except (orjson.JSONDecodeError, TypeError):
                    continue
            else:
                shown = format_record(record.value, colour=colour, tz=tz, show_all=args.all)
                if shown is None:
                    continue
                line = shown
            print(line, flush=True)
    finally:
        await consumer.stop()


def run(args: argparse.Namespace) -> int:
    from aiokafka.errors import KafkaError

    from ..settings import Settings

    settings = Settings()
    servers = settings.bootstrap_servers or "localhost:9092"
    if settings.bootstrap_servers is None:
        print(f"note: ESCALATOR_BOOTSTRAP_SERVERS is not set; using {servers}", file=sys.stderr)
    topics = [settings.topic_escalations, settings.topic_notifications]
    if not args.json:
        print(f"tailing {', '.join(topics)} at {servers} (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        asyncio.run(_tail(args, servers, topics, settings.broker_flavour == "tansu", settings.kafka_client_kwargs()))
    except KeyboardInterrupt:
        return 0
    except KafkaError as exc:
        print(f"error: Kafka at {servers}: {exc!r}", file=sys.stderr)
        return 1
    return 0
