"""The routing file and the people/teams directory (YAML, validated at start with file:line:field errors, as
policies are), the records the relay reads as :class:`Notice` values, and the pure routing decision: which
destinations (channel + address) a notice goes to.

Routing: for every recipient of a notice, the first rule whose ``match`` accepts (kind, severity, level,
recipient type, recipient) decides the channels; the recipient (or the rule's ``to`` entries) is looked up in the
directory, which gives each channel's address. Slack, webhooks and e-mail carry notification requests; PagerDuty
carries escalations and incidents (it needs the escalation itself: its id is the ``dedup_key``).

An ``escalation.resolved`` record is read as a notice with ``action == "resolve"``; it names no recipients and is
not routed by the rules: the relay sends it where the escalation's trigger was delivered (see relay.py). An
``incident.resolved`` is the resolve of its ``incident.detected`` alert in the same way; an ``incident.updated``
(members joined) names no recipients, so it is counted as unrouted and delivered nowhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, Literal, TypeVar, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..core.output_models import (
    EscalationRaised,
    EscalationResolved,
    IncidentDetected,
    IncidentResolved,
    IncidentUpdated,
    NotificationRequested,
)
from ..core.policy import Located, PolicyError, PolicyIssue, validate_yaml
from ..core.timefmt import parse_rfc3339_ms
from ..core.vocabulary import RECIPIENT_TYPES, NotificationKind, RecipientType, Severity
from .noise import QuietHours, parse_quiet_hours

__all__ = [
    "CHANNELS",
    "Channel",
    "Contact",
    "Destination",
    "Directory",
    "DirectoryFile",
    "MatchSpec",
    "NotForTheRelay",
    "Notice",
    "PagerDutyService",
    "RecordError",
    "Routing",
    "RoutingError",
    "RoutingFile",
    "RuleSpec",
    "load_directory",
    "load_files",
    "load_routing",
    "parse_notice",
]

Channel = Literal["slack", "webhook", "email", "pagerduty"]
CHANNELS: Final[tuple[str, ...]] = get_args(Channel)
#: The channels that carry escalations (the others carry notification requests).
_ESCALATION_CHANNELS: Final[frozenset[str]] = frozenset({"pagerduty"})

M = TypeVar("M", bound=BaseModel)


# -- records -----------------------------------------------------------------------------------------------------


class RecordError(ValueError):
    """An input record the relay cannot read (it is dead-lettered with reason ``invalid_record``)."""


class NotForTheRelay(RecordError):
    """A well-formed output event of a type the relay has nothing to do with (a type added to the contract after
    this relay was written: v1 grows by adding types). Skipped and counted, not dead-lettered."""


@dataclass(frozen=True)
class Notice:
    """One thing to deliver: a notification request, or (for PagerDuty) an escalation or incident -- or, with
    ``action == "resolve"``, the end of an escalation (``escalation.resolved``: ``id`` is the event's id,
    ``escalation_id`` the escalation it closes, ``recipients`` empty)."""

    id: str
    source: Literal["notification", "escalation"]
    kind: NotificationKind
    severity: Severity
    level: int | None
    recipients: tuple[tuple[str, str], ...]
    subject: str
    body: str
    ticket_id: str | None
    escalation_id: str | None
    fired_at: str
    fired_at_ms: int
    data: dict[str, Any]
    action: Literal["trigger", "resolve"] = "trigger"

    @property
    def alert_key(self) -> str:
        """The alert this notice opens or closes (PagerDuty's ``dedup_key``): the escalation or incident id."""
        return self.escalation_id or self.id


def parse_notice(value: bytes | None) -> Notice:
    """A ``notification.requested``, ``escalation.raised``, ``escalation.resolved`` or ``incident.detected`` record
    as a :class:`Notice`."""
    try:
        raw = orjson.loads(value or b"")
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind == "notification.requested":
            return _from_notification(NotificationRequested.model_validate(raw), raw["data"])
        if kind == "escalation.raised":
            return _from_escalation(EscalationRaised.model_validate(raw), raw["data"])
        if kind == "escalation.resolved":
            return _from_resolution(EscalationResolved.model_validate(raw), raw["data"])
        if kind == "incident.detected":
            return _from_incident(IncidentDetected.model_validate(raw), raw["data"])
        if kind in ("incident.updated", "incident.resolved"):
            return _from_incident_change(raw)
    except (orjson.JSONDecodeError, ValidationError, ValueError) as exc:
        raise RecordError(str(exc).splitlines()[0]) from None
    if isinstance(kind, str) and kind:
        raise NotForTheRelay(f"type {kind!r} is not delivered by the relay")
    raise RecordError(f"not a notification, escalation, resolution or incident: type {kind!r}")


def _from_notification(event: NotificationRequested, data: dict[str, Any]) -> Notice:
    d = event.data
    return Notice(
        id=d.notification_id,
        source="notification",
        kind=d.kind,
        severity=d.severity,
        level=None,
        recipients=tuple((r.type, r.id) for r in d.recipients),
        subject=d.subject,
        body=d.body,
        ticket_id=d.ticket_id,
        escalation_id=d.escalation_id,
        fired_at=d.fired_at,
        fired_at_ms=parse_rfc3339_ms(d.fired_at),
        data=data,
    )


def _from_escalation(event: EscalationRaised, data: dict[str, Any]) -> Notice:
    d = event.data
    cause = d.metric or d.trigger or d.reason
    return Notice(
        id=d.escalation_id,
        source="escalation",
        kind="escalation",
        severity="critical" if d.level >= 2 else "high",  # as the engine's escalation notifications say
        level=d.level,
        recipients=tuple((r.type, r.id) for r in d.targets),
        subject=f"L{d.level} escalation of ticket {d.ticket_id} ({d.reason}: {cause})",
        body=f"Ticket {d.ticket_id} ({d.ticket.priority}, {d.ticket.status}) was escalated to level {d.level} "
        f"({d.kind}, {d.reason}: {cause}, threshold {d.threshold}) at {d.fired_at}.",
        ticket_id=d.ticket_id,
        escalation_id=d.escalation_id,
        fired_at=d.fired_at,
        fired_at_ms=parse_rfc3339_ms(d.fired_at),
        data=data,
    )


def _from_resolution(event: EscalationResolved, data: dict[str, Any]) -> Notice:
    d = event.data
    return Notice(
        id=event.id,
        source="escalation",
        kind="escalation",
        severity="critical" if d.level >= 2 else "high",
        level=d.level,
        recipients=(),
        subject=f"Resolved: L{d.level} escalation of ticket {d.ticket_id} ({d.reason})",
        body=f"The L{d.level} escalation {d.escalation_id} of ticket {d.ticket_id} ended ({d.reason}) at "
        f"{d.fired_at} after {d.open_ms // 1000} s.",
        ticket_id=d.ticket_id,
        escalation_id=d.escalation_id,
        fired_at=d.fired_at,
        fired_at_ms=parse_rfc3339_ms(d.fired_at),
        data=data,
        action="resolve",
    )


def _from_incident(event: IncidentDetected, data: dict[str, Any]) -> Notice:
    d = event.data
    return Notice(
        id=d.incident_id,
        source="escalation",
        kind="incident",
        severity="critical",
        level=d.level,
        recipients=tuple((r.type, r.id) for r in d.targets),
        subject=f"Incident: {d.count} tickets about {d.group_by} {d.group_value} within {d.window}",
        body=f"Rule {d.rule} counted {d.count} new tickets with {d.group_by} {d.group_value} within {d.window} "
        f"(first at {d.first_at}).",
        ticket_id=None,
        escalation_id=d.incident_id,
        fired_at=d.fired_at,
        fired_at_ms=parse_rfc3339_ms(d.fired_at),
        data=data,
    )


def _from_incident_change(raw: dict[str, Any]) -> Notice:
    """``incident.resolved``: the resolve of the incident's alert; ``incident.updated``: nobody to tell."""
    resolved = raw.get("type") == "incident.resolved"
    event = IncidentResolved.model_validate(raw) if resolved else IncidentUpdated.model_validate(raw)
    d = event.data
    what = "Resolved: incident" if resolved else f"Incident now {d.count} tickets:"
    return Notice(
        id=event.id,
        source="escalation",
        kind="incident",
        severity="critical",
        level=None,
        recipients=(),
        subject=f"{what} {d.group_by} {d.group_value}",
        body=f"Incident {d.incident_id} ({d.count} tickets) at {d.fired_at}.",
        ticket_id=None,
        escalation_id=d.incident_id,
        fired_at=d.fired_at,
        fired_at_ms=parse_rfc3339_ms(d.fired_at),
        data=raw["data"],
        action="resolve" if resolved else "trigger",
    )


# -- the files -----------------------------------------------------------------------------------------------------


class RoutingError(ValueError):
    """A routing or directory file that cannot be used; ``issues`` name file, line and field."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _reference(value: str) -> str:
    rtype, sep, rid = value.partition(":")
    if not sep or rtype not in RECIPIENT_TYPES or not rid:
        raise ValueError(f"{value!r}: expected TYPE:ID with TYPE one of {', '.join(RECIPIENT_TYPES)}")
    return value


def _url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"{value[:40]!r} is not an http(s) URL")
    return value


def _email(value: str) -> str:
    if "@" not in value or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an e-mail address")
    return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


Reference = Annotated[str, AfterValidator(_reference)]
Url = Annotated[str, AfterValidator(_url)]
Email = Annotated[str, AfterValidator(_email)]
Zone = Annotated[str, AfterValidator(_zone)]


class MatchSpec(_Model):
    kind: list[NotificationKind] | None = None
    severity: list[Severity] | None = None
    recipient_type: list[RecipientType] | None = None
    recipient: list[Reference] | None = Field(default=None, description="TYPE:ID, e.g. role:team_lead")
    min_level: int | None = Field(default=None, ge=1, description="escalations and incidents of this level or more")


class RuleSpec(_Model):
    name: str
    match: MatchSpec = MatchSpec()
    channels: list[Channel] = Field(min_length=1)
    to: list[Reference] | None = Field(default=None, description="deliver to these directory entries instead")


class RoutingFile(_Model):
    version: Literal[1]
    rules: list[RuleSpec] = Field(min_length=1)


class Contact(_Model):
    slack: Url | None = Field(default=None, description="Slack incoming-webhook URL")
    webhook: Url | None = Field(default=None, description="generic webhook URL (signed, Standard Webhooks)")
    email: Email | None = None
    pagerduty: str | None = Field(default=None, description="a service of `services`")
    quiet_hours: str | None = Field(default=None, description="HH:MM-HH:MM in `timezone`")
    timezone: Zone = "UTC"
    team: str | None = Field(default=None, description="users: whose quiet hours apply when they have none")


class PagerDutyService(_Model):
    routing_key: str = Field(min_length=1)


class DirectoryFile(_Model):
    version: Literal[1]
    services: dict[str, PagerDutyService] = Field(default_factory=dict)
    users: dict[str, Contact] = Field(default_factory=dict)
    roles: dict[str, Contact] = Field(default_factory=dict)
    teams: dict[str, Contact] = Field(default_factory=dict)
    groups: dict[str, Contact] = Field(default_factory=dict)
    requesters: dict[str, Contact] = Field(default_factory=dict)


def _validate(text: str, filename: str, model: type[M]) -> tuple[M, Located]:
    """YAML text -> a validated ``model``, or :class:`RoutingError` naming file, line, column and field."""
    try:
        return validate_yaml(text, filename, model, "expected a YAML mapping with 'version: 1'")
    except PolicyError as exc:
        raise RoutingError(exc.issues) from None


# -- the directory and the decision ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Destination:
    """Where one message goes. ``recipient`` (``TYPE:ID``) is what logs, metrics and dead letters name; the address
    (a webhook URL is a credential) is only ever used to send."""

    channel: Channel
    address: str
    recipient: str
    quiet: QuietHours | None = None

    @property
    def key(self) -> str:
        """Identity of the destination for the breaker, the throttle and de-duplication (no address inside)."""
        return self.channel + ":" + hashlib.sha256(f"{self.channel}\0{self.address}".encode()).hexdigest()[:20]


class Directory:
    """Who is reachable where. An entry ``"*"`` of a section answers for ids it does not list."""

    def __init__(self, spec: DirectoryFile) -> None:
        self.spec = spec

    def contact(self, rtype: str, rid: str) -> Contact | None:
        section = _sections(self.spec)[rtype]
        return section.get(rid) or section.get("*")

    def quiet_hours(self, contact: Contact) -> QuietHours | None:
        if contact.quiet_hours is None and contact.team is not None and contact.team in self.spec.teams:
            contact = self.spec.teams[contact.team]
        if contact.quiet_hours is None:
            return None
        return parse_quiet_hours(contact.quiet_hours, contact.timezone)

    def address(self, contact: Contact, channel: str) -> str | None:
        if channel == "pagerduty":
            service = self.spec.services.get(contact.pagerduty or "")
            return None if service is None else service.routing_key
        return {"slack": contact.slack, "webhook": contact.webhook, "email": contact.email}[channel]


class Routing:
    """The routing rules and the directory: :meth:`route` is the whole decision, pure."""

    def __init__(self, spec: RoutingFile, directory: Directory) -> None:
        self.spec = spec
        self.rules = spec.rules
        self.directory = directory

    def channels(self) -> set[str]:
        return {c for rule in self.rules for c in rule.channels}

    def needs_escalations(self) -> bool:
        """Whether some rule routes to a channel that carries escalations (then the relay reads that topic too)."""
        return bool(self.channels() & _ESCALATION_CHANNELS)

    def rule_for(self, notice: Notice, rtype: str, rid: str) -> RuleSpec | None:
        for rule in self.rules:
            m = rule.match
            if (
                (m.kind is None or notice.kind in m.kind)
                and (m.severity is None or notice.severity in m.severity)
                and (m.recipient_type is None or rtype in m.recipient_type)
                and (m.recipient is None or f"{rtype}:{rid}" in m.recipient)
                and (m.min_level is None or (notice.level is not None and notice.level >= m.min_level))
            ):
                return rule
        return None

    def route(self, notice: Notice) -> list[Destination]:
        """The destinations of ``notice``, each once (two recipients with one Slack channel get one message)."""
        out: dict[str, Destination] = {}
        for rtype, rid in notice.recipients:
            rule = self.rule_for(notice, rtype, rid)
            if rule is None:
                continue
            targets = [tuple(t.split(":", 1)) for t in rule.to] if rule.to else [(rtype, rid)]
            for ttype, tid in targets:
                contact = self.directory.contact(ttype, tid)
                if contact is None:
                    continue
                for channel in rule.channels:
                    if (channel in _ESCALATION_CHANNELS) != (notice.source == "escalation"):
                        continue
                    address = self.directory.address(contact, channel)
                    if address is not None:
                        dest = Destination(channel, address, f"{ttype}:{tid}", self.directory.quiet_hours(contact))
                        out.setdefault(dest.key, dest)
        return list(out.values())


def _sections(spec: DirectoryFile) -> dict[str, dict[str, Contact]]:
    """The directory's sections by recipient type."""
    return {
        "user": spec.users,
        "role": spec.roles,
        "team": spec.teams,
        "group": spec.groups,
        "requester": spec.requesters,
    }


def _directory_issues(spec: DirectoryFile, where: Located) -> list[PolicyIssue]:
    issues = []
    for rtype, entries in _sections(spec).items():
        section = f"{rtype}s"
        for name, contact in entries.items():
            if contact.pagerduty is not None and contact.pagerduty not in spec.services:
                issues.append(where.issue((section, name, "pagerduty"), f"unknown service {contact.pagerduty!r}"))
            if contact.team is not None and contact.team not in spec.teams:
                issues.append(where.issue((section, name, "team"), f"unknown team {contact.team!r}"))
            if contact.quiet_hours is not None:
                try:
                    parse_quiet_hours(contact.quiet_hours, contact.timezone)
                except ValueError as exc:
                    issues.append(where.issue((section, name, "quiet_hours"), str(exc)))
    return issues


def load_directory(text: str, filename: str = "<directory>") -> Directory:
    """Parse and validate a directory file; raises :class:`RoutingError` naming file, line and field."""
    spec, where = _validate(text, filename, DirectoryFile)
    issues = _directory_issues(spec, where)
    if issues:
        raise RoutingError(issues)
    return Directory(spec)


def load_routing(text: str, filename: str, directory: Directory) -> Routing:
    """Parse and validate a routing file against ``directory`` (``to`` entries must exist in it)."""
    spec, where = _validate(text, filename, RoutingFile)
    issues = [
        where.issue(("rules", i, "to", j), f"{ref!r} is not in the directory")
        for i, rule in enumerate(spec.rules)
        for j, ref in enumerate(rule.to or ())
        if directory.contact(*ref.split(":", 1)) is None
    ]
    if issues:
        raise RoutingError(issues)
    return Routing(spec, directory)


def load_files(routing_file: Path, directory_file: Path) -> Routing:
    """The routing and directory files from disk (file-level errors also as :class:`RoutingError`)."""
    texts = []
    for path in (directory_file, routing_file):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise RoutingError([PolicyIssue(str(path), None, None, "", f"cannot read: {exc.strerror}")]) from None
    return load_routing(texts[1], str(routing_file), load_directory(texts[0], str(directory_file)))
