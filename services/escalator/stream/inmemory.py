"""An in-memory broker implementing the stream processor's ports, for unit tests (no network, no threads, no
wall clock).

Topics are lists of records per partition; a consumer group's assignment changes only when a test calls
:meth:`MemoryBroker.rebalance`, and the members see it (revocation, then assignment, as Kafka's eager protocol
does) inside their next :meth:`~MemoryGroupConsumer.consume`. Producers append on :meth:`~MemoryProducer.flush`;
tests can make deliveries fail, drop what a "crashed" producer still held, or let a stale writer's records land
later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .ports import TP, DeliveryCallback, Message, RebalanceListener

__all__ = [
    "MemoryBroker",
    "MemoryGroupConsumer",
    "MemoryMessage",
    "MemoryPorts",
    "MemoryProbe",
    "MemoryProducer",
    "MemoryReader",
    "MemoryTail",
]


class MemoryMessage:
    """A record with confluent-kafka's ``Message`` interface."""

    __slots__ = ("_error", "_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        timestamp: int = 0,
        error: Any = None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers = key, value, headers
        self._timestamp, self._error = timestamp, error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def error(self) -> Any:
        return self._error

    def timestamp(self) -> tuple[int, int]:
        return (1, self._timestamp)

    def __repr__(self) -> str:
        return f"<{self._topic}[{self._partition}]@{self._offset} key={self._key!r}>"


@dataclass
class _Group:
    generation: int = -1
    members: list[MemoryGroupConsumer] = field(default_factory=list)
    committed: dict[TP, int] = field(default_factory=dict)


class MemoryBroker:
    def __init__(self, now_ms: Callable[[], int] = lambda: 0) -> None:
        self.now_ms = now_ms
        self.topics: dict[str, list[list[MemoryMessage]]] = {}
        self.groups: dict[str, _Group] = {}

    def create_topic(self, name: str, partitions: int) -> None:
        self.topics.setdefault(name, [[] for _ in range(partitions)])

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> MemoryMessage:
        log = self.topics[topic][partition]
        msg = MemoryMessage(topic, partition, len(log), key, value, headers, self.now_ms())
        log.append(msg)
        return msg

    def records(self, topic: str, partition: int | None = None) -> list[MemoryMessage]:
        parts = self.topics[topic]
        if partition is not None:
            return list(parts[partition])
        return [m for part in parts for m in part]

    def partitions(self, topic: str) -> int:
        return len(self.topics[topic])

    # -- consumer groups ---------------------------------------------------------------------------------------
    def rebalance(self, group: str, assignment: Mapping[MemoryGroupConsumer, Sequence[TP]]) -> int:
        """A new generation: every member loses what it had and gets ``assignment[member]`` (eager protocol).
        Members not named get nothing. Returns the new generation."""
        g = self.groups.setdefault(group, _Group())
        g.generation += 1
        for member in g.members:
            member._pending.append((g.generation, list(assignment.get(member, ()))))
        return g.generation

    def expire(self, member: MemoryGroupConsumer) -> None:
        """The member's session expired: at its next consume its partitions are lost (not revoked)."""
        member._lost = True


class MemoryGroupConsumer:
    def __init__(self, broker: MemoryBroker, group: str) -> None:
        self.broker = broker
        self.group = group
        self._g = broker.groups.setdefault(group, _Group())
        self._g.members.append(self)
        self._listener: RebalanceListener | None = None
        self._topics: list[str] = []
        self._pending: list[tuple[int, list[TP]]] = []
        self._lost = False
        self._revoking = False
        self.assignment: list[TP] = []
        self.positions: dict[TP, int] = {}
        self.paused: set[TP] = set()
        self.fetched: set[TP] = set()  # partitions with a fetch answer (their high watermark is known)
        self._generation = -1
        self.commits: list[dict[TP, int]] = []
        self.closed = False

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._topics = list(topics)
        self._listener = listener

    def _rebalance(self) -> None:
        assert self._listener is not None
        if self._lost and self.assignment:
            lost, self.assignment = self.assignment, []
            self._lost = False
            self._listener.revoked(lost, True)
        while self._pending:
            generation, parts = self._pending.pop(0)
            if self.assignment:
                old, self.assignment = self.assignment, []
                self._revoking = True  # like Kafka: a member may still commit while it gives partitions back
                try:
                    self._listener.revoked(old, False)
                finally:
                    self._revoking = False
            self.positions.clear()
            self.fetched.clear()
            self.paused.clear()
            self._generation = generation
            self.assignment = list(parts)
            for tp in parts:
                self.positions[tp] = self._g.committed.get(tp, 0)
            self._listener.assigned(list(parts))

    def consume(self, max_records: int, timeout_s: float) -> list[Message]:
        """Records of every assigned partition, round robin (the starting partition rotates between calls)."""
        self._rebalance()
        out: list[Message] = []
        n = len(self.assignment)
        self._turn = (getattr(self, "_turn", -1) + 1) % max(1, n)
        for tp in self.assignment[self._turn :] + self.assignment[: self._turn]:
            if tp in self.paused:
                continue
            self.fetched.add(tp)
            log = self.broker.topics[tp[0]][tp[1]]
            pos = self.positions[tp]
            take = log[pos : pos + max(0, max_records - len(out))]
            out.extend(take)
            self.positions[tp] = pos + len(take)
            if len(out) >= max_records:
                break
        return out

    def commit(self, offsets: Mapping[TP, int], *, wait: bool = False) -> None:
        if self._lost or (self._generation != self._g.generation and not self._revoking):
            return  # a commit from an old generation is refused by the coordinator
        self.commits.append(dict(offsets))
        self._g.committed.update(offsets)

    def committed(self, partitions: Sequence[TP]) -> dict[TP, int]:
        return {tp: self._g.committed[tp] for tp in partitions if tp in self._g.committed}

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.fetched:
            return None
        return len(self.broker.topics[tp[0]][tp[1]])

    def corrected_highwater(self, tp: TP, reported: int) -> int:
        return reported

    def seek(self, tp: TP, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, partitions: Sequence[TP]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: Sequence[TP]) -> None:
        self.paused.difference_update(partitions)

    def generation(self) -> int:
        return self._generation

    def rejoin(self) -> None:
        self.rejoins = getattr(self, "rejoins", 0) + 1

    def close(self) -> None:
        if self.assignment and self._listener is not None:
            old, self.assignment = self.assignment, []
            self._listener.revoked(old, False)
        self.closed = True
        if self in self._g.members:
            self._g.members.remove(self)


class MemoryProducer:
    """Records wait in ``pending`` until they are transmitted -- by :meth:`transmit` (the network, called by the
    test) or by a blocking :meth:`flush` -- and their delivery reports wait until a :meth:`flush` serves them (a
    ``flush(0)`` serves what was transmitted and waits for nothing, like librdkafka's)."""

    #: librdkafka's ``message.max.bytes`` (default): a bigger record is refused when produced, not when delivered.
    MAX_MESSAGE_BYTES = 1_000_000

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.pending: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None, int | None, Any]] = []
        self.reports: list[tuple[Any, Any, MemoryMessage]] = []  # (callback, error, message) not served yet
        self.fail: Callable[[str, bytes | None], bool] | None = None  # -> True: this delivery fails
        self.freeze = False  # a frozen process transmits nothing
        self.closed = False

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        if topic not in self.broker.topics:
            raise KeyError(f"unknown topic {topic}")
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or ())
        if size > self.MAX_MESSAGE_BYTES:
            raise RuntimeError(f"MSG_SIZE_TOO_LARGE: {size} bytes")  # librdkafka raises KafkaException
        self.pending.append((topic, value, key, headers, partition, on_delivery))

    def transmit(self) -> None:
        """Everything produced so far reaches the broker, in order; reports wait for a flush."""
        if self.freeze:
            return
        pending, self.pending = self.pending, []
        for topic, value, key, headers, chosen, callback in pending:
            partition = _partition_for(key, self.broker.partitions(topic)) if chosen is None else chosen
            if self.fail is not None and self.fail(topic, key):
                self.reports.append(
                    (callback, "delivery failed (injected)", MemoryMessage(topic, partition, -1, key, value))
                )
                continue
            msg = self.broker.append(topic, partition, key, value, headers)
            self.reports.append((callback, None, msg))

    def poll(self) -> None:
        self.flush(0)

    def flush(self, timeout_s: float) -> int:
        if timeout_s > 0:
            self.transmit()
        reports, self.reports = self.reports, []
        for callback, error, msg in reports:
            if callback is not None:
                callback(error, msg)
        return len(self.pending)

    def drop_pending(self) -> None:
        """A crash: whatever was produced but not transmitted never reaches the broker."""
        self.pending.clear()
        self.reports.clear()

    def close(self) -> None:
        self.closed = True


def _partition_for(key: bytes | None, partitions: int) -> int:
    from .partitioner import partition_for

    return 0 if key is None else partition_for(key, partitions)


class MemoryProbe:
    """Answers at once, at the broker's clock."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.answers: dict[TP, tuple[int, int]] = {}

    def request(self, tp: TP) -> None:
        self.answers[tp] = (self.broker.now_ms(), len(self.broker.topics[tp[0]][tp[1]]))

    def latest(self, tp: TP) -> tuple[int, int] | None:
        return self.answers.get(tp)

    def close(self) -> None:
        pass


class MemoryReader:
    def __init__(self, broker: MemoryBroker, batch: int = 1000) -> None:
        self.broker = broker
        self.batch = batch
        self.reads: list[tuple[TP, int]] = []

    def read(self, tp: TP, start: int) -> Iterator[tuple[list[Message], int]]:
        self.reads.append((tp, start))
        log = self.broker.topics[tp[0]][tp[1]]
        end = len(log)
        pos = start
        if pos >= end:
            yield [], end
            return
        while pos < end:
            chunk: list[Message] = list(log[pos : min(end, pos + self.batch)])
            pos += len(chunk)
            yield chunk, pos

    def close(self) -> None:
        pass


class MemoryTail:
    """Follows one partition of a topic from the beginning."""

    def __init__(self, broker: MemoryBroker, topic: str, partition: int = 0) -> None:
        self.broker = broker
        self.tp = (topic, partition)
        self.position = 0
        self.closed = False

    def poll(self, timeout_s: float) -> list[Message]:
        log = self.broker.topics[self.tp[0]][self.tp[1]]
        out: list[Message] = list(log[self.position :])
        self.position = len(log)
        return out

    def close(self) -> None:
        self.closed = True


class MemoryPorts:
    """The service's Kafka seam (``escalator.service.app.KafkaPorts``) on an in-memory broker."""

    def __init__(self, broker: MemoryBroker, group: str = "escalator") -> None:
        self.broker = broker
        self.group = group
        self.consumers: list[MemoryGroupConsumer] = []
        self.producers: list[MemoryProducer] = []

    def consumer(self) -> MemoryGroupConsumer:
        c = MemoryGroupConsumer(self.broker, self.group)
        self.consumers.append(c)
        return c

    def producer(self) -> MemoryProducer:
        p = MemoryProducer(self.broker)
        self.producers.append(p)
        return p

    def reader(self) -> MemoryReader:
        return MemoryReader(self.broker)

    def probe(self, now_ms: Callable[[], int]) -> MemoryProbe:
        return MemoryProbe(self.broker)

    def tail(self, topic: str) -> MemoryTail:
        return MemoryTail(self.broker, topic)

    def partitions(self, topic: str) -> int | None:
        parts = self.broker.topics.get(topic)
        return None if parts is None else len(parts)
