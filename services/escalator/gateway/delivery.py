"""The gateway's one way out: hand a request's records to Kafka and wait until the broker acknowledged every one.

:class:`Delivery` is the seam (unit tests pass a fake); :class:`KafkaDelivery` is confluent-kafka with ``acks=all``
(idempotent against Apache Kafka; against the embedded Tansu broker the overrides of
``escalator.broker.tansu_compat``) and the Java client's partitioner, so records keyed by ticket id land on the
partition the worker expects. Delivery reports are served by a daemon thread and handed to the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..settings import Settings

__all__ = ["Delivery", "DeliveryFailed", "KafkaDelivery", "Record", "producer_config"]


@dataclass(frozen=True)
class Record:
    """One Kafka record: key (ticket id), value (a structured-mode CloudEvent), headers."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class DeliveryFailed(Exception):
    """The broker refused a record or did not acknowledge every record in time."""


class Delivery(Protocol):
    async def deliver(self, topic: str, records: Sequence[Record], timeout_s: float) -> None:
        """Return once the broker acknowledged every record; raise :class:`DeliveryFailed` otherwise."""
        ...

    async def ready(self) -> bool:
        """Whether the producer has the broker's metadata for the input topic."""
        ...

    def close(self) -> None:
        """Flush what is in flight and stop."""
        ...


def producer_config(settings: Settings) -> dict[str, Any]:
    from ..stream.kafka import client_config

    conf: dict[str, Any] = {
        **client_config(settings),
        "client.id": f"{settings.app_id}-gateway",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "partitioner": "murmur2_random",  # as the worker's producer and Kafka's Java client: keyed like upstream
        "compression.type": settings.compression,
        "message.timeout.ms": int(settings.gateway_produce_timeout_seconds * 1000),
    }
    if settings.broker_flavour == "tansu":
        from ..broker import tansu_compat

        conf.update(tansu_compat.librdkafka_producer_overrides(settings))
    return conf


def _settle(future: asyncio.Future[None], error: Any) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(DeliveryFailed(str(error)))
    else:
        future.set_result(None)


class KafkaDelivery:
    def __init__(self, settings: Settings) -> None:
        from confluent_kafka import Producer

        self._topic = settings.topic_input
        self._producer = Producer(producer_config(settings))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="escalator-gateway-deliveries", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)  # runs the delivery callbacks

    async def deliver(self, topic: str, records: Sequence[Record], timeout_s: float) -> None:
        from confluent_kafka import KafkaException

        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []

        def callback_for(future: asyncio.Future[None]) -> Any:
            def done(error: Any, _message: Any) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                    loop.call_soon_threadsafe(_settle, future, error)

            return done

        try:
            for record in records:
                future = loop.create_future()
                futures.append(future)
                self._producer.produce(
                    topic, record.value, record.key, headers=list(record.headers), on_delivery=callback_for(future)
                )
        except (BufferError, KafkaException) as exc:
            raise DeliveryFailed(f"the producer refused a record: {exc}") from None
        try:
            results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout_s)
        except TimeoutError:
            raise DeliveryFailed(f"the broker did not acknowledge within {timeout_s:g} s") from None
        for result in results:
            if isinstance(result, BaseException):
                raise DeliveryFailed(f"the broker refused a record: {result}")

    async def ready(self) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, self._has_metadata)

    def _has_metadata(self) -> bool:
        try:
            metadata = self._producer.list_topics(topic=self._topic, timeout=2)
        except Exception:
            return False
        found = metadata.topics.get(self._topic)
        return bool(metadata.brokers) and found is not None and found.error is None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._producer.flush(10)
