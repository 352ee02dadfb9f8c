"""Delivery reliability, pure except for the store: exponential backoff with full jitter, a circuit breaker per
destination, and the de-duplication log of deliveries (notification id + destination) that survives restarts.

Why a local RocksDB and not a compacted topic: the relay must answer "was this sent?" before every send, at once
and without a network round trip; a compacted topic would have to be read back into memory at every start, and on
the embedded development broker (Tansu), which does not compact, it would grow forever. A local store forgets by
age (``ESCALATOR_NOTIFY_DEDUP_RETENTION_SECONDS``), which bounds it. Its limit: it is per relay instance (see
docs/notify.md).
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = ["Backoff", "CircuitBreaker", "DeliveryLog", "MemoryDeliveryLog", "RocksDeliveryLog"]


@dataclass
class Backoff:
    """Delay before retry ``n`` (1-based): uniform in [0, min(max, initial * 2**(n-1))] ("full jitter")."""

    initial_ms: int
    max_ms: int
    rng: random.Random

    def delay_ms(self, retry: int) -> int:
        ceiling = min(self.max_ms, self.initial_ms * 2 ** min(retry - 1, 30))
        return int(self.rng.uniform(0, ceiling))


@dataclass
class _BreakerState:
    failures: int = 0
    opened_at: int | None = None
    probing: bool = False


class CircuitBreaker:
    """Per destination: closed until ``threshold`` consecutive failures, then open (every send refused at once) for
    ``cooldown_ms``; then half-open: one probe goes through -- success closes it, failure opens it again."""

    def __init__(self, threshold: int, cooldown_ms: int) -> None:
        self.threshold = threshold
        self.cooldown_ms = cooldown_ms
        self._states: dict[str, _BreakerState] = {}

    def state(self, key: str, now_ms: int) -> str:
        s = self._states.get(key)
        if s is None or s.opened_at is None:
            return "closed"
        return "half_open" if now_ms >= s.opened_at + self.cooldown_ms else "open"

    def allow(self, key: str, now_ms: int) -> bool:
        s = self._states.setdefault(key, _BreakerState())
        state = self.state(key, now_ms)
        if state == "closed":
            return True
        if state == "half_open" and not s.probing:
            s.probing = True
            return True
        return False

    def record(self, key: str, ok: bool, now_ms: int) -> None:
        s = self._states.setdefault(key, _BreakerState())
        if ok:
            self._states[key] = _BreakerState()
            return
        s.failures += 1
        if s.probing or s.failures >= self.threshold:
            s.opened_at, s.probing = now_ms, False


class DeliveryLog(Protocol):
    """What was delivered where (keyed by notification id + destination key), for a retention."""

    def seen(self, notice_id: str, destination: str) -> bool: ...
    def mark(self, notice_id: str, destination: str, now_ms: int) -> None: ...
    def purge(self, before_ms: int) -> int: ...
    def close(self) -> None: ...


def _key(notice_id: str, destination: str) -> bytes:
    return f"{destination}\0{notice_id}".encode()


class MemoryDeliveryLog:
    def __init__(self) -> None:
        self.entries: dict[bytes, int] = {}

    def seen(self, notice_id: str, destination: str) -> bool:
        return _key(notice_id, destination) in self.entries

    def mark(self, notice_id: str, destination: str, now_ms: int) -> None:
        self.entries[_key(notice_id, destination)] = now_ms

    def purge(self, before_ms: int) -> int:
        old = [k for k, at in self.entries.items() if at < before_ms]
        for k in old:
            del self.entries[k]
        return len(old)

    def close(self) -> None:
        pass


class RocksDeliveryLog:
    """The durable log: RocksDB (rocksdict, raw bytes) under ``path``; value = delivery instant (epoch ms)."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Options, Rdict

        path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), Options(raw_mode=True))

    def seen(self, notice_id: str, destination: str) -> bool:
        return self._db.get(_key(notice_id, destination)) is not None

    def mark(self, notice_id: str, destination: str, now_ms: int) -> None:
        self._db[_key(notice_id, destination)] = struct.pack(">q", now_ms)

    def purge(self, before_ms: int) -> int:
        old = [k for k, v in self._db.items() if struct.unpack(">q", v)[0] < before_ms]
        for k in old:
            del self._db[k]
        return len(old)

    def close(self) -> None:
        self._db.close()
