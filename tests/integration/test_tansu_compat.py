"""escalator.broker.tansu_compat: each workaround against the embedded broker, and table state across a restart.

The broker-behaviour tests double as canaries: if a newer Tansu fixes a bug, the "unpatched" assertion fails and
says which workaround may be removed.
"""

from __future__ import annotations

import time

import pytest

from escalator.broker import tansu_compat
from escalator.settings import Settings
from tests.waiting import async_wait_until

from .conftest import KafkaTarget, TopicFactory, unique_name

# --- the worker's consumer (librdkafka starts connecting as soon as it is built) ------------------------------------


def test_the_worker_applies_the_librdkafka_workarounds_only_against_tansu() -> None:
    from escalator.service.app import runtime_config
    from escalator.stream.kafka import KafkaGroupConsumer

    kafka = Settings(broker_flavour="kafka", bootstrap_servers="127.0.0.1:9", session_timeout_seconds=10.0)
    tansu = Settings(broker_flavour="tansu", bootstrap_servers="127.0.0.1:9", session_timeout_seconds=10.0)
    assert runtime_config(kafka).lease_ms == 5000
    assert runtime_config(tansu).lease_ms == int(tansu_compat.TANSU_SESSION_TIMEOUT * 500)
    assert KafkaGroupConsumer(kafka)._tansu is None
    assert KafkaGroupConsumer(tansu)._tansu is tansu_compat


# --- broker behaviour -----------------------------------------------------------------------------------------------


async def _produce_one_batch(bootstrap: str, topic: str, records: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        batch = producer.create_batch()
        for i in range(records):
            assert batch.append(key=None, value=b"v%d" % i, timestamp=None) is not None
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()


async def _end_offset_and_seek_to_end(bootstrap: str, topic: str) -> tuple[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        return end, await consumer.position(tp)
    finally:
        await consumer.stop()


@pytest.mark.broker
async def test_end_offsets_of_a_batch_are_wrong_without_and_right_with_the_workaround(
    tansu: KafkaTarget, topics: TopicFactory, compat_off: None
) -> None:
    topic = topics.one("listoffsets")
    await _produce_one_batch(tansu.bootstrap, topic, 10)
    raw_end, raw_position = await _end_offset_and_seek_to_end(tansu.bootstrap, topic)
    # Tansu's ListOffsets(LATEST): base offset of the newest batch + 1, not the high watermark (10).
    assert (raw_end, raw_position) == (1, 1)
    tansu_compat.install(only=["end_offsets"])
    assert await _end_offset_and_seek_to_end(tansu.bootstrap, topic) == (10, 10)
    # an empty partition and one with a single-record batch still answer correctly
    empty = topics.one("listoffsets-empty")
    assert await _end_offset_and_seek_to_end(tansu.bootstrap, empty) == (0, 0)
    await _produce_one_batch(tansu.bootstrap, empty, 1)
    assert await _end_offset_and_seek_to_end(tansu.bootstrap, empty) == (1, 1)


async def _group_members_after_close(bootstrap: str, topic: str, group: str) -> tuple[int, int]:
    """(generation the consumer joined with, members the broker still lists right after it closed)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, session_timeout_ms=3000, heartbeat_interval_ms=500
    )
    await consumer.start()
    try:

        async def assigned() -> bool:
            await consumer.getmany(timeout_ms=50)
            return bool(consumer.assignment())

        await async_wait_until(assigned, timeout=20, what="the consumer to join its group")
        generation = consumer._coordinator.generation
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.groups
    return generation, len(described[5])  # (error_code, group, state, protocol_type, protocol, members)


@pytest.mark.broker
async def test_a_consumer_leaves_its_group_from_generation_zero(
    tansu: KafkaTarget, topics: TopicFactory, compat_off: None
) -> None:
    topic = topics.one("leave")
    generation, members = await _group_members_after_close(tansu.bootstrap, topic, unique_name("g"))
    assert (generation, members) == (0, 1)  # aiokafka skips LeaveGroup in generation 0: the member lingers
    tansu_compat.install(only=["leave_group"])
    generation, members = await _group_members_after_close(tansu.bootstrap, topic, unique_name("g"))
    assert (generation, members) == (0, 0)


@pytest.mark.broker
def test_librdkafka_backlog_check_is_exact_only_with_the_correction(tansu: KafkaTarget, topics: TopicFactory) -> None:
    """The worker's backlog check before firing deadlines: librdkafka's fresh high watermark of a 10-record batch is
    1 on Tansu (canary: if it becomes 10, the correction can go); the worker's consumer reports 10 once it fetched."""
    import asyncio

    from confluent_kafka import Consumer, TopicPartition

    from escalator.stream.kafka import KafkaGroupConsumer

    topic = topics.one("hw")
    asyncio.run(_produce_one_batch(tansu.bootstrap, topic, 10))
    raw = Consumer({"bootstrap.servers": tansu.bootstrap, "group.id": unique_name("g")})
    try:
        assert raw.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 1)
    finally:
        raw.close()
    settings = Settings(bootstrap_servers=tansu.bootstrap, broker_flavour="tansu", app_id=unique_name("hw"))
    consumer = KafkaGroupConsumer(settings)
    try:
        consumer._consumer.assign([TopicPartition(topic, 0, 0)])
        got: list[object] = []
        deadline = time.monotonic() + 20
        while len(got) < 10 and time.monotonic() < deadline:
            got += consumer.consume(100, 0.2)
        assert len(got) == 10
        assert consumer.highwater((topic, 0)) == 10
        assert consumer.corrected_highwater((topic, 0), 1) == 10  # what a probe of that partition reports
    finally:
        consumer._consumer.close()
