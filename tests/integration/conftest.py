"""Fixtures for tests that need a Kafka-compatible broker (mark them ``@pytest.mark.broker``).

``kafka`` (session scope) follows the project's selection order:

1. ``ESCALATOR_BOOTSTRAP_SERVERS`` / ``KAFKA_BOOTSTRAP_SERVERS`` set: that cluster (flavour from
   ``ESCALATOR_BROKER_FLAVOUR``, default kafka); nothing is started.
2. a Docker engine answers: a testcontainers Kafka container, stopped at the end of the session.
3. otherwise the embedded Tansu broker on a free 127.0.0.1 port, started here and stopped here by PID.

Against Tansu the fixture installs ``escalator.broker.tansu_compat`` in the test process too, so in-process
aiokafka clients (``end_offsets``, ``seek_to_end``) see correct end offsets; subprocess workers get
``kafka.env()`` (``ESCALATOR_BROKER_FLAVOUR=tansu``) and install it themselves.

Helpers: ``unique_name``, ``topics`` (fresh uniquely named topics, deleted after the test), ``app_id`` (a fresh
group/application id per test), ``wait_until`` / ``async_wait_until`` (poll a condition with a deadline -- never
sleep to synchronise), ``processes`` (subprocesses in their own session, stopped by PID after the test).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a fresh loop in a helper thread (works inside async tests too)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def unique_name(prefix: str = "t") -> str:
    """A name no other test (or earlier run against the same broker) has used."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# --- the broker -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KafkaTarget:
    """bootstrap: ``host:port``; flavour: ``kafka`` or ``tansu``; source: env / testcontainers / embedded;
    pid: the embedded broker's PID when this session started it."""

    bootstrap: str
    flavour: str
    source: str
    pid: int | None = None
    log_path: Path | None = None

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (worker, demo, tail) that should use this broker."""
        base = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS",)}
        base.update(ESCALATOR_BOOTSTRAP_SERVERS=self.bootstrap, ESCALATOR_BROKER_FLAVOUR=self.flavour)
        return base


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaTarget]:
    from escalator.broker.embedded import BrokerUnavailable, EmbeddedBroker
    from escalator.broker.select import resolve_broker

    log_dir = tmp_path_factory.mktemp("broker")
    try:
        choice = resolve_broker(os.environ, log_dir=log_dir)
    except BrokerUnavailable as exc:
        pytest.fail(str(exc))
    owned = choice.owned_process
    embedded = owned if isinstance(owned, EmbeddedBroker) else None
    installed_here = False
    if choice.flavour == "tansu":
        from escalator.broker import tansu_compat

        installed_here = not tansu_compat.installed()
        tansu_compat.install()
    try:
        yield KafkaTarget(
            bootstrap=choice.bootstrap,
            flavour=choice.flavour,
            source=choice.source,
            pid=embedded.pid if embedded is not None else None,
            log_path=embedded.log_path if embedded is not None else None,
        )
    finally:
        if installed_here:
            from escalator.broker import tansu_compat

            tansu_compat.uninstall()
        choice.close()


@pytest.fixture
def app_id() -> str:
    """A fresh consumer group / application id (Tansu fixes a group's session timeout at its first member)."""
    return unique_name("test-app")


@dataclass
class TopicFactory:
    kafka: KafkaTarget
    created: list[str] = field(default_factory=list)

    def __call__(self, prefix: str = "topic", partitions: int = 1, count: int = 1) -> list[str]:
        """Create ``count`` fresh topics named ``<prefix>-<random>``; returns their names."""
        names = [unique_name(prefix) for _ in range(count)]
        run_async(self._create(names, partitions))
        self.created += names
        return names

    def one(self, prefix: str = "topic", partitions: int = 1) -> str:
        return self(prefix, partitions, 1)[0]

    async def _create(self, names: Sequence[str], partitions: int) -> None:
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
        finally:
            await admin.close()

    async def _delete(self, names: Sequence[str]) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.kafka.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(list(names))
        finally:
            await admin.close()

    def cleanup(self, extra: Sequence[str] = ()) -> None:
        names = [*self.created, *extra]
        if names:
            with contextlib.suppress(Exception):  # frees broker memory; a failure here is not the test's result
                run_async(self._delete(names))
        self.created.clear()


@pytest.fixture
def topics(kafka: KafkaTarget) -> Iterator[TopicFactory]:
    """``topics(prefix, partitions, count)`` / ``topics.one(prefix, partitions)``: fresh topics, deleted after."""
    factory = TopicFactory(kafka)
    yield factory
    factory.cleanup()


# --- subprocesses -------------------------------------------------------------------------------------------------


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux)
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def stop_pid(proc: subprocess.Popen[bytes], timeout: float = 20.0, sig: int = signal.SIGTERM) -> int:
    """Stop one process by PID: ``sig`` (default SIGTERM), SIGKILL after ``timeout``; returns the exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    return proc.wait(timeout)


@dataclass
class Processes:
    log_dir: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, args: Sequence[str], *, env: dict[str, str] | None = None, name: str = "proc"
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``args`` in its own session (stdout+stderr to a log file); returns (process, log path)."""
        log_path = self.log_dir / f"{name}-{len(self.started)}.log"
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                list(args),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(ROOT),
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        self.started.append(proc)
        return proc, log_path

    def stop_all(self) -> None:
        for proc in reversed(self.started):
            stop_pid(proc)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """Start subprocesses with ``processes.start([...])``; every one is stopped by PID after the test."""
    manager = Processes(tmp_path)
    try:
        yield manager
    finally:
        manager.stop_all()


@pytest.fixture
def tansu(kafka: KafkaTarget) -> KafkaTarget:
    """The session broker, only if it is the embedded Tansu (tests of Tansu behaviour itself)."""
    if kafka.flavour != "tansu":
        pytest.skip("needs the embedded Tansu broker (a Kafka cluster was configured or found)")
    return kafka
