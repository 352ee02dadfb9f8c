"""Per-source rate limits: a token bucket per source, on an injected clock (no wall-clock reads here)."""

from __future__ import annotations

import math

__all__ = ["RateLimiter", "TokenBucket"]


class TokenBucket:
    """``burst`` requests at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int, now_ms: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at_ms = now_ms

    def take(self, now_ms: int) -> float:
        """Take one token: 0.0 if there was one, else the seconds until there will be (nothing is taken)."""
        elapsed = max(0, now_ms - self._at_ms) / 1000
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._at_ms = max(self._at_ms, now_ms)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


class RateLimiter:
    """One bucket per source name (the sources are a fixed, small set: the label stays bounded)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def retry_after(self, source: str, now_ms: int) -> int:
        """0 if ``source`` may go on now, else the whole seconds to wait (``Retry-After``)."""
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = TokenBucket(self.rate, self.burst, now_ms)
        wait = bucket.take(now_ms)
        return 0 if wait == 0.0 else max(1, math.ceil(wait))
