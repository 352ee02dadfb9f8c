"""Shared helpers for tests: build v1 events, run a ticket through the core, collect outputs."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson

from escalator.core import (
    Emit,
    Event,
    PolicySet,
    TicketState,
    advance,
    apply,
    decode_record,
    load_policy_text,
    parse_rfc3339_ms,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"
_ids = itertools.count(1)


def example_policy() -> PolicySet:
    return load_policy_text(EXAMPLE_POLICY.read_text(), str(EXAMPLE_POLICY))


def ms(text: str) -> int:
    return parse_rfc3339_ms(text)


def envelope(
    etype: str,
    time: str,
    ticket: str = "T1",
    data: dict[str, Any] | None = None,
    event_id: str | None = None,
    source: str = "test",
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id or f"e{next(_ids)}",
        "source": source,
        "type": etype,
        "time": time,
        "subject": ticket,
        "data": data if data is not None else {},
    }


def ev(etype: str, time: str, ticket: str = "T1", event_id: str | None = None, **data: Any) -> Event:
    """A decoded event; ``etype`` may omit the ``ticket.`` prefix."""
    if not etype.startswith("ticket."):
        etype = f"ticket.{etype}"
    return decode_record(orjson.dumps(envelope(etype, time, ticket, data, event_id)))


def created(time: str, ticket: str = "T1", priority: str = "urgent", tier: str = "vip", **extra: Any) -> Event:
    return ev("created", time, ticket, priority=priority, requester={"id": f"req-{ticket}", "tier": tier}, **extra)


def comment(time: str, author: str = "agent", ticket: str = "T1", public: bool = True) -> Event:
    return ev("commented", time, ticket, author=author, public=public)


def status(time: str, value: str, ticket: str = "T1") -> Event:
    return ev("status_changed", time, ticket, status=value)


def run(
    events: list[Event], policy: PolicySet, until: str | None = None, state: TicketState | None = None
) -> tuple[TicketState | None, list[Any]]:
    """Apply events in order to one ticket, then advance to ``until``; returns (state, all commands)."""
    out: list[Any] = []
    for e in events:
        state, cmds = apply(state, e, policy)
        out.extend(cmds)
    if until is not None and state is not None:
        state, cmds = advance(state, ms(until), policy)
        out.extend(cmds)
    return state, out


def emitted(cmds: list[Any]) -> list[Emit]:
    return [c for c in cmds if isinstance(c, Emit)]


def ids(cmds: list[Any]) -> list[str]:
    return [c.id for c in emitted(cmds)]


def fired(cmds: list[Any]) -> dict[str, str]:
    """Output id -> its logical time."""
    return {c.id: c.event["time"] for c in emitted(cmds)}
