"""Which broker to use: the one selection order shared by ``make run``, the tests and the tools.

1. ``ESCALATOR_BOOTSTRAP_SERVERS`` (or ``KAFKA_BOOTSTRAP_SERVERS``) set: that cluster; flavour from
   ``ESCALATOR_BROKER_FLAVOUR`` (default ``kafka``). Nothing is started.
2. Otherwise, if a Docker engine answers (checked in well under a second): a testcontainers Kafka container,
   flavour ``kafka``, owned by the caller.
3. Otherwise: the embedded Tansu broker (``EmbeddedBroker``) on a free loopback port, flavour ``tansu``, owned by
   the caller.

The caller stops what it owns with ``choice.close()`` (or ``with resolve_broker() as choice:``).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Protocol, Self

from .embedded import EmbeddedBroker

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["BrokerChoice", "OwnedBroker", "docker_available", "resolve_broker"]

log = logging.getLogger(__name__)

Flavour = Literal["kafka", "tansu"]
Source = Literal["env", "testcontainers", "embedded"]

_SERVER_VARS = ("ESCALATOR_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
_DOCKER_SOCKETS = ("/var/run/docker.sock", "~/.docker/run/docker.sock", "~/.docker/desktop/docker.sock")


class OwnedBroker(Protocol):
    """Something the caller started and must stop (an ``EmbeddedBroker`` or a testcontainers container)."""

    def stop(self) -> object: ...


@dataclass(frozen=True)
class BrokerChoice:
    """bootstrap: ``host:port[,host:port...]``; flavour: ``kafka`` or ``tansu`` (the value for
    ``ESCALATOR_BROKER_FLAVOUR``); source: where it came from; owned_process: what the caller must stop (None when
    the broker came from the environment)."""

    bootstrap: str
    flavour: Flavour
    source: Source
    owned_process: OwnedBroker | None = None

    def env(self) -> dict[str, str]:
        """Environment variables that point a child process (worker, demo, tail) at this broker."""
        return {"ESCALATOR_BOOTSTRAP_SERVERS": self.bootstrap, "ESCALATOR_BROKER_FLAVOUR": self.flavour}

    def close(self) -> None:
        """Stop the broker if this choice started it."""
        if self.owned_process is not None:
            self.owned_process.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def docker_available(timeout: float = 0.5, env: Mapping[str, str] | None = None) -> bool:
    """True if a Docker engine answers a ping within ``timeout`` seconds.

    Without ``DOCKER_HOST`` and without a local Docker socket this returns False without importing the docker SDK.
    """
    environ = os.environ if env is None else env
    if not environ.get("DOCKER_HOST") and not any(Path(p).expanduser().exists() for p in _DOCKER_SOCKETS):
        return False
    try:
        docker = importlib.import_module("docker")  # the docker SDK (testcontainers' dependency); untyped
    except ModuleNotFoundError:
        return False
    try:
        client = docker.from_env(timeout=max(1, round(timeout)), environment=dict(environ))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:  # docker.errors.DockerException, requests' connection errors, ...
        log.debug("no Docker engine: %r", exc)
        return False


def _from_env(settings: Settings | Mapping[str, str] | None) -> tuple[str | None, Flavour]:
    if settings is None or isinstance(settings, Mapping):
        environ = os.environ if settings is None else settings
        servers = next((environ[v] for v in _SERVER_VARS if environ.get(v, "").strip()), None)
        if servers is not None:
            servers = ",".join(s.strip() for s in servers.split(",") if s.strip())
        flavour = environ.get("ESCALATOR_BROKER_FLAVOUR", "kafka").strip().lower() or "kafka"
        if flavour not in ("kafka", "tansu"):
            raise ValueError(f"ESCALATOR_BROKER_FLAVOUR must be kafka or tansu, not {flavour!r}")
        return servers, "tansu" if flavour == "tansu" else "kafka"
    return settings.bootstrap_servers, settings.broker_flavour


def _start_testcontainers_kafka() -> BrokerChoice:
    from testcontainers.community.kafka import KafkaContainer

    container = KafkaContainer().with_kraft()
    container.start()
    try:
        bootstrap = container.get_bootstrap_server()
    except BaseException:
        container.stop()
        raise
    return BrokerChoice(bootstrap=bootstrap, flavour="kafka", source="testcontainers", owned_process=container)


def resolve_broker(
    settings: Settings | Mapping[str, str] | None = None,
    *,
    use_docker: bool = True,
    docker_timeout: float = 0.5,
    port: int = 0,
    log_dir: Path | str | None = None,
) -> BrokerChoice:
    """Apply the selection order (module docstring) and start a broker when none is configured.

    settings: a ``Settings`` object, or a mapping read like the environment; default ``os.environ``.
    use_docker: False skips the testcontainers step. port/log_dir: for the embedded broker.
    """
    servers, flavour = _from_env(settings)
    if servers:
        return BrokerChoice(bootstrap=servers, flavour=flavour, source="env")
    environ = settings if isinstance(settings, Mapping) else None
    if use_docker and docker_available(docker_timeout, env=environ):
        try:
            return _start_testcontainers_kafka()
        except Exception as exc:  # image pull failure, engine went away: fall through to the embedded broker
            log.warning("testcontainers Kafka did not start (%r); using the embedded broker", exc)
    broker = EmbeddedBroker(port, log_dir=log_dir).start()
    return BrokerChoice(bootstrap=broker.bootstrap, flavour="tansu", source="embedded", owned_process=broker)
