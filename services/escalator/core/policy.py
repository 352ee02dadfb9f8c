"""The policy language: YAML text -> validated :class:`PolicySet` ready for the engine.

``load_policy_text(text, filename)`` is pure (no file I/O); reading the file is the caller's job. Every error names
the file, line, column and field path, e.g.::

    policy.yaml:14:35: policies[0].targets.first_response: invalid duration '15x': expected e.g. 15m, 1h30m, 90s, 2d

The compiled form precomputes, per policy and metric, the sorted list of thresholds (warnings, breach, ladder steps,
repeats) as open-time offsets from the start of a clock cycle, so the engine never re-derives them.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from typing import Annotated, Any, Final, Literal, TypeVar

import orjson
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .calendar import WEEKDAYS, Calendar, parse_interval
from .durations import format_duration_ms, parse_duration_ms
from .plan import (
    Agreement,
    CalendarChoice,
    ClockRule,
    CompiledPolicy,
    Condition,
    IncidentRule,
    Matcher,
    NotifyTarget,
    PolicySet,
    Requests,
    Scalar,
    Step,
    Threshold,
    Trigger,
    ZonedCalendar,
    condition_reads,
)
from .vocabulary import (
    DEFAULT_PAUSE_ON,
    DONE_STATUSES,
    FOLLOW_UP,
    GROUP_BY_ATTRIBUTES,
    METRICS,
    CatchUp,
    EscalationKind,
    OnReopen,
    Priority,
    Requester,
    Status,
)

__all__ = [
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "AgreementSpec",
    "CalendarChoiceSpec",
    "CalendarSpec",
    "ClockConditionSpec",
    "CompiledPolicy",
    "EscalateMembersSpec",
    "EscalateSpec",
    "FollowUpSpec",
    "IncidentRule",
    "IncidentSpec",
    "Located",
    "MatchSpec",
    "MetricSpec",
    "NotifyTarget",
    "NotifyTargetSpec",
    "PolicyError",
    "PolicyFileSpec",
    "PolicyIssue",
    "PolicySet",
    "PolicySpec",
    "RepeatSpec",
    "RequestsSpec",
    "StepSpec",
    "TargetsSpec",
    "Threshold",
    "Trigger",
    "TriggerSpec",
    "TriggerWhenSpec",
    "check_yaml_bounds",
    "compile_policy",
    "load_policy_text",
    "policy_version",
    "validate_yaml",
]

MAX_TARGET_MS = 365 * 86_400_000


def _duration(value: object) -> int:
    ms = parse_duration_ms(value)
    if ms > MAX_TARGET_MS:
        raise ValueError(f"duration {value!r} is longer than 365d")
    return ms


Duration = Annotated[int, BeforeValidator(_duration)]


def _signed_duration(value: object) -> int:
    """A duration that may be negative (``-30m``): a ladder step before the target."""
    if isinstance(value, str) and value.strip().startswith("-"):
        return -_duration(value.strip()[1:])
    return _duration(value)


SignedDuration = Annotated[int, BeforeValidator(_signed_duration)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NotifyTargetSpec(_Spec):
    """One recipient: exactly one of the keys. ``assignee``/``ticket_group``/``requester`` resolve per ticket."""

    role: str | None = None
    team: str | None = None
    user: str | None = None
    group: str | None = None
    assignee: Literal[True] | None = None
    ticket_group: Literal[True] | None = None
    requester: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> NotifyTargetSpec:
        set_keys = [k for k, v in self.__dict__.items() if v is not None]
        if len(set_keys) != 1:
            raise ValueError(
                "a notify target needs exactly one of role, team, user, group, assignee: true, ticket_group: true, "
                f"requester: true (got {', '.join(set_keys) or 'none'})"
            )
        return self


class RepeatSpec(_Spec):
    every: Duration
    times: int = Field(ge=1, le=1000)

    @field_validator("every")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("repeat.every must be longer than 0")
        return v


class StepSpec(_Spec):
    after: SignedDuration  # open time after the target; negative: before it (an at-risk escalation)
    level: int = Field(ge=1, le=99)
    notify: list[NotifyTargetSpec] = Field(min_length=1)
    kind: EscalationKind = "automatic"
    repeat: RepeatSpec | None = None


class CalendarSpec(_Spec):
    timezone: str = "UTC"  # an IANA zone, or "requester": the hours are read in each requester's own zone
    fallback_timezone: str | None = None  # with timezone: requester, for tickets whose requester's zone is unknown
    hours: dict[str, list[str]] | None = None
    holidays: list[date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fallback(self) -> CalendarSpec:
        if self.timezone == "requester" and self.fallback_timezone is None:
            raise ValueError("timezone: requester needs a fallback_timezone (for requesters without a time zone)")
        if self.timezone != "requester" and self.fallback_timezone is not None:
            raise ValueError("fallback_timezone is only used with timezone: requester")
        return self

    @field_validator("hours")
    @classmethod
    def _hours(cls, v: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        if v is None:
            return v
        for day, intervals in v.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            for text in intervals:
                parse_interval(text)
        return v

    @field_validator("holidays", mode="before")
    @classmethod
    def _holidays(cls, v: Any) -> Any:
        if isinstance(v, list):
            out = []
            for item in v:
                try:
                    out.append(date.fromisoformat(item) if isinstance(item, str) else item)
                except ValueError:
                    raise ValueError(f"invalid holiday {item!r}: expected YYYY-MM-DD") from None
            return out
        return v


class CalendarChoiceSpec(_Spec):
    """A policy's calendar picked by the ticket's group: ``{by_group: {emea: amsterdam}, default: always}``."""

    by_group: dict[str, str] = Field(min_length=1)
    default: str = "always"


class MatchSpec(_Spec):
    """All given keys must hold (AND); each list means "any of" (OR). An empty match matches every ticket."""

    priority: list[Priority] | None = None
    requester_tier: list[str] | None = None
    group: list[str] | None = None
    channel: list[str] | None = None
    product: list[str] | None = None
    category: list[str] | None = None
    tags_any: list[str] | None = None
    tags_all: list[str] | None = None
    fields: dict[str, Scalar | list[Scalar]] | None = None


class TargetsSpec(_Spec):
    """Open time per metric: the four built-ins, and any metric the file defines under ``metrics:`` (checked and
    parsed with the rest of the file, so that an unknown name says where it is)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    first_response: Duration | None = None
    next_reply: Duration | None = None
    periodic_update: Duration | None = None
    resolution: Duration | None = None

    @model_validator(mode="after")
    def _some(self) -> TargetsSpec:
        values = [getattr(self, m) for m in METRICS]
        if all(v is None for v in values) and not self.__pydantic_extra__:
            raise ValueError(f"give at least one target ({', '.join(METRICS)})")
        if any(v is not None and v <= 0 for v in values):
            raise ValueError("targets must be longer than 0")
        return self


class PolicySpec(_Spec):
    id: str = Field(min_length=1, max_length=100)
    description: str | None = None
    match: MatchSpec = Field(default_factory=MatchSpec)
    calendar: str | CalendarChoiceSpec = "always"
    targets: TargetsSpec
    pause_on: list[Status] = list(DEFAULT_PAUSE_ON)  # type: ignore[arg-type]  # pydantic copies mutable defaults
    warn_at: list[float] = Field(default_factory=list)
    escalation: list[StepSpec] = Field(default_factory=list)
    ack_timeout: Duration | None = None
    requester_updates: bool = False
    warn_notify: list[NotifyTargetSpec] | None = None
    breach_notify: list[NotifyTargetSpec] | None = None
    catch_up: CatchUp = "all"
    resolve_events: bool = False  # emit escalation.resolved when an escalation's cause ends
    follow_up: FollowUpSpec | None = None

    @field_validator("warn_at")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        for f in v:
            if not 0 < f < 1:
                raise ValueError(f"warn_at fractions must lie strictly between 0 and 1 (got {f})")
        if len(set(v)) != len(v):
            raise ValueError("warn_at fractions must be distinct")
        return sorted(v)

    @field_validator("pause_on")
    @classmethod
    def _pause_on(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s in DONE_STATUSES]
        if bad:
            raise ValueError("pause_on cannot contain solved or closed (those stop clocks instead)")
        return v


class TriggerWhenSpec(_Spec):
    """All given conditions must hold at once (AND)."""

    tags_any: list[str] | None = None
    tags_all: list[str] | None = None
    unanswered_requester_messages_at_least: int | None = Field(default=None, ge=1)
    rating_at_most: int | None = Field(default=None, ge=1, le=5)
    reopen_count_at_least: int | None = Field(default=None, ge=1)
    reassignment_count_at_least: int | None = Field(default=None, ge=1)
    escalation_requested: bool | None = None
    priority: list[Priority] | None = None
    status: list[Status] | None = None
    requester_tier: list[str] | None = None
    group: list[str] | None = None
    channel: list[str] | None = None
    product: list[str] | None = None
    category: list[str] | None = None
    fields: dict[str, Scalar | list[Scalar]] | None = None

    @model_validator(mode="after")
    def _non_empty(self) -> TriggerWhenSpec:
        if all(v is None for v in self.__dict__.values()):
            raise ValueError("a trigger needs at least one condition")
        return self


class ClockConditionSpec(TriggerWhenSpec):
    """A condition of a defined metric's clock: the trigger conditions, plus whether the ticket has an assignee or a
    group. May be empty (``{}``: always true)."""

    assignee_set: bool | None = None
    group_set: bool | None = None

    @model_validator(mode="after")
    def _non_empty(self) -> ClockConditionSpec:  # overrides the trigger's rule: an empty condition is allowed here
        return self


class MetricSpec(_Spec):
    """``metrics:`` -- a clock defined by conditions, or (for a built-in metric) its reopen and pause behaviour."""

    start: ClockConditionSpec | None = None  # a cycle starts when this becomes true and none is running
    stop: ClockConditionSpec | None = None  # ... and is achieved when this becomes true
    cancel: ClockConditionSpec | None = None  # ... or cancelled
    pause_on: list[Status] | None = None  # statuses that pause this clock (default: the policy's pause_on)
    on_reopen: OnReopen | None = None  # resume the cycle, restart a new one, or none (resolution: resume)

    @field_validator("pause_on")
    @classmethod
    def _pause_on(cls, v: list[str] | None) -> list[str] | None:
        bad = [s for s in v or [] if s in DONE_STATUSES]
        if bad:
            raise ValueError(f"{', '.join(bad)} ends clocks; it cannot pause them")
        return v


class EscalateSpec(_Spec):
    kind: EscalationKind = "hierarchical"
    level: int = Field(default=1, ge=1, le=99)
    notify: list[NotifyTargetSpec] = Field(min_length=1)


class TriggerSpec(_Spec):
    id: str = Field(min_length=1, max_length=100)
    description: str | None = None
    when: TriggerWhenSpec
    escalate: EscalateSpec
    requester_update: bool | None = None


class EscalateMembersSpec(_Spec):
    """Escalate every listed member ticket of an open incident (reason ``incident``)."""

    level: int = Field(default=1, ge=1, le=99)
    notify: list[NotifyTargetSpec] = Field(min_length=1)


class IncidentSpec(_Spec):
    id: str = Field(min_length=1, max_length=100)
    group_by: str
    threshold: int = Field(ge=2, le=100_000)
    window: Duration
    cooldown: Duration | None = None
    notify: list[NotifyTargetSpec] = Field(min_length=1)
    level: int = Field(default=1, ge=1, le=99)
    match: MatchSpec = Field(default_factory=MatchSpec)
    # The incident lifecycle (opt-in; implied by any of the three below): members, incident.updated, resolution.
    members: bool = False
    escalate_members: EscalateMembersSpec | None = None
    auto_resolve_after: Duration | None = None  # quiet time (no member joining) after which it resolves itself
    requester_updates: bool = False  # tell every member's requester when the incident is resolved

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, v: str) -> str:
        if v in GROUP_BY_ATTRIBUTES or (v.startswith("fields.") and len(v) > len("fields.")):
            return v
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BY_ATTRIBUTES)} or fields.<name>")

    @field_validator("window")
    @classmethod
    def _window(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("window must be longer than 0")
        return v


class FollowUpSpec(_Spec):
    """A feedback request this long after the ticket is solved (open time of the policy's calendar); a reopen
    cancels it."""

    after: Duration
    notify: list[NotifyTargetSpec] = Field(default_factory=lambda: [NotifyTargetSpec(requester=True)])

    @field_validator("after")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("follow_up.after must be longer than 0")
        return v


class RequestsSpec(_Spec):
    """How ``ticket.escalation_requested`` events become escalations (only with this section: without it they only
    set the flag that ``escalation_requested`` triggers test, as before)."""

    max_level: dict[Requester, int] = Field(default_factory=dict)  # default: requester 1, the others 99
    notify: dict[int, list[NotifyTargetSpec]] = Field(default_factory=dict)  # per level (default: the ladder's)
    teams: dict[str, list[NotifyTargetSpec]] = Field(default_factory=dict)  # per team (default: {team: <name>})

    @field_validator("max_level")
    @classmethod
    def _levels(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [f"{k}: {n}" for k, n in v.items() if not 1 <= n <= 99]
        if bad:
            raise ValueError(f"levels are 1..99 ({', '.join(bad)})")
        return v


class AgreementSpec(_Spec):
    """An agreement beside the customer SLA (an OLA per group, a regulatory clock): its own ordered policies, clocks,
    thresholds and ladder. ``per: group`` runs one instance per assignment group the ticket sits in."""

    id: str = Field(min_length=1, max_length=50, pattern=r"^[a-z][a-z0-9_-]*$")
    description: str | None = None
    per: Literal["group"] | None = None
    policies: list[PolicySpec] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _not_sla(cls, v: str) -> str:
        if v == "sla":
            raise ValueError("'sla' is the customer SLA of the top-level policies: give the agreement another id")
        return v


class PolicyFileSpec(_Spec):
    """The whole policy file (format version 1)."""

    version: Literal[1]
    calendars: dict[str, CalendarSpec] = Field(default_factory=dict)
    policies: list[PolicySpec] = Field(min_length=1)
    agreements: list[AgreementSpec] = Field(default_factory=list)
    metrics: dict[str, MetricSpec] = Field(default_factory=dict)
    requests: RequestsSpec | None = None
    triggers: list[TriggerSpec] = Field(default_factory=list)
    incidents: list[IncidentSpec] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------
# Errors with file/line/field


@dataclass(frozen=True)
class PolicyIssue:
    filename: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.filename
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(ValueError):
    """A policy file that cannot be used; ``issues`` lists every problem found, each with file, line and field."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


Loc = tuple[str | int, ...]


def _path_text(loc: Loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


#: Deepest nesting of mappings and sequences (the policy language needs fewer than 10 levels).
MAX_YAML_DEPTH = 64
#: Most nodes the document may have once every alias is expanded.
MAX_YAML_NODES = 200_000


def _refuse(filename: str, mark: Any, message: str) -> PolicyError:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return PolicyError([PolicyIssue(filename, line, column, "", message)])


def check_yaml_bounds(text: str, filename: str = "<policy>") -> None:
    """Refuse YAML that is too deep or expands (through anchors and aliases) to too many nodes. Syntax errors are
    left to the loader, which words them with their line."""
    sizes: dict[str, int] = {}  # anchor -> expanded node count of the anchored node
    anchors: list[str | None] = []  # the open collections' anchors ...
    counts: list[int] = []  # ... and expanded node counts so far
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(counts) >= MAX_YAML_DEPTH:
                    raise _refuse(filename, event.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
                anchors.append(event.anchor)
                counts.append(1)
                continue
            if isinstance(event, yaml.AliasEvent):
                size = sizes.get(str(event.anchor), 1)
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)) and counts:
                anchor, size = anchors.pop(), counts.pop()
                if anchor is not None:
                    sizes[anchor] = size
            else:
                continue
            if counts:
                counts[-1] += size
                size = counts[-1]
            if size > MAX_YAML_NODES:
                raise _refuse(
                    filename, event.start_mark, f"more than {MAX_YAML_NODES} YAML nodes once aliases are expanded"
                )
    except yaml.reader.ReaderError as exc:  # raised where the core's loader does not catch it (constructing it)
        raise PolicyError([PolicyIssue(filename, None, None, "", f"not a YAML text: {exc}")]) from None
    except yaml.YAMLError:
        return  # the loader reports it, with its line and column


class Located:
    """YAML -> plain Python, remembering the (line, column) of every mapping key and sequence item. The text is
    checked against the bounds first (:func:`check_yaml_bounds`), so the recursive walk below stays shallow."""

    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.marks: dict[Loc, tuple[int, int]] = {}
        check_yaml_bounds(text, filename)
        try:
            loader = yaml.SafeLoader(text)
        except yaml.YAMLError as exc:  # the reader refuses characters YAML does not allow
            raise PolicyError([PolicyIssue(filename, None, None, "", f"not a YAML text: {exc}")]) from None
        try:
            node = loader.get_single_node()
            self.data = None if node is None else self._build(loader, node, ())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else None
            col = mark.column + 1 if mark else None
            raise PolicyError([PolicyIssue(filename, line, col, "", f"YAML syntax error: {exc.problem}")]) from None
        except yaml.YAMLError as exc:
            raise PolicyError([PolicyIssue(filename, None, None, "", f"YAML error: {exc}")]) from None
        finally:
            loader.dispose()

    def _build(self, loader: yaml.SafeLoader, node: yaml.Node, loc: Loc) -> Any:
        self.marks.setdefault(loc, (node.start_mark.line + 1, node.start_mark.column + 1))
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int)):
                    raise PolicyError([self._issue(loc, f"unsupported key {key!r}", key_node)])
                if key in out:
                    raise PolicyError([self._issue((*loc, key), "duplicate key", key_node)])
                self.marks[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                out[key] = self._build(loader, value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(loader, item, (*loc, i)) for i, item in enumerate(node.value)]
        return loader.construct_object(node, deep=True)

    def _issue(self, loc: Loc, message: str, node: yaml.Node | None = None) -> PolicyIssue:
        if node is not None:
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
        else:
            line, col = self.locate(loc)
        return PolicyIssue(self.filename, line, col, _path_text(loc), message)

    def locate(self, loc: Loc) -> tuple[int | None, int | None]:
        for end in range(len(loc), -1, -1):
            mark = self.marks.get(loc[:end])
            if mark is not None:
                return mark
        return None, None

    def issue(self, loc: Loc, message: str) -> PolicyIssue:
        return self._issue(loc, message)


# ---------------------------------------------------------------------------------------------------------------
# Compiled, runtime form


def _trigger(t: TriggerSpec) -> Trigger:
    when = _condition(t.when)
    return Trigger(
        id=t.id,
        when=when,
        kind=t.escalate.kind,
        level=t.escalate.level,
        notify=tuple(_notify_target(n) for n in t.escalate.notify),
        reason="requester_request" if t.when.escalation_requested else "trigger",
        requester_update=t.requester_update,
        reads=condition_reads(when),
    )


def _notify_target(spec: NotifyTargetSpec) -> NotifyTarget:
    for key in ("role", "team", "user", "group"):
        value = getattr(spec, key)
        if value is not None:
            return NotifyTarget(key, value)
    for key in ("assignee", "ticket_group", "requester"):
        if getattr(spec, key):
            return NotifyTarget(key)
    raise AssertionError("validated spec has one key")  # pragma: no cover


def _matcher(spec: MatchSpec | TriggerWhenSpec) -> Matcher:
    attributes = tuple(
        (name, frozenset(values))
        for name in ("priority", "requester_tier", "group", "channel", "product", "category", "status")
        if (values := getattr(spec, name, None)) is not None
    )
    fields: tuple[tuple[str, frozenset[Scalar]], ...] = ()
    if spec.fields is not None:
        fields = tuple(sorted((k, frozenset(v if isinstance(v, list) else [v])) for k, v in spec.fields.items()))
    return Matcher(
        attributes=attributes,
        tags_any=None if spec.tags_any is None else frozenset(spec.tags_any),
        tags_all=None if spec.tags_all is None else frozenset(spec.tags_all),
        fields=fields,
        empty=not attributes and spec.tags_any is None and spec.tags_all is None and not fields,
    )


def _condition(spec: TriggerWhenSpec) -> Condition:
    assignee_set = spec.assignee_set if isinstance(spec, ClockConditionSpec) else None
    group_set = spec.group_set if isinstance(spec, ClockConditionSpec) else None
    return Condition(
        _matcher(spec),
        spec.unanswered_requester_messages_at_least,
        spec.reopen_count_at_least,
        spec.reassignment_count_at_least,
        spec.rating_at_most,
        spec.escalation_requested,
        assignee_set,
        group_set,
    )


def _fraction_key(f: float) -> str:
    return f"warn:{f:g}"


def _plan(target_ms: int, warn_at: tuple[float, ...], steps: tuple[Step, ...]) -> tuple[Threshold, ...]:
    items: list[Threshold] = [
        # The first millisecond at which elapsed >= f * target, computed exactly (0.57 * 100 is 56.99... in floats).
        Threshold(math.ceil(Fraction(repr(f)) * target_ms), _fraction_key(f), "warn", 0, -1, f)
        for f in warn_at
    ]
    items.append(Threshold(target_ms, "breach", "breach", 0, -1, 0.0))
    for i, step in enumerate(steps):
        items.append(Threshold(target_ms + step.after_ms, f"esc:L{step.level}", "esc", step.level, i, 0.0))
        for k in range(1, step.repeat_times + 1):
            offset = target_ms + step.after_ms + k * step.repeat_every_ms
            items.append(Threshold(offset, f"esc:L{step.level}:r{k}", "esc", step.level, i, 0.0))
    # Stable sort: equal offsets keep declaration order (warnings, breach, ladder), so firing order is defined.
    return tuple(sorted(items, key=lambda t: t.offset_ms))


def _week(spec: CalendarSpec) -> list[list[tuple[int, int]]] | None:
    if spec.hours is None:
        return None
    return [[parse_interval(t) for t in spec.hours.get(day, [])] for day in WEEKDAYS]


def _build_calendar(name: str, spec: CalendarSpec) -> Calendar:
    """The calendar itself, or for ``timezone: requester`` the one in its fallback zone."""
    zone = spec.fallback_timezone if spec.timezone == "requester" else spec.timezone
    return Calendar(name, zone or "UTC", _week(spec), spec.holidays)


def _calendar_names(p: PolicySpec) -> list[tuple[Loc, str]]:
    """The calendars a policy names, with where it names them."""
    if isinstance(p.calendar, str):
        return [(("calendar",), p.calendar)]
    named: list[tuple[Loc, str]] = [(("calendar", "by_group", g), n) for g, n in p.calendar.by_group.items()]
    return [*named, (("calendar", "default"), p.calendar.default)]


def _semantic_issues(spec: PolicyFileSpec, where: Located) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    names = set(spec.calendars) | {"always"}
    groups: tuple[tuple[str, Sequence[PolicySpec | TriggerSpec | IncidentSpec]], ...] = (
        ("policies", spec.policies),
        ("triggers", spec.triggers),
        ("incidents", spec.incidents),
    )
    for kind, items in groups:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.id in seen:
                issues.append(
                    where.issue((kind, i, "id"), f"duplicate id {item.id!r} (first at {kind}[{seen[item.id]}])")
                )
            seen.setdefault(item.id, i)
    issues += _metric_issues(spec, where)
    defined = {name for name in spec.metrics if name not in METRICS}
    seen_agreements: dict[str, int] = {}
    for a, agreement in enumerate(spec.agreements):
        if agreement.id in seen_agreements:
            issues.append(
                where.issue(
                    ("agreements", a, "id"),
                    f"duplicate agreement id {agreement.id!r} (first at agreements[{seen_agreements[agreement.id]}])",
                )
            )
        seen_agreements.setdefault(agreement.id, a)
        ids: dict[str, int] = {}
        for i, p in enumerate(agreement.policies):
            if p.id in ids:
                issues.append(
                    where.issue(("agreements", a, "policies", i, "id"), f"duplicate id {p.id!r} in this agreement")
                )
            ids.setdefault(p.id, i)
            issues += _policy_issues(p, ("agreements", a, "policies", i), names, defined, where)
    for i, p in enumerate(spec.policies):
        issues += _policy_issues(p, ("policies", i), names, defined, where)
    for name, cal in spec.calendars.items():
        if cal.hours is not None and not any(cal.hours.get(d) for d in WEEKDAYS):
            issues.append(where.issue(("calendars", name, "hours"), "a calendar needs at least one opening interval"))
        try:
            _build_calendar(name, cal)
        except ValueError as exc:
            field = "fallback_timezone" if cal.timezone == "requester" else "timezone"
            issues.append(where.issue(("calendars", name, field), str(exc)))
    return issues


def _metric_issues(spec: PolicyFileSpec, where: Located) -> list[PolicyIssue]:
    """``metrics:``: a built-in takes only ``pause_on``/``on_reopen``; a defined one needs a name, a real stop."""
    issues: list[PolicyIssue] = []
    for name, m in spec.metrics.items():
        at: Loc = ("metrics", name)
        if name in METRICS:
            for field in ("start", "stop", "cancel"):
                if getattr(m, field) is not None:
                    issues.append(
                        where.issue((*at, field), f"{name} is a built-in metric: it takes only pause_on and on_reopen")
                    )
            continue
        if not _METRIC_NAME.match(name):
            issues.append(where.issue(at, f"metric name {name!r}: use lower-case letters, digits and _ (max 50)"))
        if m.stop is None:
            issues.append(where.issue(at, "a defined metric needs a stop condition (what achieves it)"))
        elif not m.stop.model_fields_set:
            issues.append(where.issue((*at, "stop"), "an empty stop would end every cycle the moment it starts"))
        elif m.stop == (m.start or ClockConditionSpec()):
            issues.append(where.issue((*at, "stop"), "stop is the start condition: a cycle could never run"))
    return issues


_METRIC_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{0,49}$")


def _target_issues(p: PolicySpec, at: Loc, defined: set[str], where: Located) -> list[PolicyIssue]:
    issues: list[PolicyIssue] = []
    for name, value in (p.targets.__pydantic_extra__ or {}).items():
        if name not in defined:
            known = ", ".join([*METRICS, *sorted(defined)])
            issues.append(where.issue((*at, "targets", name), f"unknown metric {name!r} (known: {known})"))
            continue
        try:
            if _duration(value) <= 0:
                issues.append(where.issue((*at, "targets", name), "targets must be longer than 0"))
        except ValueError as exc:
            issues.append(where.issue((*at, "targets", name), str(exc)))
    return issues


def _policy_issues(p: PolicySpec, at: Loc, names: set[str], defined: set[str], where: Located) -> list[PolicyIssue]:
    """What is wrong with one policy (top-level or of an agreement) beyond its field types."""
    issues: list[PolicyIssue] = _target_issues(p, at, defined, where)
    for where_named, name in _calendar_names(p):
        if name not in names:
            issues.append(
                where.issue(
                    (*at, *where_named),
                    f"unknown calendar {name!r} (defined: {', '.join(sorted(names))})",
                )
            )
    last_after: int | None = None
    last_level = 0
    for j, step in enumerate(p.escalation):
        loc: Loc = (*at, "escalation", j)
        if last_after is not None and step.after < last_after:
            issues.append(where.issue((*loc, "after"), "escalation steps must be ordered by 'after'"))
        if step.level <= last_level:
            issues.append(where.issue((*loc, "level"), "escalation levels must increase from step to step"))
        if step.repeat is not None and j != len(p.escalation) - 1:
            issues.append(where.issue((*loc, "repeat"), "only the last escalation step can repeat"))
        last_after, last_level = step.after, step.level
        if step.after < 0:
            for metric in METRICS:
                target = getattr(p.targets, metric)
                if target is not None and -step.after >= target:
                    issues.append(
                        where.issue(
                            (*loc, "after"),
                            f"{format_duration_ms(-step.after)} before the target is at or before the start of "
                            f"the {metric} clock (target {format_duration_ms(target)})",
                        )
                    )
                    break
    if p.ack_timeout is not None and not p.escalation:
        issues.append(where.issue((*at, "ack_timeout"), "ack_timeout needs an escalation ladder"))
    if p.ack_timeout is not None and p.ack_timeout <= 0:
        issues.append(where.issue((*at, "ack_timeout"), "ack_timeout must be longer than 0"))
    return issues


def compile_policy(spec: PolicyFileSpec, *, version: str, source: str) -> PolicySet:
    calendars = {"always": Calendar("always", "UTC")}
    calendars.update({name: _build_calendar(name, c) for name, c in spec.calendars.items()})
    zoned = {
        name: ZonedCalendar(name, _week(c), tuple(c.holidays), calendars[name])
        for name, c in spec.calendars.items()
        if c.timezone == "requester"
    }
    compiled = _compile_policies(spec.policies, calendars, zoned, spec.metrics)
    triggers = tuple(_trigger(t) for t in spec.triggers)
    incidents = tuple(
        IncidentRule(
            id=r.id,
            group_by=r.group_by,
            threshold=r.threshold,
            window_ms=r.window,
            cooldown_ms=r.cooldown if r.cooldown is not None else r.window,
            notify=tuple(_notify_target(n) for n in r.notify),
            level=r.level,
            matcher=_matcher(r.match),
            lifecycle=bool(r.members or r.escalate_members or r.auto_resolve_after is not None or r.requester_updates),
            escalate_level=r.escalate_members.level if r.escalate_members is not None else 0,
            escalate_notify=tuple(_notify_target(n) for n in r.escalate_members.notify) if r.escalate_members else (),
            auto_resolve_ms=r.auto_resolve_after,
            requester_updates=r.requester_updates,
        )
        for r in spec.incidents
    )
    agreements = tuple(
        Agreement(
            a.id,
            a.per == "group",
            _policy_set(
                _compile_policies(a.policies, calendars, zoned, spec.metrics),
                (),
                (),
                calendars,
                zoned,
                spec,
                version,
                source,
            ),
        )
        for a in spec.agreements
    )
    return _policy_set(compiled, triggers, incidents, calendars, zoned, spec, version, source, agreements)


def _policy_set(
    compiled: tuple[CompiledPolicy, ...],
    triggers: tuple[Trigger, ...],
    incidents: tuple[IncidentRule, ...],
    calendars: dict[str, Calendar],
    zoned: dict[str, ZonedCalendar],
    spec: PolicyFileSpec,
    version: str,
    source: str,
    agreements: tuple[Agreement, ...] = (),
) -> PolicySet:
    rules = tuple(
        ClockRule(
            name,
            _condition(m.start or ClockConditionSpec()),
            _condition(m.stop or ClockConditionSpec()),
            None if m.cancel is None else _condition(m.cancel),
        )
        for name, m in spec.metrics.items()
        if name not in METRICS
    )
    requests = None
    if spec.requests is not None:
        requests = Requests(
            {"requester": 1, "agent": 99, "manager": 99, "system": 99}
            | {str(k): n for k, n in spec.requests.max_level.items()},
            {level: tuple(_notify_target(t) for t in ts) for level, ts in spec.requests.notify.items()},
            {team: tuple(_notify_target(t) for t in ts) for team, ts in spec.requests.teams.items()},
        )
    return PolicySet(
        requests=requests,
        clock_rules=rules,
        metric_order={
            **{m: i for i, m in enumerate(METRICS)},
            **{r.name: len(METRICS) + i for i, r in enumerate(rules)},
        },
        version=version,
        source=source,
        policies=compiled,
        by_policy_id={p.id: p for p in compiled},
        zoned=zoned,
        triggers=triggers,
        incidents=incidents,
        calendars=calendars,
        spec=spec,
        agreements=agreements,
    )


def _compile_policies(
    policies: Sequence[PolicySpec],
    calendars: dict[str, Calendar],
    zoned: dict[str, ZonedCalendar],
    metrics: Mapping[str, MetricSpec],
) -> tuple[CompiledPolicy, ...]:
    pause: dict[str, frozenset[str]] = {
        name: frozenset(m.pause_on) for name, m in metrics.items() if m.pause_on is not None
    }
    reopen: dict[str, str] = {name: m.on_reopen for name, m in metrics.items() if m.on_reopen is not None}
    compiled: list[CompiledPolicy] = []
    for p in policies:
        steps = tuple(
            Step(
                after_ms=s.after,
                level=s.level,
                kind=s.kind,
                notify=tuple(_notify_target(t) for t in s.notify),
                repeat_every_ms=s.repeat.every if s.repeat else 0,
                repeat_times=s.repeat.times if s.repeat else 0,
            )
            for s in p.escalation
        )
        targets = {m: getattr(p.targets, m) for m in METRICS if getattr(p.targets, m) is not None}
        targets.update({m: _duration(v) for m, v in (p.targets.__pydantic_extra__ or {}).items()})
        warn_at = tuple(p.warn_at)
        default_notify = (NotifyTarget("assignee"),)
        compiled.append(
            CompiledPolicy(
                id=p.id,
                matcher=_matcher(p.match),
                calendar=calendars[p.calendar if isinstance(p.calendar, str) else p.calendar.default],
                choice=_choice(p, zoned),
                targets=targets,
                pause_on=frozenset(p.pause_on),
                warn_at=warn_at,
                steps=steps,
                ack_timeout_ms=p.ack_timeout,
                requester_updates=p.requester_updates,
                warn_notify=tuple(_notify_target(t) for t in p.warn_notify) if p.warn_notify else default_notify,
                breach_notify=(
                    tuple(_notify_target(t) for t in p.breach_notify) if p.breach_notify else default_notify
                ),
                plans={m: _plan(t, warn_at, steps) for m, t in targets.items()}
                | (
                    {}
                    if p.follow_up is None
                    else {FOLLOW_UP: (Threshold(p.follow_up.after, FOLLOW_UP, "follow", 0, -1, 0.0),)}
                ),
                catch_up_latest=p.catch_up == "latest",
                metric_pause=pause,
                metric_reopen=reopen,
                resolve_events=p.resolve_events,
                follow_up=None
                if p.follow_up is None
                else (
                    p.follow_up.after,
                    tuple(_notify_target(t) for t in p.follow_up.notify),
                ),
            )
        )
    return tuple(compiled)


def _choice(p: PolicySpec, zoned: Mapping[str, ZonedCalendar]) -> CalendarChoice | None:
    """How a policy picks each ticket's calendar; ``None`` when it is the same for every ticket."""
    if isinstance(p.calendar, str):
        return None if p.calendar not in zoned else CalendarChoice({}, p.calendar)
    return CalendarChoice(dict(p.calendar.by_group), p.calendar.default)


#: Fields added to the policy language after its first release, with their defaults, by section: left out of the
#: version hash while at the default, so a file that does not use them keeps its version (and its outputs' bytes).
_ADDED_FIELDS: Final[dict[str, dict[str, object]]] = {
    "policies": {"catch_up": "all", "resolve_events": False, "follow_up": None},
    "calendars": {"fallback_timezone": None},
    "incidents": {"members": False, "escalate_members": None, "auto_resolve_after": None, "requester_updates": False},
}


def policy_version(spec: PolicyFileSpec) -> str:
    """A short content hash of the validated policy (formatting and comments do not change it)."""
    doc = spec.model_dump(mode="json")
    for added in ("agreements", "metrics", "requests"):  # sections added after the first release: unhashed unused
        if not doc.get(added):
            doc.pop(added, None)
    for agreement in doc.get("agreements", []):
        for p in agreement["policies"]:
            for name, default in _ADDED_FIELDS["policies"].items():
                if name in p and p[name] == default:
                    del p[name]
    for section, fields in _ADDED_FIELDS.items():
        items = doc.get(section) or []
        for item in items.values() if isinstance(items, dict) else items:
            for name, default in fields.items():
                if name in item and item[name] == default:
                    del item[name]
    canonical = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:12]


M = TypeVar("M", bound=BaseModel)


def validate_yaml(text: str, filename: str, model: type[M], not_a_mapping: str) -> tuple[M, Located]:
    """YAML text -> a validated ``model`` and where each of its values was written; the one way the project's
    YAML files (policies, the gateway's mappings, the relay's routing and directory) are read. Raises
    :class:`PolicyError` whose issues name file, line, column and field."""
    where = Located(text, filename)
    if not isinstance(where.data, dict):
        raise PolicyError([PolicyIssue(filename, 1, 1, "", not_a_mapping)])
    try:
        return model.model_validate(where.data), where
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                message = "unknown field"
            elif err["type"] == "missing":
                message = "required field is missing"
            issues.append(where.issue(loc, message))
        raise PolicyError(issues) from None


def load_policy_text(text: str, filename: str = "<policy>") -> PolicySet:
    """Parse, validate and compile a policy file's text. Raises :class:`PolicyError` naming file, line and field."""
    spec, where = validate_yaml(
        text, filename, PolicyFileSpec, "the policy file must be a YAML mapping with 'version: 1' and 'policies'"
    )
    issues = _semantic_issues(spec, where)
    if issues:
        raise PolicyError(issues)
    return compile_policy(spec, version=policy_version(spec), source=filename)
