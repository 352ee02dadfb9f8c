"""escalator.stream.kafka_compat against a real broker: fails loudly when librdkafka's consumer-group metadata
stops carrying the group generation where ``group_generation`` reads it."""

from __future__ import annotations

import time

import pytest

from .conftest import KafkaTarget, TopicFactory, unique_name

pytestmark = pytest.mark.broker


def test_the_generation_grows_with_every_rebalance(kafka: KafkaTarget, topics: TopicFactory) -> None:
    from confluent_kafka import Consumer

    from escalator.stream.kafka_compat import CGMD_MAGIC, group_generation

    topic = topics.one("gen", partitions=4)
    group = unique_name("g")
    seen: list[tuple[str, int]] = []

    def member(name: str) -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap,
                "group.id": group,
                "session.timeout.ms": 3000,
                "heartbeat.interval.ms": 500,
                "partition.assignment.strategy": "range",
            }
        )

        def on_assign(consumer: Consumer, partitions: list[object]) -> None:
            metadata = consumer.consumer_group_metadata()
            assert bytes(metadata).startswith(CGMD_MAGIC), metadata  # the format this module knows
            seen.append((name, group_generation(metadata)))

        c.subscribe([topic], on_assign=on_assign)
        return c

    a = member("a")
    b = None
    try:
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            a.poll(0.1)
        b = member("b")
        while len(seen) < 3 and time.monotonic() < deadline:
            a.poll(0.05)
            b.poll(0.05)
        assert len(seen) >= 3, seen
        first = seen[0][1]
        later = dict(seen[1:])
        assert first >= 0
        assert later["a"] == later["b"] > first  # one generation for every member, newer than the last
    finally:
        a.close()
        if b is not None:
            b.close()
