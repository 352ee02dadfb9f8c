"""The compiled, runtime form of a policy file: what the engine reads on every event.

:mod:`escalator.core.policy` turns YAML text into these objects (validation, file:line errors, thresholds
precomputed); the engine only reads them. They live apart from the pydantic specs so that they compile to native
classes with the rest of the core (see setup.py): attribute reads are C struct reads on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from .calendar import Calendar
from .durations import format_duration_ms

__all__ = [
    "READS_ALL",
    "READS_ATTRIBUTES",
    "READS_RATING",
    "READS_REOPENS",
    "READS_REQUESTED",
    "READS_UNANSWERED",
    "Agreement",
    "CalendarChoice",
    "ClockRule",
    "CompiledPolicy",
    "Condition",
    "IncidentRule",
    "Matcher",
    "NotifyTarget",
    "PolicySet",
    "Requests",
    "Scalar",
    "Step",
    "Threshold",
    "Trigger",
    "ZonedCalendar",
    "condition_reads",
]

Scalar = str | int | float | bool


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    type: str  # role | team | user | group | assignee | ticket_group | requester
    id: str | None = None


@dataclass(frozen=True, slots=True)
class Threshold:
    """A point on a clock cycle's elapsed open time at which something fires."""

    offset_ms: int
    key: str  # stable id suffix: warn:0.5 | breach | esc:L2 | esc:L3:r1
    kind: str  # warn | breach | esc
    level: int  # escalation level (0 for warn/breach)
    step: int  # index into the ladder (-1 for warn/breach)
    fraction: float  # warn fraction (0.0 otherwise)


@dataclass(frozen=True, slots=True)
class Matcher:
    """A compiled ``match``/``when``: only the conditions actually given, so an empty match costs nothing."""

    attributes: tuple[tuple[str, frozenset[str]], ...]  # (ticket attribute, allowed values)
    tags_any: frozenset[str] | None
    tags_all: frozenset[str] | None
    fields: tuple[tuple[str, frozenset[Scalar]], ...]
    empty: bool


@dataclass(frozen=True, slots=True)
class Step:
    after_ms: int
    level: int
    kind: str
    notify: tuple[NotifyTarget, ...]
    repeat_every_ms: int
    repeat_times: int


@dataclass(frozen=True, slots=True)
class ZonedCalendar:
    """A calendar whose hours and holidays are read in each requester's own time zone (``timezone: requester``);
    ``fallback`` is the calendar in the fallback zone. One :class:`Calendar` per zone is built when first needed."""

    name: str
    week: list[list[tuple[int, int]]] | None
    holidays: tuple[date, ...]
    fallback: Calendar
    by_zone: dict[str, Calendar] = field(default_factory=dict)

    def at(self, zone: str | None) -> Calendar:
        if zone is None or zone == self.fallback.timezone:
            return self.fallback
        cal = self.by_zone.get(zone)
        if cal is None:
            cal = self.by_zone[zone] = Calendar(self.name, zone, self.week, self.holidays)
        return cal


@dataclass(frozen=True, slots=True)
class CalendarChoice:
    """How a policy picks a ticket's calendar: by the ticket's group (``by_group``, else ``default``); a zoned
    calendar is then read in the requester's time zone."""

    by_group: dict[str, str]
    default: str


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    id: str
    matcher: Matcher
    calendar: Calendar
    targets: dict[str, int]  # metric -> target open time
    pause_on: frozenset[str]
    warn_at: tuple[float, ...]
    steps: tuple[Step, ...]
    ack_timeout_ms: int | None
    requester_updates: bool
    warn_notify: tuple[NotifyTarget, ...]
    breach_notify: tuple[NotifyTarget, ...]
    plans: dict[str, tuple[Threshold, ...]]  # metric -> thresholds by open-time offset
    catch_up_latest: bool = False  # ``catch_up: latest``: of thresholds due at one instant, only the latest fire
    choice: CalendarChoice | None = None  # None: ``calendar`` for every ticket
    metric_pause: dict[str, frozenset[str]] = field(default_factory=dict)  # per-metric pause_on overrides
    metric_reopen: dict[str, str] = field(default_factory=dict)  # per-metric on_reopen (default: resolution resumes)
    resolve_events: bool = False  # escalation.resolved when an escalation's cause ends
    follow_up: tuple[int, tuple[NotifyTarget, ...]] | None = None  # (after, whom): a feedback request after solving

    def with_calendar(self, calendar: Calendar) -> CompiledPolicy:
        """This policy as it applies to a ticket whose calendar is ``calendar``."""
        return CompiledPolicy(
            self.id,
            self.matcher,
            calendar,
            self.targets,
            self.pause_on,
            self.warn_at,
            self.steps,
            self.ack_timeout_ms,
            self.requester_updates,
            self.warn_notify,
            self.breach_notify,
            self.plans,
            self.catch_up_latest,
            self.choice,
            self.metric_pause,
            self.metric_reopen,
            self.resolve_events,
            self.follow_up,
        )


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled trigger ``when``: the attribute match plus the counters' bounds actually given (``None``: not
    part of the condition). All of them must hold."""

    matcher: Matcher
    unanswered_at_least: int | None
    reopen_count_at_least: int | None
    reassignment_count_at_least: int | None
    rating_at_most: int | None
    escalation_requested: bool | None
    assignee_set: bool | None = None  # defined metrics' conditions only
    group_set: bool | None = None


# What a trigger's condition reads, as bits of ``Trigger.reads``: the engine tests a trigger on an event only when
# the event can change something it reads (or when it has not tested the policy's triggers on the ticket yet).
READS_ATTRIBUTES: Final = 1  # the match (priority, group, status, tags, fields...), assignee/group set, reassignments
READS_UNANSWERED: Final = 2  # the requester's unanswered messages
READS_REOPENS: Final = 4
READS_RATING: Final = 8
READS_REQUESTED: Final = 16  # escalation requested
READS_ALL: Final = 31


def condition_reads(c: Condition) -> int:
    """The ``READS_*`` bits of what the condition reads."""
    reads = 0
    if (
        not c.matcher.empty
        or c.reassignment_count_at_least is not None
        or c.assignee_set is not None
        or c.group_set is not None
    ):
        reads |= READS_ATTRIBUTES
    if c.unanswered_at_least is not None:
        reads |= READS_UNANSWERED
    if c.reopen_count_at_least is not None:
        reads |= READS_REOPENS
    if c.rating_at_most is not None:
        reads |= READS_RATING
    if c.escalation_requested is not None:
        reads |= READS_REQUESTED
    return reads


@dataclass(frozen=True, slots=True)
class Trigger:
    id: str
    when: Condition
    kind: str
    level: int
    notify: tuple[NotifyTarget, ...]
    reason: str  # trigger | requester_request
    requester_update: bool | None
    reads: int = READS_ALL  # condition_reads(when), set where the policy is compiled (READS_ALL: tested always)


@dataclass(frozen=True, slots=True)
class IncidentRule:
    id: str
    group_by: str
    threshold: int
    window_ms: int
    cooldown_ms: int
    notify: tuple[NotifyTarget, ...]
    level: int
    matcher: Matcher
    lifecycle: bool = False  # members, incident.updated and resolution (any of the options below implies it)
    escalate_level: int = 0  # escalate_members: the members' escalation level (0: members are not escalated)
    escalate_notify: tuple[NotifyTarget, ...] = ()
    auto_resolve_ms: int | None = None  # auto_resolve_after: quiet time after the last member joined
    requester_updates: bool = False  # tell each member's requester when the incident is resolved


@dataclass(frozen=True, slots=True)
class ClockRule:
    """A metric defined by conditions (``metrics:`` in the policy file)."""

    name: str
    start: Condition
    stop: Condition
    cancel: Condition | None


@dataclass(frozen=True, slots=True)
class Requests:
    """``requests:``: who may ask for which level, and whom a requested escalation notifies."""

    max_level: dict[str, int]  # by requester, agent, manager, system
    notify: dict[int, tuple[NotifyTarget, ...]]  # by level
    teams: dict[str, tuple[NotifyTarget, ...]]  # functional escalations, by team


@dataclass(frozen=True, slots=True)
class Agreement:
    """An agreement beside the customer SLA: its own policies (as a :class:`PolicySet` without triggers or
    incidents, so the engine runs it like the SLA), one instance per ticket or, ``per_group``, per group."""

    id: str
    per_group: bool
    policies: PolicySet


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A loaded policy file: what the engine needs, plus ``version`` (a content hash stamped on every output).
    ``spec`` is the validated :class:`escalator.core.policy.PolicyFileSpec` it was compiled from."""

    version: str
    source: str
    policies: tuple[CompiledPolicy, ...]
    triggers: tuple[Trigger, ...]
    incidents: tuple[IncidentRule, ...]
    calendars: dict[str, Calendar]
    spec: Any
    by_policy_id: dict[str, CompiledPolicy]
    zoned: dict[str, ZonedCalendar] = field(default_factory=dict)
    variants: dict[tuple[str, str, str], CompiledPolicy] = field(default_factory=dict)  # memo of effective()
    agreements: tuple[Agreement, ...] = ()  # beside the customer SLA (``policies``), in declaration order
    requests: Requests | None = None  # requested escalations (``requests:``); None: requests only set the flag
    clock_rules: tuple[ClockRule, ...] = ()  # the metrics the file defines by conditions, in declaration order
    metric_order: dict[str, int] = field(default_factory=dict)  # firing order at one instant, beyond the built-ins

    def by_id(self, policy_id: str | None) -> CompiledPolicy | None:
        return None if policy_id is None else self.by_policy_id.get(policy_id)

    def effective(self, policy_id: str | None, group: str | None, zone: str | None) -> CompiledPolicy | None:
        """The policy as it applies to one ticket: with the calendar its group picks, read in its requester's time
        zone. The same object for the same (policy, calendar, zone), so callers can compare by identity."""
        base = self.by_id(policy_id)
        if base is None or base.choice is None:
            return base
        choice = base.choice
        name = choice.by_group.get(group, choice.default) if group is not None else choice.default
        zoned = self.zoned.get(name)
        cal = self.calendars[name] if zoned is None else zoned.at(zone)
        key = (base.id, name, cal.timezone)
        variant = self.variants.get(key)
        if variant is None:
            variant = self.variants[key] = base.with_calendar(cal)
        return variant

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (the ``/policy`` view): the validated file plus version and derived plans."""
        return {
            "version": self.version,
            "source": self.source,
            "spec": self.spec.model_dump(mode="json", exclude_none=True),
            "plans": {
                p.id: {m: [[format_duration_ms(t.offset_ms), t.key] for t in plan] for m, plan in p.plans.items()}
                for p in self.policies
            },
        }
