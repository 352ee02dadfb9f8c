"""The demo scenario: realistic ticket traffic as v1 CloudEvents, each with the moment to send it (pure).

:func:`build_scenario` returns, for one demo run, a list of ``(send_at_offset_seconds, CloudEvent dict)``. It is timed
against ``examples/demo-policy.yaml`` (targets in seconds), so that within one minute of the start escalator
publishes SLA warnings and breaches, an L1 -> L2 -> L3 escalation with a repeat, each trigger (legal tag, low rating,
a requester writing three times without an answer, a request for a manager) and an incident (an outage burst on one
product: its member tickets escalated, later ones joining, then resolved by the status page's ``incident.resolved``).
A steady background of synthetic tickets (:mod:`escalator.synth`, one synthetic minute played as one
second) runs alongside.

Nothing here reads a clock or touches Kafka: the caller passes the start instant and the run id (which prefixes every
ticket id, so runs never collide), and ``escalator demo`` sends each event at its offset with ``time`` set to the
real send time. The unit tests run the same list through the pure core.
"""

from __future__ import annotations

import math
import random
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from .core.timefmt import format_ms, parse_rfc3339_ms
from .synth import lifecycle_events

__all__ = [
    "DEMO_POLICY",
    "SOURCE",
    "ScenarioOptions",
    "build_scenario",
    "new_run_id",
    "start_line",
    "status_subject",
    "stories",
    "ticket_id",
]

DEMO_POLICY = "examples/demo-policy.yaml"
SOURCE = "urn:escalator:demo"
RUN_ID = re.compile(r"^[a-z0-9]{1,8}$")
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
OUTAGE_PRODUCT = "mail"
OUTAGE_TICKETS = 10
Planned = tuple[float, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ScenarioOptions:
    """``duration_s``: length of one run (events planned later are left out); ``rate_per_min``: background tickets
    per minute (0: none); ``seed``: the background's random seed (default: derived from the run id)."""

    duration_s: float = 90.0
    rate_per_min: float = 6.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not self.duration_s > 0:
            raise ValueError("duration must be longer than 0 seconds")
        if not 0 <= self.rate_per_min <= 6000:
            raise ValueError("rate must lie between 0 and 6000 tickets per minute")


def new_run_id(rng: random.Random | None = None) -> str:
    """A short random run id (4 base-36 characters, e.g. ``k3f2``)."""
    if rng is None:
        return "".join(secrets.choice(_BASE36) for _ in range(4))
    return "".join(rng.choice(_BASE36) for _ in range(4))


def ticket_id(run_id: str, name: str) -> str:
    return f"T-{run_id}-{name}"


# ---------------------------------------------------------------------------------------------------------------
# The scripted stories. Offsets are seconds after the run's start; comments give what demo-policy.yaml makes of them.


def _created(
    priority: str, tier: str, product: str, channel: str, requester: str, tags: list[str] | None = None
) -> dict[str, Any]:
    return {
        "priority": priority,
        "status": "new",
        "requester": {"id": requester, "tier": tier},
        "group": {"mail": "tech", "web": "tech", "api": "tech", "mobile": "tech", "payments": "billing"}[product],
        "channel": channel,
        "tags": tags or [],
        "product": product,
    }


AGENT = {"author": "agent", "public": True}
NOTE = {"author": "agent", "public": False}
REQUESTER = {"author": "requester", "public": True}
Step = tuple[float, str, dict[str, Any]]

# name -> (what it shows, start offset, [(offset after the start, event type, data)])
_STORIES: dict[str, tuple[str, float, list[Step]]] = {
    "ok": (
        "high, answered after 12s: one warning, SLA met",
        0,
        [
            (0, "ticket.created", _created("high", "enterprise", "web", "chat", "cust-ada")),
            (12, "ticket.commented", AGENT),  # first response met (warning at 10s)
            (20, "ticket.commented", REQUESTER),  # next reply clock starts
            (27, "ticket.commented", AGENT),  # next reply met before its 10s warning
            (35, "ticket.status_changed", {"status": "solved"}),
            (45, "ticket.rated", {"score": 5, "comment": "quick and friendly"}),
        ],
    ),
    "late": (
        "normal, answered after 37s: warning at 15s, breach and L1 at 30s",
        1,
        [
            (0, "ticket.created", _created("normal", "standard", "api", "email", "cust-bob")),
            (1, "ticket.status_changed", {"status": "open"}),
            (37, "ticket.commented", AGENT),  # too late (30s), before L2 (45s)
            (50, "ticket.status_changed", {"status": "solved"}),
        ],
    ),
    "ladder": (
        "urgent VIP, nobody answers: warnings, breach, L1 20s -> L2 30s -> L3 40s, repeat 50s; acknowledged, answered",
        2,
        [
            (0, "ticket.created", _created("urgent", "vip", "payments", "phone", "cust-cyd")),
            (53, "ticket.escalation_acknowledged", {"by": "mgr-lee", "level": 3}),  # halts the repeat at 60s
            (64, "ticket.commented", AGENT),
            (78, "ticket.status_changed", {"status": "solved"}),
        ],
    ),
    "pending": (
        "normal, pending 30s waiting for the customer: the clock pauses, warning at 45s instead of 15s",
        3,
        [
            (0, "ticket.created", _created("normal", "standard", "mobile", "email", "cust-dee")),
            (2, "ticket.status_changed", {"status": "open"}),
            (5, "ticket.commented", NOTE),  # a private note changes no clock
            (7, "ticket.status_changed", {"status": "pending"}),  # 7s used
            (37, "ticket.status_changed", {"status": "open"}),  # the customer sent the logs
            (37, "ticket.commented", REQUESTER),
            (47, "ticket.commented", AGENT),  # 17s of open time: met
            (60, "ticket.status_changed", {"status": "solved"}),
        ],
    ),
    "legal": (
        "normal, tagged legal after 5s: functional escalation L2 to team legal",
        4,
        [
            (0, "ticket.created", _created("normal", "enterprise", "web", "email", "cust-eve")),
            (5, "ticket.updated", {"changes": {"tags": ["legal", "gdpr-request"]}}),
            (10, "ticket.commented", AGENT),
            (40, "ticket.status_changed", {"status": "solved"}),
        ],
    ),
    "rating": (
        "low, solved in 7s but rated 1 of 5: low-csat escalation L2",
        5,
        [
            (0, "ticket.created", _created("low", "standard", "web", "chat", "cust-fay")),
            (4, "ticket.commented", AGENT),
            (7, "ticket.status_changed", {"status": "solved"}),
            (15, "ticket.rated", {"score": 1, "comment": "closed without fixing anything"}),
        ],
    ),
    "chase": (
        "normal, the requester writes 3 times without an answer: repeated-contact escalation L1",
        6,
        [
            (0, "ticket.created", _created("normal", "standard", "api", "web", "cust-gus")),
            (8, "ticket.commented", REQUESTER),
            (16, "ticket.commented", REQUESTER),
            (23, "ticket.commented", REQUESTER),  # three unanswered: the trigger fires
            (27, "ticket.commented", AGENT),  # first response met (warning at 15s)
            (50, "ticket.status_changed", {"status": "solved"}),
        ],
    ),
    "manager": (
        "high, the requester asks for a manager: manager-requested escalation L2",
        7,
        [
            (0, "ticket.created", _created("high", "standard", "mobile", "chat", "cust-hal")),
            (6, "ticket.commented", AGENT),
            (13, "ticket.commented", REQUESTER),
            (14, "ticket.escalation_requested", {"reason": "I want to speak to a manager", "by": "cust-hal"}),
            (24, "ticket.commented", AGENT),  # next reply met, after its 10s warning
            (30, "ticket.escalation_acknowledged", {"by": "mgr-lee"}),
            (45, "ticket.status_changed", {"status": "solved"}),
        ],
    ),
    "functional": (
        "normal, the agent asks the billing experts: a functional escalation, de-escalated once they took over",
        11,
        [
            (0, "ticket.created", _created("normal", "standard", "payments", "email", "cust-ivy")),
            (5, "ticket.commented", AGENT),
            (9, "ticket.escalation_requested", {"by": "agent", "team": "billing-experts", "reason": "refund > limit"}),
            (26, "ticket.deescalated", {"by": "lead-kim", "reason": "the billing experts took it over"}),
            (38, "ticket.status_changed", {"status": "solved"}),
        ],
    ),
}
_OUTAGE_START = 24.0
_OUTAGE_EVERY = 1.5
_OUTAGE_OVER = 46.0  # the status page says the outage is over (the incident was detected at 34.5s)


def _outage_story(i: int) -> tuple[str, float, list[Step]]:
    channel = ("email", "chat", "web")[i % 3]
    start = _OUTAGE_START + i * _OUTAGE_EVERY
    return (
        f"outage burst {i + 1}/{OUTAGE_TICKETS} on product {OUTAGE_PRODUCT}: 8 within 30s make an incident",
        start,
        [
            (0, "ticket.created", _created("normal", "standard", OUTAGE_PRODUCT, channel, f"cust-m{i + 1:02d}")),
            (9, "ticket.commented", AGENT),  # "we know, we are on it": answered in time
            (72 + i * 0.5 - start, "ticket.status_changed", {"status": "solved"}),
        ],
    )


def status_subject(run_id: str) -> str:
    """The subject of the status page's ``incident.resolved`` in one run (not a ticket)."""
    return f"S-{run_id}-status-page"


def _status_page(run_id: str) -> tuple[float, str, str, dict[str, Any]]:
    """The status page ends the outage: the incident open for the product is resolved (no ticket's event)."""
    data = {"rule": "outage", "group_value": OUTAGE_PRODUCT, "by": "status-page", "reason": "mail is back up"}
    return _OUTAGE_OVER, status_subject(run_id), "incident.resolved", data


def _all_stories() -> Iterator[tuple[str, tuple[str, float, list[Step]]]]:
    yield from _STORIES.items()
    for i in range(OUTAGE_TICKETS):
        yield f"{OUTAGE_PRODUCT}{i + 1:02d}", _outage_story(i)


def stories(run_id: str) -> dict[str, str]:
    """Ticket id -> what its scripted story shows (background tickets are not listed)."""
    return {ticket_id(run_id, name): text for name, (text, _, _) in _all_stories()}


# ---------------------------------------------------------------------------------------------------------------
# Building a run


def _check_run_id(run_id: str) -> None:
    if not RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r}: use 1 to 8 lowercase letters or digits")


def _background(run_id: str, options: ScenarioOptions) -> Iterator[tuple[float, str, str, dict[str, Any]]]:
    """(offset, ticket, type, data): synthetic lifecycles with one synthetic minute played as one second."""
    if options.rate_per_min <= 0:
        return
    seed = options.seed if options.seed is not None else int(run_id, 36)
    # per_hour synthetic tickets per synthetic hour == rate_per_min per demo minute
    for event in lifecycle_events(10**9, seed=seed, start_ms=0, per_hour=options.rate_per_min, prefix="B"):
        offset = parse_rfc3339_ms(event["time"]) / 60_000
        if offset > options.duration_s:
            return  # the stream is in time order: everything after is later still
        tid = ticket_id(run_id, f"b{int(event['subject'][1:]) + 1:03d}")
        yield offset, tid, event["type"], event["data"]


def build_scenario(start_ms: int, run_id: str, options: ScenarioOptions | None = None) -> list[Planned]:
    """Every event of one demo run, in send order, as ``(seconds after start_ms, CloudEvent)``.

    Each event's ``time`` is ``start_ms`` plus its offset (the sender replaces it with the real send time); ids are
    ``{ticket}:{n}`` with source :data:`SOURCE`; ticket ids start with ``T-{run_id}-``.
    """
    _check_run_id(run_id)
    options = options or ScenarioOptions()
    rows: list[tuple[float, str, str, dict[str, Any]]] = []
    for name, (_, start, steps) in _all_stories():
        tid = ticket_id(run_id, name)
        rows.extend((start + offset, tid, etype, data) for offset, etype, data in steps)
    rows.append(_status_page(run_id))
    rows.extend(_background(run_id, options))
    rows = [r for r in rows if r[0] <= options.duration_s]
    rows.sort(key=lambda r: r[0])  # stable: a ticket's events keep their order
    counters: dict[str, int] = {}
    out: list[Planned] = []
    for offset, tid, etype, data in rows:
        n = counters[tid] = counters.get(tid, 0) + 1
        at = round(offset, 3)
        out.append(
            (
                at,
                {
                    "specversion": "1.0",
                    "id": f"{tid}:{n}",
                    "source": SOURCE,
                    "type": etype,
                    "subject": tid,
                    "time": format_ms(start_ms + math.floor(at * 1000 + 0.5)),
                    "datacontenttype": "application/json",
                    "data": data,
                },
            )
        )
    return out


def _clock(at_ms: int, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(at_ms / 1000, tz).strftime("%H:%M:%S")


def start_line(event: Mapping[str, Any], story_texts: Mapping[str, str], at_ms: int, tz: tzinfo | None = UTC) -> str:
    """The line ``escalator demo`` prints when it sends a ``ticket.created`` (``tz=None``: local time)."""
    data = event.get("data") or {}
    tid = str(event.get("subject", "?"))
    if event.get("type") == "incident.resolved":
        what = f"{data.get('by')} resolves the {data.get('rule')} incident of {data.get('group_value')}"
        return f"{_clock(at_ms, tz)}  {tid:<16}  {what}: {data.get('reason')}"
    requester = data.get("requester") or {}
    what = story_texts.get(tid) or "background ticket (synthetic lifecycle)"
    attrs = f"{data.get('priority', '?'):<6} {requester.get('tier', '?'):<10} {data.get('product') or '-':<8}"
    return f"{_clock(at_ms, tz)}  {tid:<16}  {attrs}  {what}"
