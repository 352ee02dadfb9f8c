"""What a simulated run did, in numbers: compliance, breaches, escalations, notifications, incidents.

:class:`Summary` is fed the decoded events, the rejected lines and the commands of a run as they stream by (constant
work per command), then :meth:`Summary.close` reads the final ticket states for the clocks still running. The
result is a plain JSON-ready dict (:meth:`Summary.to_dict`, shaped by :class:`SummaryDict`) that the text output,
``--json`` and the HTML report all use.

Counting rules (per clock *cycle* that has a target under the ticket's policy; cycles without a target are left
out):

* **achieved** -- the cycle ended without breaching (achieved, or stopped/cancelled by a solve, which the engine
  counts as meeting it);
* **breached** -- the breach threshold fired, whether the cycle has ended since or is still running;
* **still running** -- running at the end of the run and not breached (yet);
* **compliance** -- achieved / (achieved + breached).

Priority and policy are those of the ticket when the cycle ended (or at the end of the run). A reopen resumes the
resolution cycle, which then ends again: it counts once, with its last outcome.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, NotRequired, TypedDict

from ..core import METRICS, ClockOutcome, Command, Emit, Event, Ignored, PolicySet, format_ms
from ..core.state import RUNNING
from ..core.timefmt import format_ms_or_none
from .simulate import Reject, Simulator

__all__ = [
    "MAX_REJECTS_KEPT",
    "AgreementDict",
    "AgreementRow",
    "AnalyticsDict",
    "ChangedCounts",
    "ComparisonRow",
    "ComplianceDict",
    "CsatRow",
    "DurationRow",
    "EscalationsDict",
    "FunnelDict",
    "IncidentRow",
    "IncidentsDict",
    "InputDict",
    "MetricRow",
    "NotificationsDict",
    "OpenTimeRow",
    "PeriodDict",
    "PolicyDict",
    "RejectRow",
    "Summary",
    "SummaryDict",
    "agreement",
    "compare",
    "format_span",
    "format_text",
]

MAX_REJECTS_KEPT = 20
MAX_INCIDENTS_KEPT = 200
PRIORITY_ORDER = ("urgent", "high", "normal", "low")
_DAY_MS = 86_400_000
_METRIC_BIT = {m: 1 << i for i, m in enumerate(METRICS)}
_MET_SHIFT = 4


def _day_text(day: int) -> str:
    return format_ms(day * _DAY_MS)[:10]


def _pct(num: int, den: int) -> float | None:
    return None if den == 0 else round(100.0 * num / den, 2)


def _percentile(sorted_values: list[int], q: float) -> int | None:
    if not sorted_values:
        return None
    idx = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[idx]


def _prio_key(p: str) -> tuple[int, str]:
    return (PRIORITY_ORDER.index(p) if p in PRIORITY_ORDER else len(PRIORITY_ORDER), p)


# ---------------------------------------------------------------------------------------------------------------
# The shape of the results (the JSON of ``--json``, read by the text summary and the HTML report)


class PolicyDict(TypedDict):
    source: str
    version: str
    name: str


class RejectRow(TypedDict):
    line: int
    reason: str
    detail: str
    event_id: str | None


class InputDict(TypedDict):
    lines: int
    events: int
    rejected: int
    rejected_by_reason: dict[str, int]
    rejected_examples: list[RejectRow]
    duplicates_ignored: int
    after_until: int
    event_types: dict[str, int]


class PeriodDict(TypedDict):
    first_event: str | None
    last_event: str | None
    end: str | None


class MetricRow(TypedDict):
    """Clock cycles with a target, by outcome; ``compliance_pct`` is achieved / (achieved + breached)."""

    achieved: int
    breached: int
    running: int
    compliance_pct: float | None


class ComplianceDict(TypedDict):
    by_priority: dict[str, dict[str, MetricRow]]  # priority -> metric -> row
    by_policy: dict[str, dict[str, MetricRow]]  # policy id ("-" for none) -> metric -> row


class EscalationsDict(TypedDict):
    total: int
    by_level: dict[str, int]
    by_kind: dict[str, int]
    by_reason: dict[str, int]


class NotificationsDict(TypedDict):
    total: int
    by_kind: dict[str, int]


class IncidentRow(TypedDict):
    incident_id: str
    rule: str
    group_by: str
    group_value: str
    count: int
    first_at: str
    fired_at: str


class IncidentsDict(TypedDict):
    total: int
    list: list[IncidentRow]  # the first MAX_INCIDENTS_KEPT


class FunnelDict(TypedDict):
    tickets: int
    breached_any: int
    escalated: int
    reached_level: dict[str, int]  # level -> tickets that reached it or higher


class DurationRow(TypedDict):
    n: int
    p50_s: float | None
    p90_s: float | None
    targets_s: list[float]
    within_target_pct: float | None


class ChangedCounts(TypedDict):
    only_a: int
    only_b: int


class ComparisonRow(TypedDict):
    """One metric of :func:`compare`."""

    tickets_measured: int
    breached_a: int
    breached_b: int
    breached_only_a: int
    breached_only_b: int
    by_priority: dict[str, ChangedCounts]
    examples_only_a: list[str]
    examples_only_b: list[str]


class AgreementRow(TypedDict):
    tickets: int
    agree: int
    agreement_pct: float | None
    engine_breached_label_made: int
    engine_met_label_missed: int
    label_made: int
    engine_made: int


class AgreementDict(TypedDict):
    """The result of :func:`agreement`."""

    metric: str
    labels: int
    unmatched: int
    by_priority: dict[str, AgreementRow]
    total: AgreementRow


class OpenTimeRow(TypedDict):
    n: int
    p50_s: float | None
    p90_s: float | None


class CsatRow(TypedDict):
    n: int
    mean: float
    low: int  # ratings of 1 or 2


class AnalyticsDict(TypedDict):
    resolved_by_reason: dict[str, int]
    open_time_by_level: dict[str, OpenTimeRow]  # level -> how long its escalations stayed open
    csat_by_level: dict[str, CsatRow]  # highest level the ticket reached ("0": never escalated) -> its ratings
    root_causes: dict[str, int]  # the ten most frequent


class SummaryDict(TypedDict):
    """:meth:`Summary.to_dict`, plus ``comparison`` (:func:`compare`) and ``agreement`` (:func:`agreement`) when the
    run made them."""

    policy: PolicyDict
    input: InputDict
    period: PeriodDict
    tickets: int
    metrics: dict[str, MetricRow]
    compliance: ComplianceDict
    escalations: EscalationsDict
    notifications: NotificationsDict
    incidents: IncidentsDict
    outputs: dict[str, int]
    funnel: FunnelDict
    durations: dict[str, dict[str, DurationRow]]  # metric -> priority -> row
    comparison: NotRequired[dict[str, ComparisonRow]]
    agreement: NotRequired[AgreementDict]
    # agreements beside the customer SLA (OLAs, regulatory clocks), only when the policy file has some:
    # agreement id -> group ("-" for a per-ticket agreement) -> metric -> row
    agreements: NotRequired[dict[str, dict[str, dict[str, MetricRow]]]]
    analytics: NotRequired[AnalyticsDict]  # escalation analytics, when the run has any


_Column = Literal["achieved", "breached", "running"]
_COLUMN: dict[str, _Column] = {"met": "achieved", "breached": "breached", "running": "running"}


class Summary:
    """Accumulates a run's numbers. Call :meth:`event`, :meth:`reject` and :meth:`commands` while the run
    streams, then :meth:`close` with the simulator once it has finished."""

    def __init__(self, policy: PolicySet, name: str | None = None) -> None:
        self.policy = policy
        self.name = name or policy.source
        self.lines = 0
        self.events = 0
        self.event_types: Counter[str] = Counter()
        self.created_per_day: Counter[int] = Counter()
        self.first_ms: int | None = None
        self.last_ms: int | None = None
        self.rejects: Counter[str] = Counter()
        self.reject_examples: list[Reject] = []
        self.duplicates = 0
        self.outputs: Counter[str] = Counter()  # emitted CloudEvents by type
        self.escalations: Counter[tuple[int, str, str]] = Counter()  # (level, kind, reason)
        self.notifications: Counter[str] = Counter()
        self.breaches_per_day: Counter[tuple[str, str]] = Counter()  # (YYYY-MM-DD, metric)
        self.incidents: list[IncidentRow] = []
        self.incident_count = 0
        # (metric, priority, policy id, result) with result in met | breached | running, for cycles with a target
        self.cycles: Counter[tuple[str, str, str, str]] = Counter()
        # agreements beside the SLA: (ticket, instance, metric, cycle) -> breached?, None while running; the last
        # word on each cycle counts (a reopen ends a resolution cycle again)
        self._agreement_cycles: dict[tuple[str, str, str, int], bool | None] = {}
        # metric -> priority -> (elapsed open time, target) of every ended cycle with a target
        self.elapsed: dict[str, dict[str, tuple[array[int], array[int]]]] = {}
        self.ticket_flags: dict[str, int] = {}  # ticket -> bit per metric breached, and (<< 4) achieved
        self.ticket_level: dict[str, int] = {}  # ticket -> highest escalation level raised
        self.open_by_level: dict[int, list[int]] = {}  # escalation.resolved: how long each level was open
        self.resolutions: Counter[str] = Counter()  # escalation.resolved by why
        self.root_causes: Counter[str] = Counter()  # ticket.status_changed to solved with a root_cause
        self.ratings_by_level: dict[int, list[int]] = {}  # final rating by the ticket's highest level (0: none)
        self.ticket_info: dict[str, tuple[str, str | None]] = {}  # ticket -> (priority, policy) at the end
        self._resolution: dict[str, tuple[str, str, bool, int, int]] = {}  # last resolution outcome per ticket
        self.tickets = 0
        self.end_ms: int | None = None
        self.after_until = 0
        self.closed = False

    # -- streaming -----------------------------------------------------------------------------------------
    def event(self, event: Event) -> None:
        self.events += 1
        etype = event.type
        self.event_types[etype] += 1
        t = event.time_ms
        if etype == "ticket.created":
            self.created_per_day[t // _DAY_MS] += 1
        elif etype == "ticket.status_changed":
            cause = getattr(event.data, "root_cause", None)
            if cause is not None:
                self.root_causes[cause] += 1
        if self.first_ms is None or t < self.first_ms:
            self.first_ms = t
        if self.last_ms is None or t > self.last_ms:
            self.last_ms = t

    def reject(self, reject: Reject) -> None:
        self.rejects[reject.reason] += 1
        if len(self.reject_examples) < MAX_REJECTS_KEPT:
            self.reject_examples.append(reject)

    def commands(self, cmds: Iterable[Command]) -> None:
        for c in cmds:
            kind = type(c)
            if kind is Emit:
                self._emit(c)  # type: ignore[arg-type]
            elif kind is ClockOutcome:
                self._outcome(c)  # type: ignore[arg-type]
            elif kind is Ignored and c.reason == "duplicate":  # type: ignore[union-attr]
                self.duplicates += 1

    def _emit(self, c: Emit) -> None:
        ev = c.event
        etype = ev["type"]
        self.outputs[etype] += 1
        data = ev["data"]
        if etype == "notification.requested":
            nkind = data["kind"]
            self.notifications[nkind] += 1
            if nkind == "sla_breach" and "agreement" not in data:  # the chart is the customer SLA's
                self.breaches_per_day[(ev["time"][:10], data["metric"])] += 1
        elif etype == "escalation.raised":
            level = data["level"]
            self.escalations[(level, data["kind"], data["reason"])] += 1
            tid = data["ticket_id"]
            if self.ticket_level.get(tid, 0) < level:
                self.ticket_level[tid] = level
        elif etype == "escalation.resolved":
            self.resolutions[data["reason"]] += 1
            self.open_by_level.setdefault(data["level"], []).append(data["open_ms"])
        elif etype == "incident.detected":
            self.incident_count += 1
            if len(self.incidents) < MAX_INCIDENTS_KEPT:
                self.incidents.append(
                    {
                        "incident_id": data["incident_id"],
                        "rule": data["rule"],
                        "group_by": data["group_by"],
                        "group_value": data["group_value"],
                        "count": data["count"],
                        "first_at": data["first_at"],
                        "fired_at": data["fired_at"],
                    }
                )

    def _outcome(self, c: ClockOutcome) -> None:
        target = c.target_ms
        if target is None:
            return
        if c.agreement is not None:
            self._agreement_cycles[(c.ticket_id, c.agreement, c.metric, c.cycle)] = c.outcome == "breached"
            return
        if c.metric == "resolution":
            # A reopen resumes the same resolution cycle, which then ends again: only its last outcome counts (kept
            # per ticket until the end of the run; a clock running again at the end supersedes it).
            self._resolution[c.ticket_id] = (
                c.priority,
                c.policy_id or "-",
                c.outcome == "breached",
                c.elapsed_ms,
                target,
            )
            return
        self._count(
            c.ticket_id, c.metric, c.priority, c.policy_id or "-", c.outcome == "breached", c.elapsed_ms, target
        )

    def _count(
        self, ticket_id: str, metric: str, priority: str, policy_id: str, breached: bool, elapsed: int, target: int
    ) -> None:
        self.cycles[(metric, priority, policy_id, "breached" if breached else "met")] += 1
        bit = _METRIC_BIT.get(metric, 0)  # a defined metric: not part of the SLA funnel's "breached"
        self.ticket_flags[ticket_id] = self.ticket_flags.get(ticket_id, 0) | (bit if breached else bit << _MET_SHIFT)
        by_prio = self.elapsed.get(metric)
        if by_prio is None:
            by_prio = self.elapsed[metric] = {}
        pair = by_prio.get(priority)
        if pair is None:
            pair = by_prio[priority] = (array("q"), array("q"))
        pair[0].append(elapsed)
        pair[1].append(target)

    # -- end of run ----------------------------------------------------------------------------------------
    def close(self, sim: Simulator, lines: int | None = None) -> None:
        """Take in the clocks still running in the simulator's final states."""
        if lines is not None:
            self.lines = lines
        self.end_ms = sim.end_ms
        self.after_until = sim.events_after_until
        self.tickets = len(sim.tickets)
        by_id = self.policy.by_id
        resolution = self._resolution
        for tid, s in sim.tickets.items():
            self.ticket_info[tid] = (s.priority, s.policy_id)
            if s.rating is not None:
                self.ratings_by_level.setdefault(self.ticket_level.get(tid, 0), []).append(s.rating)
            pol = by_id(s.policy_id)
            if pol is None:
                continue
            for c in s.clocks:
                if c.phase != RUNNING or c.metric not in pol.targets:
                    continue
                if c.metric == "resolution":
                    resolution.pop(tid, None)
                breached = c.breached_at_ms is not None
                self.cycles[(c.metric, s.priority, s.policy_id or "-", "breached" if breached else "running")] += 1
                bit = _METRIC_BIT.get(c.metric, 0)
                self.ticket_flags[tid] = self.ticket_flags.get(tid, 0) | (bit if breached else bit << _MET_SHIFT)
        for tid, (prio, pol_id, breached, elapsed, target) in resolution.items():
            self._count(tid, "resolution", prio, pol_id, breached, elapsed, target)
        resolution.clear()
        if self.policy.agreements:
            self._close_agreements(sim)
        self.closed = True

    def _close_agreements(self, sim: Simulator) -> None:
        """The agreement instances' clocks still running at the end: breached, or running."""
        policies = {a.id: a.policies for a in self.policy.agreements}
        for tid, s in sim.tickets.items():
            for key, inst in s.agreements.items():
                aps = policies.get(key.split("@", 1)[0])
                pol = None if aps is None else aps.by_id(inst.policy_id)
                if pol is None:
                    continue
                for c in inst.clocks:
                    if c.phase == RUNNING and c.metric in pol.targets:
                        running = None if c.breached_at_ms is None else True
                        self._agreement_cycles[(tid, key, c.metric, c.cycle)] = running

    def _agreements(self) -> dict[str, dict[str, dict[str, MetricRow]]]:
        out: dict[str, dict[str, dict[str, MetricRow]]] = {}
        for (_tid, key, metric, _cycle), breached in self._agreement_cycles.items():
            agreement, _, group = key.partition("@")
            row = (
                out.setdefault(agreement, {})
                .setdefault(group or "-", {})
                .setdefault(metric, {"achieved": 0, "breached": 0, "running": 0, "compliance_pct": None})
            )
            row["running" if breached is None else "breached" if breached else "achieved"] += 1
        for groups in out.values():
            for metrics in groups.values():
                for row in metrics.values():
                    row["compliance_pct"] = _pct(row["achieved"], row["achieved"] + row["breached"])
        return {a: {g: _ordered(out[a][g]) for g in sorted(out[a])} for a in out}

    def ticket_breached(self, metric: str) -> set[str]:
        bit = _METRIC_BIT[metric]
        return {t for t, f in self.ticket_flags.items() if f & bit}

    def ticket_measured(self, metric: str) -> set[str]:
        """Tickets with at least one cycle of ``metric`` that has a target (achieved, breached or running; running
        and not breached counts as "achieved so far")."""
        bit = _METRIC_BIT[metric] | (_METRIC_BIT[metric] << _MET_SHIFT)
        return {t for t, f in self.ticket_flags.items() if f & bit}

    # -- results -------------------------------------------------------------------------------------------
    def to_dict(self) -> SummaryDict:
        metrics: dict[str, MetricRow] = {}
        by_priority: dict[str, dict[str, MetricRow]] = {}
        by_policy: dict[str, dict[str, MetricRow]] = {}
        rows: list[MetricRow] = []

        def row_of(table: dict[str, MetricRow], key: str) -> MetricRow:
            row = table.get(key)
            if row is None:
                row = table[key] = {"achieved": 0, "breached": 0, "running": 0, "compliance_pct": None}
                rows.append(row)
            return row

        for (metric, prio, pol, result), n in self.cycles.items():
            column = _COLUMN[result]
            row_of(metrics, metric)[column] += n
            row_of(by_priority.setdefault(prio, {}), metric)[column] += n
            row_of(by_policy.setdefault(pol, {}), metric)[column] += n
        for row in rows:
            row["compliance_pct"] = _pct(row["achieved"], row["achieved"] + row["breached"])
        levels: Counter[int] = Counter()
        kinds: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for (level, kind, reason), n in self.escalations.items():
            levels[level] += n
            kinds[kind] += n
            reasons[reason] += n
        funnel_levels = sorted(levels)  # every level raised by some ticket
        funnel: FunnelDict = {
            "tickets": self.tickets,
            "breached_any": sum(1 for f in self.ticket_flags.values() if f & 0xF),
            "escalated": len(self.ticket_level),
            "reached_level": {str(lv): sum(1 for v in self.ticket_level.values() if v >= lv) for lv in funnel_levels},
        }
        out: SummaryDict = {
            "policy": {"source": self.policy.source, "version": self.policy.version, "name": self.name},
            "input": {
                "lines": self.lines,
                "events": self.events,
                "rejected": sum(self.rejects.values()),
                "rejected_by_reason": dict(sorted(self.rejects.items())),
                "rejected_examples": [
                    {"line": r.line, "reason": r.reason, "detail": r.detail, "event_id": r.event_id}
                    for r in self.reject_examples
                ],
                "duplicates_ignored": self.duplicates,
                "after_until": self.after_until,
                "event_types": dict(sorted(self.event_types.items())),
            },
            "period": {
                "first_event": format_ms_or_none(self.first_ms),
                "last_event": format_ms_or_none(self.last_ms),
                "end": format_ms_or_none(self.end_ms),
            },
            "tickets": self.tickets,
            "metrics": _ordered(metrics),
            "compliance": {
                "by_priority": {p: _ordered(by_priority[p]) for p in sorted(by_priority, key=_prio_key)},
                "by_policy": {p: _ordered(by_policy[p]) for p in sorted(by_policy)},
            },
            "escalations": {
                "total": sum(self.escalations.values()),
                "by_level": {str(k): v for k, v in sorted(levels.items())},
                "by_kind": dict(sorted(kinds.items())),
                "by_reason": dict(sorted(reasons.items())),
            },
            "notifications": {
                "total": sum(self.notifications.values()),
                "by_kind": dict(sorted(self.notifications.items())),
            },
            "incidents": {"total": self.incident_count, "list": self.incidents},
            "outputs": dict(sorted(self.outputs.items())),
            "funnel": funnel,
            "durations": self.durations(),
        }
        self._optional_sections(out)
        return out

    def _optional_sections(self, out: SummaryDict) -> None:
        """Sections only runs that have them carry (so other runs' JSON stays as it was)."""
        if self._agreement_cycles:
            out["agreements"] = self._agreements()
        analytics = self._analytics()
        if analytics is not None:
            out["analytics"] = analytics

    def _analytics(self) -> AnalyticsDict | None:
        """Escalation analytics (only what the run has): time in escalation by level and why they ended, CSAT by the
        highest level a ticket reached, the most frequent root causes."""
        if not (self.open_by_level or self.ratings_by_level or self.root_causes):
            return None
        open_time: dict[str, OpenTimeRow] = {}
        for level in sorted(self.open_by_level):
            values = sorted(self.open_by_level[level])
            open_time[str(level)] = {
                "n": len(values),
                "p50_s": _seconds(_percentile(values, 0.5)),
                "p90_s": _seconds(_percentile(values, 0.9)),
            }
        csat: dict[str, CsatRow] = {
            str(level): {"n": len(r), "mean": round(sum(r) / len(r), 2), "low": sum(1 for x in r if x <= 2)}
            for level, r in sorted(self.ratings_by_level.items())
        }
        return {
            "resolved_by_reason": dict(sorted(self.resolutions.items())),
            "open_time_by_level": open_time,
            "csat_by_level": csat,
            "root_causes": dict(self.root_causes.most_common(10)),
        }

    def durations(self) -> dict[str, dict[str, DurationRow]]:
        """Per metric and priority: ended cycles, percentiles of open time and the share within target."""
        out: dict[str, dict[str, DurationRow]] = {}
        for metric in METRICS:
            by_prio = self.elapsed.get(metric)
            if not by_prio:
                continue
            rows: dict[str, DurationRow] = {}
            for prio in sorted(by_prio, key=_prio_key):
                elapsed, targets = by_prio[prio]
                values = sorted(elapsed)
                within = sum(1 for e, t in zip(elapsed, targets, strict=True) if e < t)
                rows[prio] = {
                    "n": len(values),
                    "p50_s": _seconds(_percentile(values, 0.5)),
                    "p90_s": _seconds(_percentile(values, 0.9)),
                    "targets_s": sorted({t / 1000 for t in targets}),
                    "within_target_pct": _pct(within, len(values)),
                }
            out[metric] = rows
        return out

    def breaches_by_day(self) -> list[tuple[str, dict[str, int]]]:
        days: dict[str, dict[str, int]] = {}
        for (day, metric), n in self.breaches_per_day.items():
            days.setdefault(day, {})[metric] = n
        return sorted(days.items())

    def created_by_day(self) -> list[tuple[str, int]]:
        return [(_day_text(d), n) for d, n in sorted(self.created_per_day.items())]


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _ordered(metrics: Mapping[str, MetricRow]) -> dict[str, MetricRow]:
    """The built-in metrics in their order, then the ones the policy file defines, by name."""
    return {m: metrics[m] for m in [*METRICS, *sorted(set(metrics) - set(METRICS))] if m in metrics}


def compare(a: Summary, b: Summary, *, examples: int = 30) -> dict[str, ComparisonRow]:
    """Tickets whose outcome differs between two runs over the same input: per metric, how many breached under one
    policy and not the other, by priority, with the first ``examples`` ticket ids of each kind."""
    out: dict[str, ComparisonRow] = {}
    for metric in METRICS:
        measured = a.ticket_measured(metric) | b.ticket_measured(metric)
        if not measured:
            continue
        ba, bb = a.ticket_breached(metric), b.ticket_breached(metric)
        only_a = sorted(ba - bb)
        only_b = sorted(bb - ba)
        by_priority: dict[str, ChangedCounts] = {}
        sides: tuple[tuple[Literal["only_a", "only_b"], list[str]], ...] = (("only_a", only_a), ("only_b", only_b))
        for side, tickets in sides:
            for t in tickets:
                prio = (a.ticket_info.get(t) or b.ticket_info.get(t) or ("?", None))[0]
                row = by_priority.setdefault(prio, {"only_a": 0, "only_b": 0})
                row[side] += 1
        out[metric] = {
            "tickets_measured": len(measured),
            "breached_a": len(ba),
            "breached_b": len(bb),
            "breached_only_a": len(only_a),
            "breached_only_b": len(only_b),
            "by_priority": {p: by_priority[p] for p in sorted(by_priority, key=_prio_key)},
            "examples_only_a": only_a[:examples],
            "examples_only_b": only_b[:examples],
        }
    return out


def agreement(summary: Summary, labels: Mapping[str, bool], metric: str = "resolution") -> AgreementDict:
    """Compare the engine's verdict (``metric`` breached or not) with an external per-ticket label (``True``: the
    source system says the ticket made its SLA), per priority. Tickets missing on either side are counted apart."""
    breached = summary.ticket_breached(metric)
    measured = summary.ticket_measured(metric)
    rows: dict[str, Counter[str]] = {}
    missing_in_run = 0
    for tid, made in labels.items():
        info = summary.ticket_info.get(tid)
        if info is None or tid not in measured:
            missing_in_run += 1
            continue
        engine_made = tid not in breached
        key = ("agree_" if engine_made == made else "disagree_") + ("made" if made else "missed")
        rows.setdefault(info[0], Counter())[key] += 1
    table: dict[str, AgreementRow] = {}
    total: Counter[str] = Counter()
    for prio in sorted(rows, key=_prio_key):
        c = rows[prio]
        total.update(c)
        table[prio] = _agreement_row(c)
    return {
        "metric": metric,
        "labels": len(labels),
        "unmatched": missing_in_run,
        "by_priority": table,
        "total": _agreement_row(total),
    }


def _agreement_row(c: Counter[str]) -> AgreementRow:
    n = sum(c.values())
    agree = c["agree_made"] + c["agree_missed"]
    return {
        "tickets": n,
        "agree": agree,
        "agreement_pct": _pct(agree, n),
        # label says made, engine says breached / label says missed, engine says met
        "engine_breached_label_made": c["disagree_made"],
        "engine_met_label_missed": c["disagree_missed"],
        "label_made": c["agree_made"] + c["disagree_made"],
        "engine_made": c["agree_made"] + c["disagree_missed"],
    }


# ---------------------------------------------------------------------------------------------------------------
# Text


def _compliance_of(d: SummaryDict, metric: str) -> float | None:
    row = d["metrics"].get(metric)
    return None if row is None else row["compliance_pct"]


def _fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def format_span(seconds: float | None, units: tuple[str, str, str] = ("m", "h", "d"), none: str = "-") -> str:
    """A readable open-time span: minutes below an hour, hours below two days, then days."""
    if seconds is None:
        return none
    if seconds < 3600:
        return f"{seconds / 60:.0f}{units[0]}"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f}{units[1]}"
    return f"{seconds / 86400:.1f}{units[2]}"


def format_text(d: SummaryDict, other: SummaryDict | None = None) -> str:
    """The human summary printed on stdout (``d`` is :meth:`Summary.to_dict`; ``other`` the compared run)."""
    lines: list[str] = []
    for section in (_text_compliance, _text_outputs, _text_durations):
        section(d, lines.append)
    _text_agreements(d, lines.append)
    _text_analytics(d, lines.append)
    _text_agreement(d, other, lines.append)
    _text_comparison(d, other, lines.append)
    return "\n".join(lines) + "\n"


def _text_compliance(d: SummaryDict, add: Callable[[str], None]) -> None:
    inp = d["input"]
    add(f"policy   {d['policy']['source']} (version {d['policy']['version']})")
    add(
        f"input    {inp['lines']:,} lines, {inp['events']:,} events, {d['tickets']:,} tickets, "
        f"{inp['rejected']:,} rejected, {inp['duplicates_ignored']:,} duplicates ignored"
        + (f", {inp['after_until']:,} after --until (not applied)" if inp["after_until"] else "")
    )
    if inp["rejected"]:
        add("         rejected by reason: " + ", ".join(f"{k} {v:,}" for k, v in inp["rejected_by_reason"].items()))
    per = d["period"]
    add(f"period   {per['first_event']} .. {per['last_event']}, run ended at {per['end']}")
    add("")
    add(f"{'metric':<17}{'achieved':>10}{'breached':>10}{'running':>10}{'compliance':>12}")
    for metric, row in d["metrics"].items():
        add(
            f"{metric:<17}{row['achieved']:>10,}{row['breached']:>10,}{row['running']:>10,}"
            f"{_fmt_pct(row['compliance_pct']):>12}"
        )
    for title, table in (("priority", d["compliance"]["by_priority"]), ("policy", d["compliance"]["by_policy"])):
        add("")
        metrics = [m for m in METRICS if any(m in row for row in table.values())]
        add(f"compliance by {title:<10}" + "".join(f"{m:>17}" for m in metrics))
        for key, by_metric in table.items():
            cells = []
            for m in metrics:
                r = by_metric.get(m)
                cells.append(
                    "-" if r is None else f"{_fmt_pct(r['compliance_pct'])} ({r['achieved'] + r['breached']:,})"
                )
            add(f"  {key:<22}" + "".join(f"{c:>17}" for c in cells))


def _text_outputs(d: SummaryDict, add: Callable[[str], None]) -> None:
    esc = d["escalations"]
    add("")
    add(f"escalations {esc['total']:,}")
    if esc["total"]:
        add("  by level:  " + ", ".join(f"L{k} {v:,}" for k, v in esc["by_level"].items()))
        add("  by kind:   " + ", ".join(f"{k} {v:,}" for k, v in esc["by_kind"].items()))
        add("  by reason: " + ", ".join(f"{k} {v:,}" for k, v in esc["by_reason"].items()))
        fun = d["funnel"]
        add(
            f"  tickets: {fun['tickets']:,}, breached {fun['breached_any']:,}, escalated {fun['escalated']:,}; "
            + ", ".join(f"reached L{k} {v:,}" for k, v in fun["reached_level"].items())
        )
    notes = d["notifications"]
    add(f"notifications {notes['total']:,}")
    if notes["total"]:
        add("  by kind: " + ", ".join(f"{k} {v:,}" for k, v in notes["by_kind"].items()))
    inc = d["incidents"]
    add(f"incidents {inc['total']:,}")
    for i in inc["list"][:10]:
        add(f"  {i['fired_at']}  {i['rule']}: {i['count']} tickets with {i['group_by']} = {i['group_value']}")
    if inc["total"] > 10:
        add(f"  ... and {inc['total'] - 10:,} more")


def _text_durations(d: SummaryDict, add: Callable[[str], None]) -> None:
    durations = d["durations"]
    if durations:
        add("")
        add(f"{'open time to':<17}{'priority':<10}{'cycles':>8}{'p50':>8}{'p90':>8}{'within target':>15}")
        for metric, rows in durations.items():
            for prio, r in rows.items():
                add(
                    f"{metric:<17}{prio:<10}{r['n']:>8,}{format_span(r['p50_s']):>8}{format_span(r['p90_s']):>8}"
                    f"{_fmt_pct(r['within_target_pct']):>15}"
                )


def _text_analytics(d: SummaryDict, add: Callable[[str], None]) -> None:
    a = d.get("analytics")
    if not a:
        return
    add("")
    if a["resolved_by_reason"]:
        add("escalations resolved: " + ", ".join(f"{k} {v:,}" for k, v in a["resolved_by_reason"].items()))
        for level, row in a["open_time_by_level"].items():
            add(f"  L{level} open: {row['n']:,}, p50 {format_span(row['p50_s'])}, p90 {format_span(row['p90_s'])}")
    if a["csat_by_level"]:
        add(
            "rating by highest escalation level: "
            + ", ".join(
                f"{'none' if lv == '0' else 'L' + lv} {r['mean']:.2f} ({r['n']:,}, {r['low']:,} low)"
                for lv, r in a["csat_by_level"].items()
            )
        )
    if a["root_causes"]:
        add("root causes: " + ", ".join(f"{k} {v:,}" for k, v in a["root_causes"].items()))


def _text_agreements(d: SummaryDict, add: Callable[[str], None]) -> None:
    """Compliance of the agreements beside the customer SLA, per agreement, group and metric."""
    agreements = d.get("agreements")
    if not agreements:
        return
    add("")
    add(
        f"{'agreement':<14}{'group':<16}{'metric':<17}{'achieved':>10}{'breached':>10}{'running':>10}{'compliance':>12}"
    )
    for agreement, groups in agreements.items():
        for group, metrics in groups.items():
            for metric, row in metrics.items():
                add(
                    f"{agreement:<14}{group:<16}{metric:<17}{row['achieved']:>10,}{row['breached']:>10,}"
                    f"{row['running']:>10,}{_fmt_pct(row['compliance_pct']):>12}"
                )


def _text_agreement(d: SummaryDict, other: SummaryDict | None, add: Callable[[str], None]) -> None:
    if "agreement" in d:
        ag = d["agreement"]
        add("")
        add(f"agreement with the source's own SLA verdicts ({ag['metric']}; {ag['labels']:,} labelled tickets)")
        add(
            f"  {'priority':<10}{'tickets':>9}{'agree':>9}{'eng. breached/label made':>26}{'eng. met/label missed':>24}"
        )
        for prio, r in [*ag["by_priority"].items(), ("all", ag["total"])]:
            add(
                f"  {prio:<10}{r['tickets']:>9,}{_fmt_pct(r['agreement_pct']):>9}"
                f"{r['engine_breached_label_made']:>26,}{r['engine_met_label_missed']:>24,}"
            )
    if other is not None and "agreement" in other:
        total = other["agreement"]["total"]
        add(
            f"  B ({other['policy']['source']}): agreement {_fmt_pct(total['agreement_pct'])} "
            f"over {total['tickets']:,} tickets"
        )


def _text_comparison(d: SummaryDict, other: SummaryDict | None, add: Callable[[str], None]) -> None:
    if other is not None and "comparison" in d:
        add("")
        add(f"compared with {other['policy']['source']} (version {other['policy']['version']})")
        add(f"  {'metric':<17}{'compliance A':>14}{'compliance B':>14}{'breached only A':>17}{'breached only B':>17}")
        for metric, c in d["comparison"].items():
            pa, pb = _compliance_of(d, metric), _compliance_of(other, metric)
            add(
                f"  {metric:<17}{_fmt_pct(pa):>14}{_fmt_pct(pb):>14}"
                f"{c['breached_only_a']:>17,}{c['breached_only_b']:>17,}"
            )
