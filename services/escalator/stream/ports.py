"""The small interfaces the stream processor needs from Kafka. ``kafka`` implements them with confluent-kafka;
``inmemory`` with an in-memory broker for unit tests (the way httpx tests drive a client through a mock transport).

The record type is confluent-kafka's ``Message`` interface (methods, not attributes), so the real consumer's
records are used as they come, with no per-record wrapping on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

__all__ = [
    "TP",
    "ChangelogReader",
    "DeliveryCallback",
    "GroupConsumer",
    "HighwaterProbe",
    "Message",
    "OffsetOutOfRange",
    "Producer",
    "RebalanceListener",
    "headers_get",
]

TP = tuple[str, int]  # (topic, partition)


class Message(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> Any: ...  # list[tuple[str, bytes]] | None as consumed
    def error(self) -> Any: ...
    def timestamp(self) -> tuple[int, int]: ...


DeliveryCallback = Callable[[Any, Message], None]  # (error or None, the delivered message with its offset)


class RebalanceListener(Protocol):
    """Called from inside :meth:`GroupConsumer.consume`, on the processor's own thread."""

    def assigned(self, partitions: list[TP]) -> None: ...

    def revoked(self, partitions: list[TP], lost: bool) -> None:
        """``lost``: the group took the partitions away (session expired) -- do not commit for them."""
        ...


class GroupConsumer(Protocol):
    """A consumer-group member reading the input and incident-signal topics."""

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener) -> None: ...

    def consume(self, max_records: int, timeout_s: float) -> list[Message]:
        """Up to ``max_records`` records, waiting at most ``timeout_s`` for the first. Rebalance callbacks run here."""
        ...

    def commit(self, offsets: Mapping[TP, int], *, wait: bool = False) -> None:
        """Commit the next offsets to read; ``wait`` blocks until the broker answered."""
        ...

    def committed(self, partitions: Sequence[TP]) -> dict[TP, int]:
        """The group's committed offsets (partitions without one are left out)."""
        ...

    def highwater(self, tp: TP) -> int | None:
        """The high watermark seen in the latest fetch response (``None`` until one arrived). No I/O."""
        ...

    def corrected_highwater(self, tp: TP, reported: int) -> int:
        """A high watermark the :class:`HighwaterProbe` got from the broker, as this consumer must compare it with its
        position (the embedded broker's answer needs the fetch's high watermark beside it; elsewhere: as is)."""
        ...

    def seek(self, tp: TP, offset: int) -> None: ...

    def pause(self, partitions: Sequence[TP]) -> None: ...

    def resume(self, partitions: Sequence[TP]) -> None: ...

    def generation(self) -> int:
        """The group generation of the current assignment (-1 when the client does not tell)."""
        ...

    def rejoin(self) -> None:
        """Leave and rejoin the group (a new generation, a fresh assignment)."""
        ...

    def close(self) -> None: ...


class HighwaterProbe(Protocol):
    """Asks the broker for high watermarks off the processor's thread (its own connection: on one connection the
    request would queue behind the consumer's long-polling fetch)."""

    def request(self, tp: TP) -> None:
        """Ask for ``tp``'s high watermark (again); the answer shows up in :meth:`latest`."""
        ...

    def latest(self, tp: TP) -> tuple[int, int] | None:
        """(instant the question was asked, in epoch ms; the answer) of the newest answer, ``None`` before one."""
        ...

    def close(self) -> None: ...


class Producer(Protocol):
    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None: ...

    def poll(self) -> None:
        """Run the delivery callbacks of records delivered (or failed) so far; never waits, never hurries a send."""
        ...

    def flush(self, timeout_s: float) -> int:
        """Send now and wait until every produced record is delivered or failed (callbacks run here); returns how
        many are still pending when the timeout expired."""
        ...

    def close(self) -> None: ...


class OffsetOutOfRange(Exception):
    """A changelog read started beyond the partition's end (the local state is newer than the changelog)."""


class ChangelogReader(Protocol):
    """Reads one changelog partition from an offset to its end (no consumer group)."""

    def read(self, tp: TP, start: int) -> Iterator[tuple[list[Message], int]]:
        """Batches of records from ``start`` on, each with the offset to read next; the last batch's offset is the
        partition's end (its high watermark when the read reached it)."""
        ...

    def close(self) -> None: ...


def headers_get(headers: Any, name: str) -> bytes | None:
    """The first value of header ``name`` (``None`` when absent)."""
    if headers:
        for k, v in headers:
            if k == name:
                return bytes(v)
    return None
