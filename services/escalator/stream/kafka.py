"""The processor's Kafka ports on confluent-kafka (librdkafka).

Why confluent-kafka for the hot path: on this project's 2-core benchmark machine a consume -> produce loop moved
185-214k records/s with confluent-kafka against 28-33k/s with aiokafka on the same broker and records
(docs/benchmarks.md, ``make bench-service``); librdkafka batches, compresses and fetches in its own threads.
aiokafka stays for the low-volume tools (``tail``, ``demo``, topic administration).

Everything here is configuration and translation; the choices (batching, ordering, commits) are the runtime's.
Workarounds for the embedded development broker come from ``escalator.broker.tansu_compat`` and are applied only
when ``broker_flavour`` is ``tansu``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from ..settings import Settings
from .kafka_compat import group_generation
from .ports import TP, DeliveryCallback, Message, OffsetOutOfRange, RebalanceListener

__all__ = [
    "ChangelogReadError",
    "KafkaChangelogReader",
    "KafkaGroupConsumer",
    "KafkaHighwaterProbe",
    "KafkaProducer",
    "KafkaTail",
    "client_config",
    "produce_one",
    "read_all",
]

log = logging.getLogger("escalator.kafka")


class ChangelogReadError(RuntimeError):
    """A changelog partition could not be read to its end."""


def client_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings shared by every client: brokers and security (secrets unwrapped only here)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.bootstrap_servers or "",
        "security.protocol": settings.security_protocol.lower(),
        "client.id": settings.app_id,
    }
    if settings.sasl_mechanism:
        conf["sasl.mechanism"] = settings.sasl_mechanism
        conf["sasl.username"] = settings.sasl_username or ""
        conf["sasl.password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    if settings.ssl_cafile:
        conf["ssl.ca.location"] = str(settings.ssl_cafile)
    if settings.ssl_certfile:
        conf["ssl.certificate.location"] = str(settings.ssl_certfile)
    if settings.ssl_keyfile:
        conf["ssl.key.location"] = str(settings.ssl_keyfile)
    if settings.ssl_key_password:
        conf["ssl.key.password"] = settings.ssl_key_password.get_secret_value()
    return conf


def _tansu(settings: Settings) -> Any:
    if settings.broker_flavour != "tansu":
        return None
    from ..broker import tansu_compat

    return tansu_compat


def _drain(consumer: Any, max_records: int, timeout_s: float) -> list[Message]:
    """Wait up to ``timeout_s`` for one record, then take what is already fetched, up to ``max_records``.
    (``Consumer.consume(n, timeout)`` alone waits for all ``n`` records or the whole timeout.)"""
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    if max_records <= 1:
        return [cast(Message, first)]
    rest = consumer.consume(num_messages=max_records - 1, timeout=0)
    return [cast(Message, first), *rest]


class KafkaGroupConsumer:
    """The consumer-group member of the runtime (input and incident-signal topics)."""

    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Consumer

        conf = {
            **client_config(settings),
            "group.id": settings.app_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": int(settings.session_timeout_seconds * 1000),
            "heartbeat.interval.ms": int(settings.heartbeat_interval_seconds * 1000),
            "max.poll.interval.ms": int(settings.max_poll_interval_seconds * 1000),
            "fetch.wait.max.ms": settings.fetch_max_wait_ms,
            "fetch.min.bytes": settings.fetch_min_bytes,
            "partition.assignment.strategy": "range",  # input partition i and signal partition i go together
            "isolation.level": "read_uncommitted",  # nothing here is transactional
            "on_commit": self._committed_cb,
        }
        self._tansu = _tansu(settings)
        if self._tansu is not None:
            conf.update(self._tansu.librdkafka_consumer_overrides(settings))
        self._consumer = Consumer(conf)
        self._topics: list[str] = []
        self._listener: RebalanceListener | None = None

    # -- group membership ----------------------------------------------------------------------------------------
    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None:
        self._topics = list(topics)
        self._listener = listener
        self._consumer.subscribe(
            self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        assert self._listener is not None
        self._listener.assigned([(tp.topic, tp.partition) for tp in partitions])

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        assert self._listener is not None
        self._listener.revoked([(tp.topic, tp.partition) for tp in partitions], False)

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        assert self._listener is not None
        self._listener.revoked([(tp.topic, tp.partition) for tp in partitions], True)

    def generation(self) -> int:
        try:
            return group_generation(self._consumer.consumer_group_metadata())
        except Exception:  # not a member right now
            return -1

    def rejoin(self) -> None:
        assert self._listener is not None
        self._consumer.unsubscribe()
        self.subscribe(self._topics, self._listener)

    # -- records -------------------------------------------------------------------------------------------------
    def consume(self, max_records: int, timeout_s: float) -> list[Message]:
        return _drain(self._consumer, max_records, timeout_s)

    def commit(self, offsets: Mapping[TP, int], *, wait: bool = False) -> None:
        from confluent_kafka import TopicPartition

        parts = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        if wait:
            self._consumer.commit(offsets=parts, asynchronous=False)
        else:
            self._consumer.commit(offsets=parts, asynchronous=True)

    @staticmethod
    def _committed_cb(err: Any, partitions: list[Any]) -> None:
        if err is not None:
            log.warning("offset commit failed: %s", err)

    def committed(self, partitions: Sequence[TP]) -> dict[TP, int]:
        from confluent_kafka import TopicPartition

        if not partitions:
            return {}
        answer = self._consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=30)
        return {(tp.topic, tp.partition): tp.offset for tp in answer if tp.offset >= 0}

    def highwater(self, tp: TP) -> int | None:
        from confluent_kafka import TopicPartition

        try:
            _low, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except Exception:
            return None
        return None if high < 0 else int(high)

    def corrected_highwater(self, tp: TP, reported: int) -> int:
        if self._tansu is not None:
            return int(self._tansu.caught_up_highwater(reported, self.highwater(tp)))
        return reported

    def seek(self, tp: TP, offset: int) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.seek(TopicPartition(tp[0], tp[1], offset))

    def pause(self, partitions: Sequence[TP]) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.pause([TopicPartition(t, p) for t, p in partitions])

    def resume(self, partitions: Sequence[TP]) -> None:
        from confluent_kafka import TopicPartition

        self._consumer.resume([TopicPartition(t, p) for t, p in partitions])

    def close(self) -> None:
        self._consumer.close()


class KafkaProducer:
    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer

        conf = {
            **client_config(settings),
            "acks": "all",
            "enable.idempotence": True,  # no duplicates, no reordering on retries (changelog order matters)
            "linger.ms": settings.linger_ms,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "partitioner": "murmur2_random",  # the Java client's partitioner: keys land where upstream expects
            "compression.type": settings.compression,
        }
        tansu = _tansu(settings)
        if tansu is not None:
            conf.update(tansu.librdkafka_producer_overrides(settings))
        self._producer = Producer(conf)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        # positional: topic, value, key, partition (-1: the partitioner decides), callback, on_delivery, timestamp,
        # headers (no keyword parsing per record)
        where = -1 if partition is None else partition
        args: tuple[Any, ...] = (topic, value, key, where, on_delivery, None, 0, headers)
        produce: Any = self._producer.produce
        try:
            produce(*args)
        except BufferError:  # the local queue is full: serve deliveries until it takes the record
            while True:
                self._producer.poll(0.05)
                try:
                    produce(*args)
                    return
                except BufferError:
                    continue

    def poll(self) -> None:
        # poll, not flush(0): a flush makes librdkafka send partial batches at once (linger.ms ignored); called at
        # every step it would turn each batch into many small produce requests
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> int:
        remaining: int = self._producer.flush(timeout_s)
        return remaining

    def close(self) -> None:
        self._producer.flush(10)


class KafkaHighwaterProbe:
    """High watermarks asked on a daemon thread with a consumer of its own (no group, no fetches), so that the
    question never waits behind the processor's long-polling fetch on a shared connection."""

    def __init__(self, settings: Settings, now_ms: Callable[[], int]) -> None:
        from confluent_kafka import Consumer

        self._consumer = Consumer({**client_config(settings), "group.id": f"{settings.app_id}-probe"})
        self._now_ms = now_ms
        self._wanted: set[TP] = set()
        self._answers: dict[TP, tuple[int, int]] = {}
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="escalator-highwater", daemon=True)
        self._thread.start()

    def request(self, tp: TP) -> None:
        with self._wake:
            self._wanted.add(tp)
            self._wake.notify()

    def latest(self, tp: TP) -> tuple[int, int] | None:
        return self._answers.get(tp)

    def _run(self) -> None:
        from confluent_kafka import TopicPartition

        while True:
            with self._wake:
                while not self._wanted and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                wanted, self._wanted = self._wanted, set()
            for tp in wanted:
                asked = self._now_ms()
                try:
                    _low, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), timeout=5, cached=False)
                except Exception as exc:  # no answer: the processor asks again
                    log.debug("high watermark of %s: %s", tp, exc)
                    continue
                if high >= 0:
                    self._answers[tp] = (asked, int(high))

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=10)
        self._consumer.close()


class KafkaChangelogReader:
    """Reads changelog partitions from an offset to their end, reported by librdkafka's end-of-partition event
    (which comes from the fetch response's high watermark -- correct on the embedded broker too)."""

    def __init__(self, settings: Settings, *, batch: int = 10_000, stall_s: float = 60.0) -> None:
        from confluent_kafka import Consumer

        conf = {
            **client_config(settings),
            "group.id": f"{settings.app_id}-changelog-reader",  # never joins: partitions are assigned directly
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "error",
            "fetch.wait.max.ms": 10,
            "isolation.level": "read_uncommitted",
        }
        self._consumer = Consumer(conf)
        self._batch = batch
        self._stall_s = stall_s
        self._tansu = _tansu(settings) is not None

    def read(self, tp: TP, start: int) -> Iterator[tuple[list[Message], int]]:
        from confluent_kafka import KafkaError, TopicPartition

        self._consumer.assign([TopicPartition(tp[0], tp[1], start)])
        try:
            position = start
            last_progress = time.monotonic()
            while True:
                records = _drain(self._consumer, self._batch, 0.5)
                batch: list[Message] = []
                end: int | None = None
                for m in records:
                    err = m.error()
                    if err is None:
                        batch.append(m)
                        position = (m.offset() or 0) + 1
                    elif err.code() == KafkaError._PARTITION_EOF:
                        end = m.offset()
                    elif err.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
                        raise OffsetOutOfRange(f"{tp[0]}[{tp[1]}] has no offset {start}: {err}")
                    else:
                        raise ChangelogReadError(f"reading {tp[0]}[{tp[1]}] from offset {start}: {err}")
                if batch or end is not None:
                    last_progress = time.monotonic()
                    yield batch, position if end is None else max(end, position)
                if end is not None and end <= position:
                    return
                if time.monotonic() - last_progress > self._stall_s:
                    raise ChangelogReadError(
                        f"no answer reading {tp[0]}[{tp[1]}] from offset {start} for {self._stall_s:.0f}s (is the "
                        "local state newer than the changelog, e.g. after the topic was recreated? remove the "
                        "worker's data directory)"
                    )
        finally:
            self._consumer.unassign()

    def close(self) -> None:
        self._consumer.close()


class KafkaTail:
    """Follows one partition of a topic from the beginning (the owners directory)."""

    def __init__(self, settings: Settings, topic: str, partition: int = 0) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        conf = {
            **client_config(settings),
            "group.id": f"{settings.app_id}-tail",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 200,
        }
        self._consumer = Consumer(conf)
        self._consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])

    def poll(self, timeout_s: float) -> list[Message]:
        records = self._consumer.consume(num_messages=1000, timeout=timeout_s)
        return [cast(Message, m) for m in records if m.error() is None]

    def close(self) -> None:
        self._consumer.close()


def _exists(settings: Settings, topic: str) -> bool:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient(client_config(settings)).list_topics(topic=topic, timeout=30)
    found = metadata.topics.get(topic)
    return found is not None and found.error is None


def produce_one(settings: Settings, topic: str, key: bytes, value: bytes, timeout_s: float = 30.0) -> str | None:
    """Produce one record to partition 0 of ``topic`` and wait for it: ``None``, or what went wrong."""
    if not _exists(settings, topic):
        return "the topic does not exist (create it with `escalator topics create`)"
    producer = KafkaProducer(settings)
    errors: list[str] = []
    delivered: list[bool] = []

    def on_delivery(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append(True)

    producer.produce(topic, value, key, None, 0, on_delivery)
    left = producer.flush(timeout_s)
    if errors:
        return errors[0]
    if left or not delivered:
        return f"not delivered within {timeout_s:.0f}s"
    return None


def read_all(settings: Settings, topic: str) -> list[Message]:
    """Every record of partition 0 of ``topic``, from the beginning to its end."""
    if not _exists(settings, topic):
        raise ChangelogReadError(f"{topic} does not exist (create it with `escalator topics create`)")
    reader = KafkaChangelogReader(settings, stall_s=30.0)
    try:
        out: list[Message] = []
        for batch, _end in reader.read((topic, 0), 0):
            out.extend(batch)
        return out
    finally:
        reader.close()
