"""Escalations and their lifecycle: what an escalation says and publishes, the escalations people ask for
(``requests:``), and -- for policies with ``resolve_events`` -- their records, acknowledgement and resolution.

The engine decides *when* to escalate (a ladder step, a trigger, a request) and calls :func:`escalate`; this module
words and publishes it, remembers it, and closes it when :func:`resolve` is told its cause ended.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .envelopes import DeescalatedData, EscalationRequestedData
from .messages import RequestWording, Wording, recipients, requester_update_text
from .outputs import (
    ESCALATIONS,
    NOTIFICATIONS,
    Command,
    Deferred,
    Emit,
    FirstEscalation,
    Ignored,
    StateCapped,
    cloud_event,
    notification,
)
from .plan import CompiledPolicy, NotifyTarget, PolicySet, Requests
from .state import MAX_OPEN_ESCALATIONS, EscalationRecord, TicketFacts, TicketState, has_text
from .timefmt import format_ms, format_ms_or_none

__all__ = [
    "Escalation",
    "acknowledged",
    "agreement_ref",
    "cause_is",
    "deescalate",
    "escalate",
    "id_prefix",
    "prefix",
    "requested",
    "resolve",
]


def prefix(s: TicketState) -> str:
    """The start of the ids of a clock set's outputs: the ticket id, or ``{ticket}:{instance}``."""
    return id_prefix(s.ticket_id, s.instance)


def id_prefix(ticket_id: str, instance: str | None) -> str:
    """:func:`prefix` of a ticket (or an agreement instance of it) given by its id and instance key."""
    return ticket_id if instance is None else f"{ticket_id}:{instance}"


def agreement_ref(instance: str | None) -> dict[str, str | None] | None:
    """The ``agreement`` field of an agreement instance's outputs (``None``: the customer SLA's)."""
    if instance is None:
        return None
    agreement, _, group = instance.partition("@")
    return {"id": agreement, "group": group or None}


@dataclass(slots=True, init=False)
class Escalation:
    """What an escalation says: everything :func:`_escalate` puts on its outputs besides the ticket's own facts."""

    id: str
    level: int
    kind: str
    reason: str  # sla_breach | sla_at_risk | trigger | requester_request | agent_request
    metric: str | None
    trigger: str | None
    cycle: int
    threshold: str
    notify: tuple[NotifyTarget, ...]
    due_ms: int | None
    requester_update: bool
    wording: Wording  # subject and body, worded when the outputs are read
    requested_by: str | None = None  # a requested escalation: who asked, for which team, and why
    team: str | None = None
    note: str | None = None

    def __init__(
        self,
        id: str,
        level: int,
        kind: str,
        reason: str,
        metric: str | None,
        trigger: str | None,
        cycle: int,
        threshold: str,
        notify: tuple[NotifyTarget, ...],
        due_ms: int | None,
        requester_update: bool,
        wording: Wording,
        requested_by: str | None = None,
        team: str | None = None,
        note: str | None = None,
    ) -> None:
        self.id = id
        self.level = level
        self.kind = kind
        self.reason = reason
        self.metric = metric
        self.trigger = trigger
        self.cycle = cycle
        self.threshold = threshold
        self.notify = notify
        self.due_ms = due_ms
        self.requester_update = requester_update
        self.wording = wording
        self.requested_by = requested_by
        self.team = team
        self.note = note

    def cause(self) -> str:
        """What it was raised for; when that ends, the escalation is resolved."""
        if self.metric is not None:
            return f"clock:{self.metric}:{self.cycle}"
        return f"trigger:{self.trigger}" if self.trigger is not None else "request"


def escalate(
    s: TicketState, pol: CompiledPolicy | None, ps: PolicySet, at: int, esc: Escalation, cmds: list[Command]
) -> None:
    """``escalation.raised``, the notification of the people it goes to and, when asked for, the requester's."""
    if pol is not None and pol.resolve_events:
        records = [*s.escalations, EscalationRecord(esc.id, esc.level, esc.cause(), at)]
        if sum(1 for r in records if r.resolved_ms is None) > MAX_OPEN_ESCALATIONS:
            oldest = next(r for r in records if r.resolved_ms is None)
            records.remove(oldest)
            cmds.append(StateCapped(s.ticket_id, "escalations"))
        s.escalations = records
    if s.instance is None and not has_text(s.flags, "escalated"):  # the ticket's first: timed for the metrics
        s.flags = s.flags + ("escalated",)
        cmds.append(FirstEscalation(s.ticket_id, esc.level, esc.reason, at - s.created_ms))
    f = s.facts()
    pol_id = pol.id if pol else None
    cmds.append(Emit(ESCALATIONS, s.ticket_id, None, _Raised(f, esc, at, pol, pol_id, ps.version)))
    cmds.append(Emit(NOTIFICATIONS, s.ticket_id, None, _EscalationNote(f, esc, at, pol, pol_id, ps.version)))
    if esc.requester_update and s.requester_id is not None:
        cmds.append(Emit(NOTIFICATIONS, s.ticket_id, None, _RequesterNote(f, esc, at, pol, pol_id, ps.version)))


class _EscalationOutput(Deferred):
    """One of the outputs of an escalation, worded when first read from the facts taken when it was raised."""

    def __init__(
        self, f: TicketFacts, esc: Escalation, at: int, pol: CompiledPolicy | None, pol_id: str | None, version: str
    ) -> None:
        self.f = f
        self.esc = esc
        self.at = at
        self.pol = pol
        self.pol_id = pol_id
        self.version = version

    def policy_ref(self) -> dict[str, str | None]:
        return {"id": self.pol_id, "version": self.version}

    def due_text(self) -> str | None:
        return format_ms_or_none(self.esc.due_ms)

    def note(self, suffix: str, kind: str, to: list[dict[str, str]], severity: str, subject: str, body: str) -> Emit:
        """A ``notification.requested`` about the escalation (its id is the escalation's plus ``suffix``)."""
        f, esc = self.f, self.esc
        return notification(
            f"{esc.id}:{suffix}",
            f.ticket_id,
            format_ms(self.at),
            ticket_id=f.ticket_id,
            kind=kind,
            recipients=to,
            severity=severity,
            subject=subject,
            body=body,
            policy_ref=self.policy_ref(),
            escalation_id=esc.id,
            metric=esc.metric,
            cycle=esc.cycle,
            due_at=self.due_text(),
            agreement=agreement_ref(f.instance),
        )


class _Raised(_EscalationOutput):
    """``escalation.raised``."""

    def build(self) -> dict[str, Any]:
        f, esc = self.f, self.esc
        at_text = format_ms(self.at)
        agreement = agreement_ref(f.instance)
        return cloud_event(
            "escalation.raised",
            esc.id,
            f.ticket_id,
            at_text,
            {
                "escalation_id": esc.id,
                "ticket_id": f.ticket_id,
                "level": esc.level,
                "kind": esc.kind,
                "reason": esc.reason,
                "metric": esc.metric,
                "trigger": esc.trigger,
                "cycle": esc.cycle,
                "threshold": esc.threshold,
                "policy": self.policy_ref(),
                "targets": recipients(f, esc.notify, self.pol),
                "due_at": self.due_text(),
                "fired_at": at_text,
                "ticket": f.snapshot(),
                "incident_id": None,
                **({} if agreement is None else {"agreement": agreement}),
                **_request_fields(esc),
            },
        )


class _EscalationNote(_EscalationOutput):
    """The notification of the people the escalation goes to."""

    def build(self) -> dict[str, Any]:
        f, esc = self.f, self.esc
        subject, body = esc.wording.text(f)
        if f.instance is not None:
            subject = f"[{f.instance}] {subject}"
        to = recipients(f, esc.notify, self.pol)
        return self.note("notify", "escalation", to, "critical" if esc.level >= 2 else "high", subject, body).event


class _RequesterNote(_EscalationOutput):
    """The requester's notification that their ticket was escalated."""

    def build(self) -> dict[str, Any]:
        f = self.f
        assert f.requester_id is not None
        subject, body = requester_update_text(f.ticket_id)
        to = [{"type": "requester", "id": f.requester_id}]
        return self.note("requester", "requester_update", to, "info", subject, body).event


def cause_is(cause: str) -> Callable[[EscalationRecord], bool]:
    return lambda r: r.cause == cause


def _request_fields(esc: Escalation) -> dict[str, str]:
    """The additive fields of a requested escalation (absent on every other, so their bytes stay)."""
    out: dict[str, str] = {}
    if esc.requested_by is not None:
        out["requested_by"] = esc.requested_by
    if esc.team is not None:
        out["team"] = esc.team
    if esc.note is not None:
        out["note"] = esc.note
    return out


# ---------------------------------------------------------------------------------------------------------------
# Requested escalations and the escalation lifecycle

_RESOLVED_KEPT: Final = 20
_NOTE_MAX: Final = 500


def requested(
    s: TicketState,
    data: EscalationRequestedData,
    ps: PolicySet,
    requests: Requests,
    at: int,
    pol: CompiledPolicy | None,
    cmds: list[Command],
) -> None:
    """``ticket.escalation_requested`` with a ``requests:`` section: an escalation at the level asked for (or one
    above the highest raised), bounded by what this requester may ask; functional to a team when one is named."""
    by = data.by
    assert by is not None
    current = max((c.level for c in s.clocks), default=0)
    level = min(max(1, data.level if data.level is not None else current + 1), requests.max_level.get(by, 1))
    n = s.trigger_fires.get("@request", 0) + 1
    fires = dict(s.trigger_fires)
    fires["@request"] = n
    s.trigger_fires = fires
    if data.team is not None:
        notify = requests.teams.get(data.team, (NotifyTarget("team", data.team),))
    else:
        step = next((st for st in pol.steps if st.level == level), None) if pol is not None else None
        notify = requests.notify.get(level) or (step.notify if step is not None else (NotifyTarget("assignee"),))
    note = None if data.reason is None else data.reason[:_NOTE_MAX]
    escalate(
        s,
        pol,
        ps,
        at,
        Escalation(
            f"{s.ticket_id}:request:{n}",
            level,
            "functional" if data.team is not None else "hierarchical",
            "requester_request" if by == "requester" else "agent_request",
            None,
            None,
            n,
            "request",
            notify,
            None,
            pol.requester_updates if pol is not None else False,
            RequestWording(level, by, data.team, note),
            by,
            data.team,
            note,
        ),
        cmds,
    )


def resolve(
    s: TicketState,
    pol: CompiledPolicy | None,
    at: int,
    cmds: list[Command],
    reason: str,
    match: Callable[[EscalationRecord], bool],
    by: str | None = None,
) -> int:
    """Resolve the open escalations ``match`` picks: ``escalation.resolved`` for each; returns how many."""
    if not s.escalations:
        return 0
    kept: list[EscalationRecord] = []
    done: list[EscalationRecord] = []
    n = 0
    for old in s.escalations:
        rec = old
        if old.resolved_ms is None and match(old):
            rec = EscalationRecord(
                old.id, old.level, old.cause, old.raised_ms, old.acked_by, old.acked_ms, at, reason, by
            )
            cmds.append(_resolved_event(s, rec, pol))
            n += 1
        (kept if rec.resolved_ms is None else done).append(rec)
    s.escalations = kept + done[-_RESOLVED_KEPT:] if n or len(done) > _RESOLVED_KEPT else s.escalations
    return n


def _resolved_event(s: TicketState, rec: EscalationRecord, pol: CompiledPolicy | None) -> Emit:
    assert rec.resolved_ms is not None and rec.resolved is not None
    at_text = format_ms(rec.resolved_ms)
    agreement = agreement_ref(s.instance)
    data: dict[str, object] = {
        "escalation_id": rec.id,
        "ticket_id": s.ticket_id,
        "level": rec.level,
        "reason": rec.resolved,
        "raised_at": format_ms(rec.raised_ms),
        "fired_at": at_text,
        "open_ms": rec.resolved_ms - rec.raised_ms,
        "acknowledged_by": rec.acked_by,
        "acknowledged_at": format_ms_or_none(rec.acked_ms),
        "by": rec.resolved_by,
        "policy": {"id": pol.id if pol is not None else s.policy_id, "version": s.policy_version},
    }
    if agreement is not None:
        data["agreement"] = agreement
    event_id = f"{rec.id}:resolved"
    return Emit(ESCALATIONS, s.ticket_id, cloud_event("escalation.resolved", event_id, s.ticket_id, at_text, data))


def deescalate(
    s: TicketState, data: DeescalatedData, event_id: str, at: int, pol: CompiledPolicy | None, cmds: list[Command]
) -> None:
    """An agent de-escalates the escalation named, those at ``level`` and above, or all that are open. Naming one
    that is not open is a no-op the worker counts (``Ignored``: unknown_escalation)."""
    wanted_id, level = data.escalation_id, data.level

    def match(rec: EscalationRecord) -> bool:
        if wanted_id is not None:
            return rec.id == wanted_id
        return level is None or rec.level >= level

    n = resolve(s, pol, at, cmds, "deescalated", match, data.by)
    for inst in s.agreements.values():
        n += resolve(inst, None, at, cmds, "deescalated", match, data.by)
    if n == 0 and s.instance is None:
        cmds.append(Ignored(event_id, "unknown_escalation"))


def acknowledged(s: TicketState, cause: str, by: str, at: int) -> None:
    """Remember who acknowledged the open escalations of a clock cycle, and when (shown by /tickets/{id})."""
    s.escalations = [
        EscalationRecord(r.id, r.level, r.cause, r.raised_ms, by, at)
        if r.resolved_ms is None and r.cause == cause and r.acked_by is None
        else r
        for r in s.escalations
    ]
