"""escalator.broker.tansu_compat: each workaround against the embedded broker, and table state across a restart.

The broker-behaviour tests double as canaries: if a newer Tansu fixes a bug, the "unpatched" assertion fails and
says which workaround may be removed.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from escalator.broker import tansu_compat
from escalator.settings import Settings

from .conftest import ROOT, KafkaTarget, TopicFactory, async_wait_until, unique_name


@pytest.fixture
def compat_off() -> Iterator[None]:
    """Run the test without the workarounds in this process, restoring the previous state afterwards."""
    before = tansu_compat.installed()
    tansu_compat.uninstall()
    try:
        yield
    finally:
        tansu_compat.uninstall()
        if before:
            tansu_compat.install(only=before)


# --- install / activate (no broker) ---------------------------------------------------------------------------------


def test_install_is_idempotent_and_uninstall_restores(compat_off: None) -> None:
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    originals = (
        Fetcher._proc_offset_request,
        GroupCoordinator._maybe_leave_group,
        AIOKafkaConsumerThread._create_worker_consumer,
    )
    assert tansu_compat.install() == frozenset(tansu_compat.WORKAROUNDS)
    patched = (
        Fetcher._proc_offset_request,
        GroupCoordinator._maybe_leave_group,
        AIOKafkaConsumerThread._create_worker_consumer,
    )
    assert all(p is not o for p, o in zip(patched, originals, strict=True))
    assert tansu_compat.install(fetch_max_wait_ms=250) == frozenset(tansu_compat.WORKAROUNDS)
    # the second call did not wrap the wrappers
    assert (
        Fetcher._proc_offset_request,
        GroupCoordinator._maybe_leave_group,
        AIOKafkaConsumerThread._create_worker_consumer,
    ) == patched
    tansu_compat.uninstall()
    assert tansu_compat.installed() == frozenset()
    assert (
        Fetcher._proc_offset_request,
        GroupCoordinator._maybe_leave_group,
        AIOKafkaConsumerThread._create_worker_consumer,
    ) == originals
    with pytest.raises(ValueError, match="unknown workaround"):
        tansu_compat.install(only=["compaction"])


def test_activate_patches_nothing_against_kafka(compat_off: None) -> None:
    assert tansu_compat.activate(Settings(broker_flavour="kafka", bootstrap_servers="k:9092")) == {}
    assert tansu_compat.installed() == frozenset()


def test_activate_against_tansu_installs_and_returns_overrides(compat_off: None) -> None:
    overrides = tansu_compat.activate(Settings(broker_flavour="tansu", session_timeout_seconds=10.0))
    assert tansu_compat.installed() == frozenset(tansu_compat.WORKAROUNDS)
    assert overrides["broker_session_timeout"] == tansu_compat.TANSU_SESSION_TIMEOUT
    assert overrides["broker_heartbeat_interval"] <= overrides["broker_session_timeout"] / 3
    assert overrides["processing_guarantee"] == "at_least_once"


def test_overrides_keep_a_shorter_session_and_refuse_exactly_once() -> None:
    overrides = tansu_compat.faust_overrides(Settings(session_timeout_seconds=2.0, heartbeat_interval_seconds=0.2))
    assert (overrides["broker_session_timeout"], overrides["broker_heartbeat_interval"]) == (2.0, 0.2)
    assert tansu_compat.app_overrides is tansu_compat.faust_overrides
    with pytest.raises(ValueError, match="at_least_once"):
        tansu_compat.faust_overrides(Settings(), processing_guarantee="exactly_once")


async def test_fetch_wait_replaces_fausts_hard_coded_1500_ms(compat_off: None) -> None:
    import faust

    app = faust.App(unique_name("fetchwait"), broker="kafka://127.0.0.1:9", web_enabled=False, autodiscover=False)
    thread = app.consumer._thread
    before = thread._create_worker_consumer(app.transport)
    assert before._fetch_max_wait_ms == 1500  # faust's constant: if this changes, revisit the workaround
    tansu_compat.install(fetch_max_wait_ms=100, only=["fetch_wait"])
    after = thread._create_worker_consumer(app.transport)
    assert after._fetch_max_wait_ms == 100


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

        await async_wait_until(assigned, timeout=20, message="the consumer to join its group")
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


# --- faust table state across a worker restart -------------------------------------------------------------------


def _load_bench() -> ModuleType:
    path = ROOT / "bench" / "tansu_recovery_loop.py"
    spec = importlib.util.spec_from_file_location("tansu_recovery_loop", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.broker
@pytest.mark.slow
async def test_faust_table_survives_a_worker_restart(tansu: KafkaTarget, tmp_path: Path) -> None:
    """A worker writes 200 table updates and stops (SIGTERM, by PID); a new worker with the same app id recovers
    every one of them from the changelog. Without tansu_compat this loses the tail of the last changelog batch in
    most runs (bench/tansu_recovery_loop.py measures it)."""
    bench = _load_bench()
    t0 = time.monotonic()
    result: Any = await bench.run_once(tansu.bootstrap, "patched", updates=200, log_dir=tmp_path, timeout=30)
    assert result.lost == 0, f"missing updates {result.missing_sample} (logs in {tmp_path})"
    assert result.processed_after_restart == 0  # nothing re-processed: the state came from recovery alone
    assert result.restart_ready_s < 10
    assert result.rtt_ms_median < 350, "control round trip slow: is the fetch_wait workaround active?"
    logs = {p.name: p.read_text() for p in tmp_path.glob(f"{result.app_id}-*.log")}
    first = next(text for name, text in logs.items() if name.endswith("-first.log"))
    assert "tansu_compat: left group" in first  # the first worker left from generation 0
    assert time.monotonic() - t0 < 60
