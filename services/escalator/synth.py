"""Synthetic but realistic ticket lifecycles, as v1 CloudEvents (for benchmarks, load tests and examples).

Tickets arrive as a Poisson process; each gets a priority and requester tier, is answered (or not) after a
log-normal delay, goes through requester follow-ups, pending periods, re-assignments, a solve, sometimes a reopen, a
rating and a close. ``random.Random(seed)`` makes every stream reproducible.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from typing import Any

from .core.timefmt import format_ms

__all__ = ["lifecycle_events"]

_PRIORITIES = (("low", 0.25), ("normal", 0.5), ("high", 0.18), ("urgent", 0.07))
_TIERS = (("standard", 0.7), ("enterprise", 0.2), ("vip", 0.1))
_GROUPS = ("billing", "tech", "accounts", "shipping")
_PRODUCTS = ("mail", "web", "mobile", "api", "payments")
_MIN = 60_000


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rng.random()
    for value, p in table:
        x -= p
        if x <= 0:
            return value
    return table[-1][0]


def _ticket(rng: random.Random, tid: str, t: int) -> list[tuple[int, str, dict[str, Any]]]:
    """One ticket's events as (time_ms, type, data)."""
    out: list[tuple[int, str, dict[str, Any]]] = []
    priority = _pick(rng, _PRIORITIES)
    tier = _pick(rng, _TIERS)
    tags = ["legal"] if rng.random() < 0.01 else []
    out.append(
        (
            t,
            "ticket.created",
            {
                "priority": priority,
                "status": "new",
                "requester": {"id": f"cust-{rng.randrange(5000)}", "tier": tier},
                "group": rng.choice(_GROUPS),
                "channel": rng.choice(("email", "web", "chat")),
                "tags": tags,
                "product": rng.choice(_PRODUCTS),
            },
        )
    )
    # first response: log-normal around 20 minutes, sometimes hours
    t += int(rng.lognormvariate(3.0, 1.0) * _MIN)
    out.append((t, "ticket.status_changed", {"status": "open"}))
    out.append((t + 1000, "ticket.commented", {"author": "agent", "public": True}))
    t += 1000
    for _ in range(rng.choice((0, 1, 1, 2, 3))):
        t += int(rng.expovariate(1 / 90) * _MIN) + 1000
        if rng.random() < 0.3:
            out.append((t, "ticket.status_changed", {"status": "pending"}))
            t += int(rng.expovariate(1 / 240) * _MIN) + 1000
            out.append((t, "ticket.status_changed", {"status": "open"}))
        out.append((t, "ticket.commented", {"author": "requester", "public": True}))
        if rng.random() < 0.2:
            t += 1000
            out.append((t, "ticket.commented", {"author": "requester", "public": True}))
        t += int(rng.lognormvariate(3.2, 1.0) * _MIN) + 1000
        if rng.random() < 0.15:
            out.append((t, "ticket.updated", {"changes": {"group": rng.choice(_GROUPS)}}))
            t += 1000
        if rng.random() < 0.1:
            out.append((t, "ticket.commented", {"author": "agent", "public": False}))
            t += 1000
        out.append((t, "ticket.commented", {"author": "agent", "public": True}))
    if rng.random() < 0.05:
        out.append((t + 1000, "ticket.updated", {"changes": {"priority": "urgent"}}))
        t += 1000
    t += int(rng.expovariate(1 / 120) * _MIN) + 1000
    out.append((t, "ticket.status_changed", {"status": "solved"}))
    if rng.random() < 0.08:
        t += int(rng.expovariate(1 / 600) * _MIN) + 1000
        out.append((t, "ticket.status_changed", {"status": "open"}))
        t += int(rng.lognormvariate(3.0, 1.0) * _MIN) + 1000
        out.append((t, "ticket.commented", {"author": "agent", "public": True}))
        out.append((t + 1000, "ticket.status_changed", {"status": "solved"}))
        t += 1000
    if rng.random() < 0.3:
        t += int(rng.expovariate(1 / 600) * _MIN) + 1000
        out.append((t, "ticket.rated", {"score": rng.choice((1, 2, 3, 4, 5, 5, 5))}))
    t += 3 * 86_400_000
    out.append((t, "ticket.status_changed", {"status": "closed"}))
    return out


def lifecycle_events(
    tickets: int,
    *,
    seed: int = 7,
    start_ms: int = 1_795_000_000_000,
    per_hour: float = 120.0,
    source: str = "synth",
    prefix: str = "S",
) -> Iterator[dict[str, Any]]:
    """CloudEvents for ``tickets`` tickets, interleaved in time order (lazily merged: memory ~ open tickets)."""
    rng = random.Random(seed)
    heap: list[tuple[int, int, str, str, dict[str, Any]]] = []
    seq = 0
    t = start_ms
    made = 0
    while made < tickets or heap:
        next_arrival = t + int(rng.expovariate(per_hour / 3_600_000)) + 1 if made < tickets else None
        while heap and (next_arrival is None or heap[0][0] < next_arrival):
            at, _, tid, etype, data = heapq.heappop(heap)
            seq += 1
            yield {
                "specversion": "1.0",
                "id": f"{tid}-{seq}",
                "source": source,
                "type": etype,
                "time": format_ms(at),
                "subject": tid,
                "data": data,
            }
        if next_arrival is None:
            break
        t = next_arrival
        tid = f"{prefix}{made:07d}"
        made += 1
        for i, (at, etype, data) in enumerate(_ticket(rng, tid, t)):
            heapq.heappush(heap, (at, i, tid, etype, data))
