"""Kafka's default partitioner (murmur2, as the Java client and librdkafka's ``murmur2_random`` compute it): which
partition a key lands on. Used to route incident signals, to find a ticket's owner for ``/tickets/{id}`` and by
the in-memory broker."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

__all__ = ["partition_for"]


def partition_for(key: bytes, partitions: int) -> int:
    return int(murmur2(key) & 0x7FFFFFFF) % partitions
