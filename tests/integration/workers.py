"""Harness for tests against a real broker: worker processes (started and stopped by PID, loopback only), topic
creation, a producer, and an output collector that waits on conditions with deadlines (never sleeps to sync)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from escalator.settings import Settings
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
TEST_POLICY = ROOT / "tests" / "data" / "fast-policy.yaml"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_web_port() -> int:
    """A ``--web-port`` for ``escalator dev`` whose four ports (it and the three after it) are free on 127.0.0.1,
    below the kernel's ephemeral range: a block picked inside it (``free_port() + 1``...) can be taken by any
    outgoing connection's local port before the process that needs it binds it. Free as dev itself checks it
    (:func:`escalator.commands.dev.busy_ports`)."""
    from escalator.commands.dev import PORT_ROLES, busy_ports

    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(max(1024, low - 12000), low - len(PORT_ROLES))
        if not busy_ports(first):
            return first
    raise RuntimeError(f"no {len(PORT_ROLES)} consecutive free ports below {low}")


@dataclass
class Deployment:
    """One isolated escalator deployment on the shared broker: its own topics, group and app id."""

    bootstrap: str
    flavour: str
    tmp: Path
    partitions: int = 4
    policy_file: Path = TEST_POLICY
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")

    def env(self) -> dict[str, str]:
        return {
            "ESCALATOR_BOOTSTRAP_SERVERS": self.bootstrap,
            "ESCALATOR_BROKER_FLAVOUR": self.flavour,
            "ESCALATOR_APP_ID": self.name,
            "ESCALATOR_TOPIC_INPUT": f"{self.name}-events",
            "ESCALATOR_TOPIC_ESCALATIONS": f"{self.name}-escalations",
            "ESCALATOR_TOPIC_NOTIFICATIONS": f"{self.name}-notifications",
            "ESCALATOR_TOPIC_DLQ": f"{self.name}-events.dlq",
            "ESCALATOR_PARTITIONS": str(self.partitions),
            "ESCALATOR_OUTPUT_PARTITIONS": "2",
            "ESCALATOR_POLICY_FILE": str(self.policy_file),
            "ESCALATOR_ALLOWED_LATENESS_SECONDS": "1.0",
            "ESCALATOR_SESSION_TIMEOUT_SECONDS": "2",
            "ESCALATOR_HEARTBEAT_INTERVAL_SECONDS": "0.5",
            "ESCALATOR_REBALANCE_TIMEOUT_SECONDS": "2",
            "ESCALATOR_LOG_LEVEL": "INFO",
            "ESCALATOR_RECOVERY_STALL_SECONDS": "10",
            "ESCALATOR_DEBUG_LOGGERS": "escalator.changelog",
        }

    def settings(self) -> Settings:
        env = self.env()
        return Settings(**{k[len("ESCALATOR_") :].lower(): v for k, v in env.items()})  # type: ignore[arg-type]

    @property
    def topics(self) -> dict[str, str]:
        """The deployment's topic names, read from :meth:`env` (checks call this per record: building the Settings
        each time made a wait on 1,000 records cost a minute of the test's own CPU)."""
        env = self.env()
        return {
            name: env[f"ESCALATOR_TOPIC_{name.upper()}"] for name in ("input", "escalations", "notifications", "dlq")
        }

    def create_topics(self) -> None:
        from escalator.service.topics import create_topics, topic_specs

        settings = self.settings()
        assert asyncio.run(create_topics(settings, topic_specs(settings))) == 0

    def worker(self, index: int = 0, store: str = "memory", **env: str) -> WorkerProcess:
        return WorkerProcess(self, index, store, env)


class WorkerProcess:
    def __init__(self, dep: Deployment, index: int, store: str, extra: Mapping[str, str]) -> None:
        self.dep = dep
        self.index = index
        self.port = free_port()
        self.data_dir = dep.tmp / f"worker{index}"
        self.log_path = dep.tmp / f"worker{index}.log"
        self.env = {
            **os.environ,
            **dep.env(),
            "ESCALATOR_WEB_PORT": str(self.port),
            "ESCALATOR_WEB_HOST": "127.0.0.1",
            "ESCALATOR_STORE": store,
            "ESCALATOR_DATA_DIR": str(self.data_dir),
            **extra,
        }
        self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "escalator", "worker"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            start_new_session=True,
        )
        log.close()
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return 0, b""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 60.0) -> None:
        def ready() -> bool:
            if not self.alive():
                raise AssertionError(
                    f"worker {self.index} exited ({self.proc and self.proc.returncode}):\n{self.log_tail()}"
                )
            return self.get("/readyz", timeout=1.0)[0] == 200

        wait_until(ready, timeout, f"worker {self.index} /readyz")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop by PID (the whole process group); SIGKILL if it does not exit in time. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------------------------
# Producing and collecting


def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
    async def run() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, acks="all")
        await producer.start()
        try:
            for key, value, headers in records:
                await producer.send_and_wait(topic, value, key=key, headers=headers or None)
        finally:
            await producer.stop()

    asyncio.run(run())


def event_record(doc: Mapping[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return str(doc["subject"]).encode(), orjson.dumps(doc), []


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def id(self) -> str:
        return self.headers.get("escalator-id", b"").decode()


class Collector:
    """Consumes topics from the beginning in a background thread (no consumer group) until closed."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def __enter__(self) -> Collector:
        self._thread.start()
        wait_until(lambda: self._started.is_set() or self._error, 30, "the output collector to start")
        if self._error:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        try:
            await consumer.start()
            parts = []
            for t in self.topics:
                for p in sorted(await _partitions(consumer, t)):
                    parts.append(TopicPartition(t, p))
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            self._started.set()
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                with self._lock:
                    for tp, msgs in batch.items():
                        for m in msgs:
                            self.records.append(
                                Record(
                                    tp.topic,
                                    tp.partition,
                                    m.offset,
                                    m.key,
                                    m.value,
                                    {k: bytes(v) for k, v in (m.headers or [])},
                                )
                            )
        except BaseException as exc:  # surfaced to the test thread
            self._error = exc
            raise
        finally:
            await consumer.stop()

    def snapshot(self, topic: str | None = None) -> list[Record]:
        if self._error:
            raise self._error
        with self._lock:
            return [r for r in self.records if topic is None or r.topic == topic]

    def wait_for(self, predicate: Callable[[list[Record]], Any], timeout: float, what: str) -> Any:
        return wait_until(lambda: predicate(self.snapshot()), timeout, what)


async def _partitions(consumer: Any, topic: str) -> set[int]:
    deadline = time.monotonic() + 20
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        if time.monotonic() > deadline:
            raise AssertionError(f"topic {topic} has no partitions")
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)


def outputs_by_id(records: Iterable[Record]) -> dict[str, set[bytes]]:
    """Output id -> the distinct contents seen for it (more than one content for an id is a bug)."""
    out: dict[str, set[bytes]] = {}
    for r in records:
        out.setdefault(r.id or orjson.loads(r.value)["id"], set()).add(r.value)
    return out
