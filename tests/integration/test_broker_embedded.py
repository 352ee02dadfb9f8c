"""The embedded broker launcher, the broker selection order and ``escalator broker``."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from escalator.broker.embedded import (
    BrokerStartError,
    EmbeddedBroker,
    free_loopback_port,
    metadata_brokers,
)
from escalator.broker.select import docker_available, resolve_broker
from tests.waiting import wait_until

from .conftest import Processes, stop_pid, unique_name


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.broker
async def test_embedded_broker_starts_answers_produce_consume_and_stops_by_pid(tmp_path: Path) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    broker = EmbeddedBroker(log_dir=tmp_path)
    with broker:
        pid = broker.pid
        assert pid is not None and _alive(pid)
        host, port = broker.bootstrap.split(":")
        assert host == "127.0.0.1"
        assert metadata_brokers(host, int(port)) and metadata_brokers(host, int(port))[0][1:] == (host, int(port))
        assert os.getpgid(pid) == pid  # its own process group: a terminal's Ctrl-C does not reach it

        topic = unique_name("roundtrip")
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
        await producer.start()
        try:
            sent = [await producer.send_and_wait(topic, f"v{i}".encode(), key=b"k", partition=0) for i in range(5)]
        finally:
            await producer.stop()
        assert [m.offset for m in sent] == [0, 1, 2, 3, 4]

        consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            got: list[bytes] = []
            deadline = time.monotonic() + 15
            while len(got) < 5 and time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=500)
                got += [r.value for r in batch.get(tp, [])]
        finally:
            await consumer.stop()
        assert got == [f"v{i}".encode() for i in range(5)]
    assert broker.pid is None and not broker.running
    assert not _alive(pid)
    assert not _port_open(int(port))
    assert broker.log_path is not None and "listening on: tcp://127.0.0.1:" in broker.log_path.read_text()


@pytest.mark.broker
def test_explicit_port_in_use_fails_clearly_and_leaves_no_process(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port, log_dir=tmp_path, start_timeout=10)
        with pytest.raises(BrokerStartError, match=str(port)):
            broker.start()
        assert broker.pid is None and not broker.running


@pytest.mark.broker
def test_explicit_free_port_is_used(tmp_path: Path) -> None:
    port = free_loopback_port()
    with EmbeddedBroker(port, log_dir=tmp_path) as broker:
        assert broker.bootstrap == f"127.0.0.1:{port}"
        assert _port_open(port)
    assert not _port_open(port)


def test_docker_check_is_fast_without_an_engine() -> None:
    t0 = time.monotonic()
    # An unreachable DOCKER_HOST: the SDK is asked and must give up quickly.
    assert docker_available(timeout=0.5, env={"DOCKER_HOST": "tcp://127.0.0.1:9"}) is False
    # No DOCKER_HOST and (here) no socket: answered without importing the SDK.
    if not any(Path(p).expanduser().exists() for p in ("/var/run/docker.sock", "~/.docker/run/docker.sock")):
        assert docker_available(env={}) is False
    assert time.monotonic() - t0 < 3.0


@pytest.mark.broker
def test_nothing_configured_and_no_docker_starts_the_embedded_broker(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with resolve_broker({}, use_docker=not docker_available(), log_dir=tmp_path) as choice:
        assert (choice.flavour, choice.source) == ("tansu", "embedded")
        assert isinstance(choice.owned_process, EmbeddedBroker)
        pid = choice.owned_process.pid
        assert pid is not None and _alive(pid)
        host, port = choice.bootstrap.split(":")
        assert host == "127.0.0.1" and metadata_brokers(host, int(port))
    assert time.monotonic() - t0 < 15
    assert not _alive(pid)


# --- escalator broker ---------------------------------------------------------------------------------------------


@pytest.mark.broker
def test_broker_command_runs_in_the_foreground_until_ctrl_c(processes: Processes, tmp_path: Path) -> None:
    proc, log = processes.start(
        [sys.executable, "-m", "escalator", "broker", "--port", "0", "--log-dir", str(tmp_path)], name="broker-cmd"
    )
    ready = wait_until(
        lambda: re.search(r"broker ready on 127\.0\.0\.1:(\d+) \(flavour tansu; pid (\d+)", log.read_text()),
        timeout=20,
        what="`escalator broker` to report the broker ready",
    )
    port, broker_pid = int(ready.group(1)), int(ready.group(2))
    assert _alive(broker_pid) and metadata_brokers("127.0.0.1", port)
    assert f"export ESCALATOR_BOOTSTRAP_SERVERS=127.0.0.1:{port} ESCALATOR_BROKER_FLAVOUR=tansu" in log.read_text()
    # Ctrl-C; the broker itself gets SIGTERM, then SIGKILL after 10 s: allow for both on a loaded machine
    assert stop_pid(proc, timeout=30, sig=signal.SIGINT) == 0
    assert not _alive(broker_pid)
    assert not _port_open(port)


@pytest.mark.broker
def test_broker_command_runs_a_command_against_the_broker(processes: Processes, tmp_path: Path) -> None:
    probe = (
        "import os; from escalator.broker.embedded import metadata_brokers; "
        "h, p = os.environ['ESCALATOR_BOOTSTRAP_SERVERS'].split(':'); "
        "print('FLAVOUR', os.environ['ESCALATOR_BROKER_FLAVOUR'], 'BROKERS', metadata_brokers(h, int(p)))"
    )
    broker_cmd = [sys.executable, "-m", "escalator", "broker", "--port", "0", "--log-dir", str(tmp_path)]
    proc, log = processes.start(
        [*broker_cmd, "--", sys.executable, "-c", probe],
        name="broker-cmd",
    )
    assert proc.wait(timeout=30) == 0
    text = log.read_text()
    assert re.search(r"FLAVOUR tansu BROKERS \[\(\d+, '127\.0\.0\.1', \d+\)\]", text), text
    broker_pid = int(re.search(r"pid (\d+)", text).group(1))  # type: ignore[union-attr]
    assert not _alive(broker_pid)
