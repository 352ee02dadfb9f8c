"""A small world for driving the stream runtime in unit tests: an in-memory broker, a manual wall clock, a manual
monotonic clock, and workers built from the same factory the service uses (no network, no threads, no sleeps)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from escalator.core import Emit, PolicySet, decode_record, encode_event
from escalator.replay.simulate import simulate
from escalator.stream.inmemory import (
    MemoryBroker,
    MemoryGroupConsumer,
    MemoryMessage,
    MemoryProbe,
    MemoryProducer,
    MemoryReader,
)
from escalator.stream.partitioner import partition_for
from escalator.stream.runtime import BatchStats, Runtime, RuntimeConfig, Topics
from escalator.stream.store import MemoryStore, PartitionStore

TOPICS = Topics(
    input="ticket-events",
    signals="app-incident-signals",
    escalations="ticket-escalations",
    notifications="ticket-notifications",
    dlq="ticket-events.dlq",
    tickets_changelog="app-tickets-changelog",
    windows_changelog="app-incident-windows-changelog",
    owners="app-owners",
)


class Recorder:
    """An Observer that keeps what it is told."""

    def __init__(self) -> None:
        self.batches: list[BatchStats] = []
        self.readiness: list[bool] = []
        self.recoveries: list[tuple[str, int, int, int]] = []
        self.stalls = 0
        self.fences: list[str] = []

    def on_batch(self, stats: BatchStats) -> None:
        self.batches.append(stats)

    def on_ready(self, ready: bool) -> None:
        self.readiness.append(ready)

    def on_recovered(self, store: str, partition: int, seconds: float, applied: int, ignored: int) -> None:
        self.recoveries.append((store, partition, applied, ignored))

    def on_stall(self) -> None:
        self.stalls += 1

    def on_fence(self, reason: str) -> None:
        self.fences.append(reason)


@dataclass
class Worker:
    runtime: Runtime
    consumer: MemoryGroupConsumer
    producer: MemoryProducer
    observer: Recorder
    stores: dict[tuple[str, int], PartitionStore] = field(default_factory=dict)


class World:
    def __init__(self, policy: PolicySet, start_ms: int, partitions: int = 2, **config: Any) -> None:
        self.policy = policy
        self.now = start_ms
        self.mono = 1000.0
        self.partitions = partitions
        self.broker = MemoryBroker(lambda: self.now)
        for name in (TOPICS.input, TOPICS.signals, TOPICS.dlq, TOPICS.tickets_changelog, TOPICS.windows_changelog):
            self.broker.create_topic(name, partitions)
        for name in (TOPICS.escalations, TOPICS.notifications):
            self.broker.create_topic(name, 2)
        self.broker.create_topic(TOPICS.owners, 1)
        self.config = RuntimeConfig(partitions=partitions, **config)
        self.exits: list[int] = []
        self.workers: list[Worker] = []

    def worker(self, *, stores: dict[tuple[str, int], PartitionStore] | None = None) -> Worker:
        consumer = MemoryGroupConsumer(self.broker, "app")
        producer = MemoryProducer(self.broker)
        observer = Recorder()
        kept: dict[tuple[str, int], PartitionStore] = {} if stores is None else stores

        def store(kind: str, partition: int) -> PartitionStore:
            return kept.setdefault((kind, partition), MemoryStore())

        runtime = Runtime(
            self.config,
            TOPICS,
            self.policy,
            consumer=consumer,
            producer=producer,
            reader=MemoryReader(self.broker),
            probe=MemoryProbe(self.broker),
            stores=store,
            now_ms=lambda: self.now,
            monotonic=lambda: self.mono,
            observer=observer,
            exit=self.exits.append,
        )
        consumer.subscribe([TOPICS.input, TOPICS.signals], runtime)
        worker = Worker(runtime, consumer, producer, observer, kept)
        self.workers.append(worker)
        return worker

    def assign(self, *plan: tuple[Worker, Iterable[int]]) -> None:
        """A rebalance: each worker gets the input and signal partitions listed (and loses the rest)."""
        self.broker.rebalance(
            "app",
            {w.consumer: [(t, p) for p in parts for t in (TOPICS.input, TOPICS.signals)] for w, parts in plan},
        )

    def send(self, docs: Iterable[dict[str, Any]]) -> None:
        for doc in docs:
            key = str(doc["subject"]).encode()
            self.broker.append(TOPICS.input, partition_for(key, self.partitions), key, orjson.dumps(doc))

    def send_raw(
        self, partition: int, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        self.broker.append(TOPICS.input, partition, key, value, headers)

    def deliver(self) -> None:
        """What the workers produced reaches the broker (librdkafka transmits in the background; the workers see
        the delivery reports at their next step)."""
        for w in self.workers:
            w.producer.transmit()

    def records(self, topic: str, partition: int | None = None) -> list[MemoryMessage]:
        """A topic's records, once what the workers produced is delivered."""
        self.deliver()
        return self.broker.records(topic, partition)

    def outputs(self) -> list[MemoryMessage]:
        """Every output delivered so far (what the workers produced is delivered first)."""
        self.deliver()
        return self.broker.records(TOPICS.escalations) + self.broker.records(TOPICS.notifications)

    def output_ids(self) -> dict[str, set[bytes]]:
        out: dict[str, set[bytes]] = {}
        for m in self.outputs():
            out.setdefault(orjson.loads(m.value() or b"{}")["id"], set()).add(m.value() or b"")
        return out


def run_until_idle(world: World, *workers: Worker, steps: int = 10_000, tick_ms: int = 0) -> None:
    """Step every worker until every record of their partitions is consumed and a round produces nothing new;
    the wall clock moves ``tick_ms`` before each round."""

    def size() -> int:  # records of every topic but the signals (watermarks flow as long as the clock moves)
        return sum(len(p) for name, t in world.broker.topics.items() if name != TOPICS.signals for p in t)

    for _ in range(steps):
        world.now += tick_ms
        world.deliver()
        before = size()
        for w in workers:
            w.runtime.step()
        backlog = any(
            w.consumer.positions.get(tp, 0) < len(world.broker.topics[tp[0]][tp[1]])
            for w in workers
            for tp in w.consumer.assignment
            if tp not in w.consumer.paused and tp[0] != TOPICS.signals
        )
        held = any(part.held for w in workers for part in w.runtime.incidents.values())
        in_flight = any(  # state changes or input offsets not yet stored and committed (watermarks never stop)
            stage.changes or any(tp[0] == TOPICS.input for tp in stage.commits)
            for w in workers
            for stage in w.runtime._stages
        )
        if size() == before and not backlog and not held and not in_flight:
            return
    raise AssertionError(f"the workers did not become idle within {steps} steps")


def oracle(docs: list[dict[str, Any]], policy: PolicySet, until_ms: int) -> dict[str, bytes]:
    events = [decode_record(orjson.dumps(d)) for d in docs]
    return {c.id: encode_event(c.event) for c in simulate(events, policy, until_ms=until_ms) if isinstance(c, Emit)}


def drive(world: World, workers: list[Worker], docs: list[dict[str, Any]], end_ms: int, every_ms: int) -> int:
    """Live traffic: each event is sent when the wall clock reaches its time; the workers step at every event and
    every ``every_ms`` of wall time in between, up to ``end_ms``, then until idle with the clock moving 100 ms a
    round. Returns the instant up to which deadlines have fired (the replay's ``until``)."""
    from escalator.core import parse_rfc3339_ms

    times = [parse_rfc3339_ms(str(d["time"])) for d in docs]
    i = 0
    t = world.now
    while t <= end_ms:
        nxt = times[i] if i < len(times) else end_ms + 1
        if nxt <= t + every_ms:
            t = max(t, nxt)
            while i < len(times) and times[i] <= t:
                world.send([docs[i]])
                i += 1
        else:
            t += every_ms
        world.now = min(t, end_ms)
        world.deliver()
        for w in workers:
            w.runtime.step()
        if t >= end_ms:
            break
    run_until_idle(world, *workers, tick_ms=100)
    return world.now - world.config.lateness_ms
