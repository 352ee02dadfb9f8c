"""Per-ticket SLA state: the ticket's attributes, its metric clocks and trigger bookkeeping.

The engine changes only a state it owns: :func:`escalator.core.engine.apply` clones before it changes anything
(clocks are copied and then changed in place; other containers are replaced, never changed, so clones share them),
unless the caller hands its state over (``in_place``), so a caller's state is never altered behind its back.
``to_dict``/``from_dict`` give a readable, versioned, JSON-ready form; ``to_row``/``from_row`` a positional one (no
field names, seen ids stored once with their common prefix), about 45 % smaller, for the service's state store and
changelog, where every byte is held per tracked ticket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from .vocabulary import PHASES

__all__ = [
    "MAX_ACKS",
    "MAX_FIELDS",
    "MAX_FIELD_KEY",
    "MAX_FIELD_TEXT",
    "MAX_INSTANCES",
    "MAX_OPEN_ESCALATIONS",
    "MAX_TAGS",
    "NOT_NOTED",
    "NO_AGREEMENTS",
    "NO_ESCALATIONS",
    "NO_FIELDS",
    "NO_FIRES",
    "NO_THRESHOLD",
    "PHASES",
    "ROW_FORMAT",
    "STATE_FIELDS",
    "STATE_FORMAT",
    "Clock",
    "EscalationRecord",
    "TicketFacts",
    "TicketState",
    "has_text",
    "owned_agreements",
]

STATE_FORMAT: Final = 1
# Per-ticket bounds: a ticket with any number of events keeps a state of bounded size (docs/engine.md, "Bounds").
MAX_FIELDS: Final = 100  # custom fields kept (the first ones, in the order they were set)
MAX_FIELD_KEY: Final = 100  # characters of a field's name
MAX_FIELD_TEXT: Final = 1000  # characters of a text field's value
MAX_TAGS: Final = 100
MAX_ACKS: Final = 20  # acknowledgements remembered per clock cycle
MAX_OPEN_ESCALATIONS: Final = 100  # open escalation records (the oldest give way)
MAX_INSTANCES: Final = 50  # agreement instances (groups visited; the oldest ended ones give way)
ROW_FORMAT: Final = 2  # the positional form of to_row/from_row
RUNNING: Final = "running"
ACHIEVED: Final = "achieved"
STOPPED: Final = "stopped"
CANCELLED: Final = "cancelled"
#: ``Clock.next_at_ms`` when the clock has no next threshold (paused, ended, or every threshold fired): far outside
#: any instant (the year -73 million), and in the compiled core's unboxed integer range.
NO_THRESHOLD: Final = -(1 << 61)
#: ``TicketState.next_hint`` when the engine has not noted the ticket's next threshold instant.
NOT_NOTED: Final = NO_THRESHOLD + 1


@dataclass(slots=True, init=False)
class Clock:
    """One cycle of one metric's clock.

    ``elapsed_ms`` is the open time accumulated up to the instant ``mark_ms``; while the clock runs and the ticket is
    not paused it keeps accumulating calendar open time from ``mark_ms`` on. ``next_at_ms``/``next_key`` cache the
    next threshold (valid for the policy version stamped on the ticket).
    """

    metric: str
    cycle: int
    phase: str
    started_ms: int
    elapsed_ms: int
    mark_ms: int
    fired: tuple[str, ...] = ()
    breached_at_ms: int | None = None
    ended_ms: int | None = None
    acks: tuple[int, ...] = ()  # elapsed_ms at each acknowledgement of this cycle's escalations
    level: int = 0  # highest escalation level raised in this cycle
    next_at_ms: int = NO_THRESHOLD  # NO_THRESHOLD: none (a plain int: the compiled core reads it without unboxing)
    next_key: str | None = None
    skipped: tuple[str, ...] = ()  # thresholds passed over by ``catch_up: latest`` (also in ``fired``)

    def __init__(
        self,
        metric: str,
        cycle: int,
        phase: str,
        started_ms: int,
        elapsed_ms: int,
        mark_ms: int,
        fired: tuple[str, ...] = (),
        breached_at_ms: int | None = None,
        ended_ms: int | None = None,
        acks: tuple[int, ...] = (),
        level: int = 0,
        next_at_ms: int = NO_THRESHOLD,
        next_key: str | None = None,
        skipped: tuple[str, ...] = (),
    ) -> None:
        self.metric = metric
        self.cycle = cycle
        self.phase = phase
        self.started_ms = started_ms
        self.elapsed_ms = elapsed_ms
        self.mark_ms = mark_ms
        self.fired = fired
        self.breached_at_ms = breached_at_ms
        self.ended_ms = ended_ms
        self.acks = acks
        self.level = level
        self.next_at_ms = next_at_ms
        self.next_key = next_key
        self.skipped = skipped

    def planned(self) -> bool:
        """Running, or holding a next threshold: the clocks the engine re-plans and changes in place (an ended one
        is changed only by a reopen, which copies it first)."""
        return self.phase == RUNNING or self.next_at_ms != NO_THRESHOLD

    def copy(self) -> Clock:
        return Clock(
            self.metric,
            self.cycle,
            self.phase,
            self.started_ms,
            self.elapsed_ms,
            self.mark_ms,
            self.fired,
            self.breached_at_ms,
            self.ended_ms,
            self.acks,
            self.level,
            self.next_at_ms,
            self.next_key,
            self.skipped,
        )

    def to_list(self) -> list[Any]:
        """Positional; ``skipped`` only when there is one, so clocks of policies without catch-up control keep the
        13-element form written before it existed (both forms read back)."""
        out = [
            self.metric,
            self.cycle,
            self.phase,
            self.started_ms,
            self.elapsed_ms,
            self.mark_ms,
            list(self.fired),
            self.breached_at_ms,
            self.ended_ms,
            list(self.acks),
            self.level,
            None if self.next_at_ms == NO_THRESHOLD else self.next_at_ms,
            self.next_key,
        ]
        if self.skipped:
            out.append(list(self.skipped))
        return out

    @classmethod
    def from_list(cls, v: list[Any]) -> Clock:
        skipped = tuple(v[13]) if len(v) > 13 else ()
        return cls(
            v[0],
            v[1],
            v[2],
            v[3],
            v[4],
            v[5],
            tuple(v[6]),
            v[7],
            v[8],
            tuple(v[9]),
            v[10],
            NO_THRESHOLD if v[11] is None else v[11],
            v[12],
            skipped,
        )


@dataclass(slots=True, init=False)
class EscalationRecord:
    """An escalation raised for the ticket, while open and (a few) after it was resolved. Treated as immutable: a
    change makes a new record. ``cause``: ``clock:<metric>:<cycle>``, ``trigger:<id>`` or ``request``."""

    id: str
    level: int
    cause: str
    raised_ms: int
    acked_by: str | None = None
    acked_ms: int | None = None
    resolved_ms: int | None = None
    resolved: str | None = None  # why (a ResolutionReason)
    resolved_by: str | None = None

    def __init__(
        self,
        id: str,
        level: int,
        cause: str,
        raised_ms: int,
        acked_by: str | None = None,
        acked_ms: int | None = None,
        resolved_ms: int | None = None,
        resolved: str | None = None,
        resolved_by: str | None = None,
    ) -> None:
        self.id = id
        self.level = level
        self.cause = cause
        self.raised_ms = raised_ms
        self.acked_by = acked_by
        self.acked_ms = acked_ms
        self.resolved_ms = resolved_ms
        self.resolved = resolved
        self.resolved_by = resolved_by

    def to_list(self) -> list[Any]:
        return [
            self.id,
            self.level,
            self.cause,
            self.raised_ms,
            self.acked_by,
            self.acked_ms,
            self.resolved_ms,
            self.resolved,
            self.resolved_by,
        ]

    @classmethod
    def from_list(cls, v: list[Any]) -> EscalationRecord:
        return cls(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8])


def has_text(texts: tuple[str, ...], text: str) -> bool:
    """``text in texts``, each compared as text (compiled: a length test and a memcmp; a tuple's ``in`` goes through
    Python's rich comparison item by item). For the per-event tests of a ticket's seen ids, fired thresholds and
    flags."""
    for t in texts:
        if t == text:
            return True
    return False


# The empty containers every new state starts with: shared, as clones share their containers, because the engine
# replaces a ticket's fields, trigger counts and escalation records and never changes them (tests/conftest.py checks
# that these stay empty through the whole suite). Each state holding its own three empties cost three allocations
# per ticket and three more objects for the collector to walk.
NO_FIELDS: Final[dict[str, Any]] = {}
NO_FIRES: Final[dict[str, int]] = {}
NO_ESCALATIONS: Final[list[EscalationRecord]] = []
#: Agreement instances: a ticket without agreements (most of them) holds this one; the engine gives a state a dict
#: of its own (``owned_agreements``) before it adds an instance, and removes one only from a dict that has it.
NO_AGREEMENTS: Final[dict[str, TicketState]] = {}


def owned_agreements(s: TicketState) -> dict[str, TicketState]:
    """The state's agreement instances as a dict it alone holds, ready to be added to."""
    agreements = s.agreements
    if agreements is NO_AGREEMENTS:
        agreements = s.agreements = {}
    return agreements


def _owned_clocks(clocks: list[Clock]) -> list[Clock]:
    """A clone's clocks: a list of its own, in which each clock the engine may change in place is a copy of its
    own (the others are shared)."""
    return [c.copy() if c.planned() else c for c in clocks]


@dataclass(slots=True, init=False)
class TicketFacts:
    """The ticket's facts an output quotes (its wording, recipients and snapshot), taken when the engine decides to
    emit it: the output is worded later, when it is first read, from these values -- never from the state, which
    the events that follow may change (in place)."""

    ticket_id: str
    instance: str | None
    priority: str
    status: str
    group: str | None
    assignee: str | None
    requester_id: str | None
    requester_tier: str
    tags: tuple[str, ...]

    def __init__(
        self,
        ticket_id: str,
        instance: str | None,
        priority: str,
        status: str,
        group: str | None,
        assignee: str | None,
        requester_id: str | None,
        requester_tier: str,
        tags: tuple[str, ...],
    ) -> None:
        self.ticket_id = ticket_id
        self.instance = instance
        self.priority = priority
        self.status = status
        self.group = group
        self.assignee = assignee
        self.requester_id = requester_id
        self.requester_tier = requester_tier
        self.tags = tags

    def snapshot(self) -> dict[str, Any]:
        """The ticket snapshot carried by escalations."""
        return {
            "priority": self.priority,
            "status": self.status,
            "group": self.group,
            "assignee": self.assignee,
            "requester_tier": self.requester_tier,
            "tags": list(self.tags),
        }


@dataclass(slots=True, init=False)
class TicketState:
    ticket_id: str
    created_ms: int
    priority: str = "normal"
    status: str = "new"
    requester_id: str | None = None
    requester_tier: str = "standard"
    group: str | None = None
    assignee: str | None = None
    channel: str | None = None
    product: str | None = None
    category: str | None = None
    tags: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)
    reopen_count: int = 0
    reassignment_count: int = 0
    unanswered: int = 0  # public requester messages since the last public agent comment
    agent_replies: int = 0
    rating: int | None = None
    escalation_requested: bool = False
    policy_id: str | None = None
    policy_version: str = ""
    # one clock per metric (the metric's current cycle), in the order the metrics first started: a list, not a dict
    # by metric -- a ticket has a handful, and a list is walked and searched for less than a dict costs
    clocks: list[Clock] = field(default_factory=list)
    triggers_on: tuple[str, ...] = ()
    trigger_fires: dict[str, int] = field(default_factory=dict)
    seen: tuple[str, ...] = ()
    watermark_ms: int = 0
    closed_ms: int | None = None
    last_event_ms: int = 0
    flags: tuple[str, ...] = ()
    requester_timezone: str | None = None  # for calendars read in the requester's zone
    # Agreements beside the customer SLA: one state per instance ("ola", "ola@network"), holding that instance's
    # policy and clocks; its ticket attributes are copied from this state whenever it is used.
    agreements: dict[str, TicketState] = field(default_factory=dict)
    instance: str | None = None  # set on an agreement instance's state: the instance key
    # escalations of this clock set (policies with resolve_events): every open one and the last few resolved
    escalations: list[EscalationRecord] = field(default_factory=list)
    trace: str | None = None  # the W3C traceparent of the latest event: carried by every output it leads to
    # the worker's record of applied events and outputs, the most recent few: one compact JSON entry per line
    # (core/timeline.py; one string, so storing a state neither parses nor rebuilds the entries)
    timeline: str = ""
    # Not part of the state (never stored or compared; a clone, whose clocks are equal, keeps it): the instant of the
    # ticket's next threshold as the engine's last pass over its clocks found it at the end of apply/advance
    # (NO_THRESHOLD: none), so that next_deadline and the next apply need not walk the clocks again; NOT_NOTED after
    # anything else changed the clocks.
    next_hint: int = field(default=NOT_NOTED, compare=False, repr=False)
    # Not part of the state either (a clone keeps it): the version of the policy file whose triggers the engine last
    # tested on the ticket ("": none, e.g. a state read back from its stored form). While the version applying is
    # that one, ``triggers_on`` holds exactly the triggers whose condition held then, so an event need only test
    # the triggers that read something the event can change.
    triggers_version: str = field(default="", compare=False, repr=False)

    def __init__(
        self,
        ticket_id: str,
        created_ms: int,
        priority: str = "normal",
        status: str = "new",
        requester_id: str | None = None,
        requester_tier: str = "standard",
        group: str | None = None,
        assignee: str | None = None,
        channel: str | None = None,
        product: str | None = None,
        category: str | None = None,
        tags: tuple[str, ...] = (),
        fields: dict[str, Any] | None = None,
        reopen_count: int = 0,
        reassignment_count: int = 0,
        unanswered: int = 0,
        agent_replies: int = 0,
        rating: int | None = None,
        escalation_requested: bool = False,
        policy_id: str | None = None,
        policy_version: str = "",
        clocks: list[Clock] | None = None,
        triggers_on: tuple[str, ...] = (),
        trigger_fires: dict[str, int] | None = None,
        seen: tuple[str, ...] = (),
        watermark_ms: int = 0,
        closed_ms: int | None = None,
        last_event_ms: int = 0,
        flags: tuple[str, ...] = (),
        requester_timezone: str | None = None,
        agreements: dict[str, TicketState] | None = None,
        instance: str | None = None,
        escalations: list[EscalationRecord] | None = None,
        trace: str | None = None,
        timeline: str = "",
    ) -> None:
        self.ticket_id = ticket_id
        self.created_ms = created_ms
        self.priority = priority
        self.status = status
        self.requester_id = requester_id
        self.requester_tier = requester_tier
        self.group = group
        self.assignee = assignee
        self.channel = channel
        self.product = product
        self.category = category
        self.tags = tags
        self.fields = fields if fields is not None else NO_FIELDS
        self.reopen_count = reopen_count
        self.reassignment_count = reassignment_count
        self.unanswered = unanswered
        self.agent_replies = agent_replies
        self.rating = rating
        self.escalation_requested = escalation_requested
        self.policy_id = policy_id
        self.policy_version = policy_version
        self.clocks = clocks if clocks is not None else []
        self.triggers_on = triggers_on
        self.trigger_fires = trigger_fires if trigger_fires is not None else NO_FIRES
        self.seen = seen
        self.watermark_ms = watermark_ms
        self.closed_ms = closed_ms
        self.last_event_ms = last_event_ms
        self.flags = flags
        self.requester_timezone = requester_timezone
        self.agreements = agreements if agreements is not None else NO_AGREEMENTS
        self.instance = instance
        self.escalations = escalations if escalations is not None else NO_ESCALATIONS
        self.trace = trace
        self.timeline = timeline
        self.next_hint = NOT_NOTED
        self.triggers_version = ""

    def clone(self) -> TicketState:
        """A copy the engine may change. The engine changes a running clock in place (one with a next threshold is
        running), so those are copied; an ended clock is changed only by a reopen, which copies it first, so ended
        clocks are shared, as are the containers the engine replaces instead of changing (fields, tags, escalation
        records...). The clocks list and agreements dict are new: the engine adds to them."""
        copy = TicketState(
            self.ticket_id,
            self.created_ms,
            self.priority,
            self.status,
            self.requester_id,
            self.requester_tier,
            self.group,
            self.assignee,
            self.channel,
            self.product,
            self.category,
            self.tags,
            self.fields,
            self.reopen_count,
            self.reassignment_count,
            self.unanswered,
            self.agent_replies,
            self.rating,
            self.escalation_requested,
            self.policy_id,
            self.policy_version,
            _owned_clocks(self.clocks),
            self.triggers_on,
            self.trigger_fires,
            self.seen,
            self.watermark_ms,
            self.closed_ms,
            self.last_event_ms,
            self.flags,
            self.requester_timezone,
            {k: a.clone() for k, a in self.agreements.items()} if self.agreements else NO_AGREEMENTS,
            self.instance,
            self.escalations,
            self.trace,
            self.timeline,
        )
        copy.next_hint = self.next_hint
        copy.triggers_version = self.triggers_version
        return copy

    def clock(self, metric: str) -> Clock | None:
        """The metric's clock (its current cycle), if it has one."""
        for c in self.clocks:
            if c.metric == metric:
                return c
        return None

    def put_clock(self, clock: Clock) -> None:
        """Make ``clock`` its metric's clock: in the place of the one it replaces, or after the others."""
        clocks = self.clocks
        metric = clock.metric
        for i in range(len(clocks)):
            if clocks[i].metric == metric:
                clocks[i] = clock
                return
        clocks.append(clock)

    def snapshot(self) -> dict[str, Any]:
        """The ticket snapshot carried by escalations."""
        return self.facts().snapshot()

    def facts(self) -> TicketFacts:
        """What an output quotes of the ticket, as it is now."""
        return TicketFacts(
            self.ticket_id,
            self.instance,
            self.priority,
            self.status,
            self.group,
            self.assignee,
            self.requester_id,
            self.requester_tier,
            self.tags,
        )

    def attribute(self, name: str) -> Any:
        """An attribute by policy name (``product``, ``requester_tier``, ``fields.region`` ...)."""
        if name.startswith("fields."):
            return self.fields.get(name[len("fields.") :])
        return getattr(self, name, None)

    def to_dict(self) -> dict[str, Any]:
        """The readable, JSON-ready form (``STATE_FORMAT``): every field by name (clocks as lists, tuples as lists).
        Derived from :data:`STATE_FIELDS`, so a new field needs no change here."""
        d: dict[str, Any] = {"v": STATE_FORMAT}
        for name in STATE_FIELDS:
            value = getattr(self, name)
            if name == "clocks":
                value = [c.to_list() for c in self.clocks]
            elif name == "agreements":
                value = {k: a.to_dict() for k, a in self.agreements.items()}
            elif name == "escalations":
                value = [e.to_list() for e in self.escalations]
            elif isinstance(value, tuple):
                value = list(value)
            d[name] = value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TicketState:
        if d.get("v") != STATE_FORMAT:
            raise ValueError(f"unsupported ticket state format {d.get('v')!r}")
        s = cls(d["ticket_id"], d["created_ms"])
        for name in STATE_FIELDS[2:]:
            if name not in d:  # a field added after the state was written: keep its default
                continue
            value = d[name]
            if name == "clocks":
                value = [Clock.from_list(v) for v in value]
            elif name == "agreements":
                value = {k: TicketState.from_dict(v) for k, v in value.items()}
            elif name == "escalations":
                value = [EscalationRecord.from_list(v) for v in value]
            elif name in _TUPLE_FIELDS:
                value = tuple(value)
            elif name in _DICT_FIELDS:
                value = dict(value)
            setattr(s, name, value)
        return s

    def to_row(self) -> list[Any]:
        """The positional, JSON-ready form (``ROW_FORMAT``); :meth:`from_row` reverses it exactly."""
        seen = self.seen
        prefix = _common_prefix(seen) if len(seen) > 1 else ""
        cut = len(prefix)
        row = [
            ROW_FORMAT,
            self.ticket_id,
            self.created_ms,
            self.priority,
            self.status,
            self.requester_id,
            self.requester_tier,
            self.group,
            self.assignee,
            self.channel,
            self.product,
            self.category,
            list(self.tags),
            self.fields,
            self.reopen_count,
            self.reassignment_count,
            self.unanswered,
            self.agent_replies,
            self.rating,
            self.escalation_requested,
            self.policy_id,
            self.policy_version,
            [c.to_list() for c in self.clocks],
            list(self.triggers_on),
            self.trigger_fires,
            prefix,
            [k[cut:] for k in seen],
            self.watermark_ms,
            self.closed_ms,
            self.last_event_ms,
            list(self.flags),
        ]
        # fields added later, only as far as one is set: older rows stay as they were
        tail: list[Any] = [
            self.requester_timezone,
            [a.instance_row() for a in self.agreements.values()],
            [e.to_list() for e in self.escalations],
            self.trace,
            self.timeline,
        ]
        while tail and not tail[-1]:
            tail.pop()
        row.extend(tail)
        return row

    def instance_row(self) -> list[Any]:
        """An agreement instance's own part (its ticket attributes are the ticket's)."""
        own: list[Any] = [
            self.instance,
            self.policy_id,
            self.policy_version,
            [c.to_list() for c in self.clocks],
            self.watermark_ms,
            list(self.flags),
        ]
        if self.escalations:
            own.append([e.to_list() for e in self.escalations])
        return own

    @classmethod
    def from_row(cls, r: list[Any]) -> TicketState:
        if r[0] != ROW_FORMAT:
            raise ValueError(f"unsupported ticket state row format {r[0]!r}")
        clocks = [Clock.from_list(c) for c in r[22]]
        prefix: str = r[25]
        s = cls(
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            tuple(r[12]),
            r[13],
            r[14],
            r[15],
            r[16],
            r[17],
            r[18],
            r[19],
            r[20],
            r[21],
            clocks,
            tuple(r[23]),
            r[24],
            tuple(prefix + k for k in r[26]) if prefix else tuple(r[26]),
            r[27],
            r[28],
            r[29],
            tuple(r[30]),
            r[31] if len(r) > 31 else None,
        )
        if len(r) > 32:
            for v in r[32]:
                inst = TicketState(s.ticket_id, s.created_ms, instance=v[0], policy_id=v[1], policy_version=v[2])
                inst.clocks = [Clock.from_list(x) for x in v[3]]
                inst.watermark_ms, inst.flags = v[4], tuple(v[5])
                if len(v) > 6:
                    inst.escalations = [EscalationRecord.from_list(x) for x in v[6]]
                owned_agreements(s)[v[0]] = inst
        if len(r) > 33:
            s.escalations = [EscalationRecord.from_list(x) for x in r[33]]
        if len(r) > 34:
            s.trace = r[34]
        if len(r) > 35:
            s.timeline = r[35] if isinstance(r[35], str) else ""  # (a list: the form of an unreleased build)
        return s


#: TicketState's fields in declaration order (the names of to_dict; to_row/from_row/clone list them by position,
#: for speed, and tests check that all four keep every field).
STATE_FIELDS: Final = (
    "ticket_id",
    "created_ms",
    "priority",
    "status",
    "requester_id",
    "requester_tier",
    "group",
    "assignee",
    "channel",
    "product",
    "category",
    "tags",
    "fields",
    "reopen_count",
    "reassignment_count",
    "unanswered",
    "agent_replies",
    "rating",
    "escalation_requested",
    "policy_id",
    "policy_version",
    "clocks",
    "triggers_on",
    "trigger_fires",
    "seen",
    "watermark_ms",
    "closed_ms",
    "last_event_ms",
    "flags",
    "requester_timezone",
    "agreements",
    "instance",
    "escalations",
    "trace",
    "timeline",
)
_TUPLE_FIELDS: Final = frozenset({"tags", "triggers_on", "seen", "flags"})
_DICT_FIELDS: Final = frozenset({"fields", "trigger_fires"})


def _common_prefix(items: tuple[str, ...]) -> str:
    first, last = min(items), max(items)
    n = 0
    for a, b in zip(first, last, strict=False):
        if a != b:
            break
        n += 1
    return first[:n]
