"""Delivery reliability, pure except for the store: exponential backoff with full jitter, a circuit breaker per
destination, and the de-duplication log of deliveries (notification id + destination) that survives restarts --
which also remembers where each PagerDuty trigger was delivered (alert key -> routing keys), so that the alert's
``resolve`` reaches exactly those services, after a restart too.

Why a local RocksDB and not a compacted topic: the relay must answer "was this sent?" before every send, at once
and without a network round trip; a compacted topic would have to be read back into memory at every start, and on
the embedded development broker (Tansu), which does not compact, it would grow forever. A local store forgets by
age (``ESCALATOR_NOTIFY_DEDUP_RETENTION_SECONDS``; trigger routes: ``ESCALATOR_NOTIFY_TRIGGER_RETENTION_SECONDS``),
which bounds it. Its limit: it is per relay instance (see docs/notify.md).
"""

from __future__ import annotations

import hashlib
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import orjson

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
    """What was delivered where (keyed by notification id + destination key), and where each alert's trigger was
    delivered (alert key -> (address, recipient) pairs), each for a retention."""

    def seen(self, notice_id: str, destination: str) -> bool: ...
    def mark(self, notice_id: str, destination: str, now_ms: int) -> None: ...
    def mark_trigger(self, alert_key: str, address: str, recipient: str, now_ms: int) -> None: ...
    def triggers(self, alert_key: str) -> list[tuple[str, str]]: ...
    def purge(self, before_ms: int, triggers_before_ms: int | None = None) -> int: ...
    def close(self) -> None: ...


#: Trigger routes live beside the deliveries under this prefix (a delivery key starts with a channel name).
_TRIGGER: bytes = b"trigger\0"


def _key(notice_id: str, destination: str) -> bytes:
    return f"{destination}\0{notice_id}".encode()


def _trigger_prefix(alert_key: str) -> bytes:
    return _TRIGGER + alert_key.encode() + b"\0"


def _trigger_key(alert_key: str, address: str) -> bytes:
    return _trigger_prefix(alert_key) + hashlib.sha256(address.encode()).hexdigest()[:20].encode()


def _expired(key: bytes, at: int, before_ms: int, triggers_before_ms: int | None) -> bool:
    if key.startswith(_TRIGGER):
        return at < (before_ms if triggers_before_ms is None else triggers_before_ms)
    return at < before_ms


class MemoryDeliveryLog:
    def __init__(self) -> None:
        self.entries: dict[bytes, int] = {}
        self.routes: dict[bytes, tuple[str, str]] = {}

    def seen(self, notice_id: str, destination: str) -> bool:
        return _key(notice_id, destination) in self.entries

    def mark(self, notice_id: str, destination: str, now_ms: int) -> None:
        self.entries[_key(notice_id, destination)] = now_ms

    def mark_trigger(self, alert_key: str, address: str, recipient: str, now_ms: int) -> None:
        key = _trigger_key(alert_key, address)
        self.entries[key] = now_ms
        self.routes[key] = (address, recipient)

    def triggers(self, alert_key: str) -> list[tuple[str, str]]:
        prefix = _trigger_prefix(alert_key)
        return [route for key, route in sorted(self.routes.items()) if key.startswith(prefix)]

    def purge(self, before_ms: int, triggers_before_ms: int | None = None) -> int:
        old = [k for k, at in self.entries.items() if _expired(k, at, before_ms, triggers_before_ms)]
        for k in old:
            del self.entries[k]
            self.routes.pop(k, None)
        return len(old)

    def close(self) -> None:
        pass


class RocksDeliveryLog:
    """The durable log: RocksDB (rocksdict, raw bytes) under ``path``; value = delivery instant (epoch ms, 8 bytes
    big-endian), for a trigger route followed by ``[address, recipient]`` as JSON."""

    def __init__(self, path: Path) -> None:
        from rocksdict import Options, Rdict

        path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), Options(raw_mode=True))

    def seen(self, notice_id: str, destination: str) -> bool:
        return self._db.get(_key(notice_id, destination)) is not None

    def mark(self, notice_id: str, destination: str, now_ms: int) -> None:
        self._db[_key(notice_id, destination)] = struct.pack(">q", now_ms)

    def mark_trigger(self, alert_key: str, address: str, recipient: str, now_ms: int) -> None:
        self._db[_trigger_key(alert_key, address)] = struct.pack(">q", now_ms) + orjson.dumps([address, recipient])

    def triggers(self, alert_key: str) -> list[tuple[str, str]]:
        prefix = _trigger_prefix(alert_key)
        out = []
        for key, value in self._db.items(from_key=prefix):
            if not cast(bytes, key).startswith(prefix):  # raw mode: keys are bytes
                break
            address, recipient = orjson.loads(value[8:])
            out.append((str(address), str(recipient)))
        return out

    def purge(self, before_ms: int, triggers_before_ms: int | None = None) -> int:
        old = [
            k
            for k, v in self._db.items()
            if _expired(cast(bytes, k), struct.unpack_from(">q", v)[0], before_ms, triggers_before_ms)
        ]
        for k in old:
            del self._db[k]
        return len(old)

    def close(self) -> None:
        self._db.close()
