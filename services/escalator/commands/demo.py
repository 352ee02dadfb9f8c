"""Produce realistic demo ticket traffic to the input topic, paced in real time.

Run the worker with ``ESCALATOR_POLICY_FILE=examples/demo-policy.yaml`` (targets in seconds) and ``escalator tail``
next to it: within a minute you see SLA warnings, breaches, an L1 -> L2 -> L3 escalation with a repeat, every
trigger and an outage incident. The scenario itself is :func:`escalator.demo.build_scenario` (pure); this module
only paces it and sends it with aiokafka (key = ticket id, value = the CloudEvent JSON, ``time`` = the send time).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from typing import Any

from ..demo import DEMO_POLICY, RUN_ID, ScenarioOptions, build_scenario, new_run_id, start_line, stories

__all__ = ["register", "run"]

DEFAULT_BOOTSTRAP = "localhost:9092"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=90.0, metavar="SECONDS", help="length of one run (default 90)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=6.0,
        metavar="PER_MINUTE",
        help="background tickets per minute (default 6; 0: none)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", dest="loop", action="store_false", help="play one run, then exit (default)")
    mode.add_argument("--loop", dest="loop", action="store_true", help="play runs back to back until Ctrl-C")
    parser.add_argument("--seed", type=int, default=None, help="random seed of the background (default: per run)")
    parser.add_argument(
        "--run-id",
        default=None,
        help="prefix of this run's ticket ids, T-<run id>-... (default: random; not with --loop)",
    )
    parser.add_argument("--topic", default=None, help="input topic (default: ESCALATOR_TOPIC_INPUT)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.set_defaults(loop=False)


@dataclass
class _Stats:
    runs: int = 0
    events: int = 0
    tickets: int = 0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _play(
    args: argparse.Namespace, servers: str, topic: str, client_kwargs: dict[str, Any], stats: _Stats
) -> None:
    import orjson
    from aiokafka import AIOKafkaProducer

    from ..core.timefmt import format_ms

    producer = AIOKafkaProducer(bootstrap_servers=servers, client_id="escalator-demo", linger_ms=5, **client_kwargs)
    try:
        await producer.start()
    except BaseException:
        await producer.stop()  # releases the half-open client
        raise
    loop = asyncio.get_running_loop()
    try:
        while True:
            run_id = args.run_id or new_run_id()
            options = ScenarioOptions(duration_s=args.duration, rate_per_min=args.rate, seed=args.seed)
            started_ms, started = _now_ms(), loop.time()
            plan = build_scenario(started_ms, run_id, options)
            texts = stories(run_id)
            stats.runs += 1
            if not args.quiet:
                print(
                    f"demo run {run_id}: {len(plan)} events over {args.duration:g}s to {topic} at {servers} "
                    f"(tickets T-{run_id}-...; Ctrl-C stops)",
                    flush=True,
                )
            for offset, event in plan:
                delay = started + offset - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_ms = _now_ms()
                event["time"] = format_ms(sent_ms)
                await producer.send_and_wait(
                    topic, value=orjson.dumps(event), key=str(event["subject"]).encode(), timestamp_ms=sent_ms
                )
                stats.events += 1
                if event["type"] == "ticket.created":
                    stats.tickets += 1
                if event["type"] in ("ticket.created", "incident.resolved") and not args.quiet:
                    print(start_line(event, texts, sent_ms, tz=None), flush=True)
            if not args.loop:
                return
            rest = started + args.duration - loop.time()
            if rest > 0:
                await asyncio.sleep(rest)
    finally:
        await producer.stop()


def run(args: argparse.Namespace) -> int:
    from ..settings import Settings

    if args.run_id is not None and (args.loop or not RUN_ID.match(args.run_id)):
        print("error: --run-id takes 1 to 8 lowercase letters or digits, and cannot go with --loop", file=sys.stderr)
        return 2
    try:
        ScenarioOptions(duration_s=args.duration, rate_per_min=args.rate)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = Settings()
    servers = settings.bootstrap_servers
    if servers is None:
        servers = DEFAULT_BOOTSTRAP
        print(f"note: ESCALATOR_BOOTSTRAP_SERVERS is not set; using {servers}", file=sys.stderr)
    topic = args.topic or settings.topic_input
    if not args.quiet and settings.policy_file.name != "demo-policy.yaml":
        print(
            f"note: the demo is timed for {DEMO_POLICY}; start the worker with ESCALATOR_POLICY_FILE={DEMO_POLICY}",
            file=sys.stderr,
        )
    stats = _Stats()
    from aiokafka.errors import KafkaError

    code = 0
    try:
        asyncio.run(_play(args, servers, topic, settings.kafka_client_kwargs(), stats))
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
    except KafkaError as exc:
        print(f"error: Kafka at {servers}: {exc!r}", file=sys.stderr)
        code = 1
    print(f"sent {stats.events} events, {stats.tickets} tickets, {stats.runs} run(s) to {topic}", file=sys.stderr)
    return code
