"""The compiled, runtime form of a policy file: what the engine reads on every event.

:mod:`escalator.core.policy` turns YAML text into these objects (validation, file:line errors, thresholds
precomputed); the engine only reads them. They live apart from the pydantic specs so that they compile to native
classes with the rest of the core (see setup.py): attribute reads are C struct reads on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .calendar import Calendar
from .durations import format_duration_ms

__all__ = [
    "CompiledPolicy",
    "Condition",
    "IncidentRule",
    "Matcher",
    "NotifyTarget",
    "PolicySet",
    "Scalar",
    "Step",
    "Threshold",
    "Trigger",
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


@dataclass(frozen=True, slots=True)
class Trigger:
    id: str
    when: Condition
    kind: str
    level: int
    notify: tuple[NotifyTarget, ...]
    reason: str  # trigger | requester_request
    requester_update: bool | None


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

    def by_id(self, policy_id: str | None) -> CompiledPolicy | None:
        return None if policy_id is None else self.by_policy_id.get(policy_id)

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
