"""Escalation analytics: time in escalation, rating by highest level, root causes -- in simulate's summary, its
text and its report, and in the worker's metrics."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from escalator.core import Emit, load_policy_text
from escalator.replay.report import render_report
from escalator.replay.run import run_lines
from escalator.replay.summary import format_text
from escalator.service.metrics import Metrics
from tests.support import envelope

POLICY = """
version: 1
policies:
  - id: p
    match: {}
    targets: {first_response: 1h}
    resolve_events: true
    escalation: [{after: 0m, level: 1, notify: [{role: lead}]}, {after: 1h, level: 2, notify: [{role: boss}]}]
"""
PS = load_policy_text(POLICY, "a.yaml")


def lines() -> list[tuple[int, bytes]]:
    docs = [
        envelope("ticket.created", "2026-11-23T10:00:00Z", "A", {"priority": "high", "requester": {"id": "r"}}),
        envelope("ticket.commented", "2026-11-23T12:30:00Z", "A", {"author": "agent"}),  # L1 open 1.5 h, L2 0.5 h
        envelope("ticket.status_changed", "2026-11-23T13:00:00Z", "A", {"status": "solved", "root_cause": "bug"}),
        envelope("ticket.rated", "2026-11-23T14:00:00Z", "A", {"score": 2}),
        envelope("ticket.created", "2026-11-23T10:00:00Z", "B", {"priority": "low", "requester": {"id": "r"}}),
        envelope("ticket.commented", "2026-11-23T10:10:00Z", "B", {"author": "agent"}),
        envelope("ticket.status_changed", "2026-11-23T10:20:00Z", "B", {"status": "solved", "root_cause": "bug"}),
        envelope("ticket.rated", "2026-11-23T11:00:00Z", "B", {"score": 5}),
    ]
    docs.sort(key=lambda d: d["time"])
    return [(i, orjson.dumps(d)) for i, d in enumerate(docs, 1)]


def test_the_summary_reports_time_in_escalation_csat_by_level_and_root_causes() -> None:
    result = run_lines(lines(), PS)
    a = result.summary.to_dict()["analytics"]
    assert a["resolved_by_reason"] == {"clock_achieved": 2}
    assert a["open_time_by_level"] == {
        "1": {"n": 1, "p50_s": 5400.0, "p90_s": 5400.0},
        "2": {"n": 1, "p50_s": 1800.0, "p90_s": 1800.0},
    }
    assert a["csat_by_level"] == {"0": {"n": 1, "mean": 5.0, "low": 0}, "2": {"n": 1, "mean": 2.0, "low": 1}}
    assert a["root_causes"] == {"bug": 2}
    text = format_text(result.summary.to_dict())
    assert "rating by highest escalation level: none 5.00 (1, 0 low), L2 2.00 (1, 1 low)" in text
    html = render_report(result.summary, result.summary.to_dict(), title="t")
    assert "Escalation analytics" in html and "Time in escalation" in html


def test_the_worker_counts_resolutions_and_their_open_time() -> None:
    metrics = Metrics(CollectorRegistry())
    event = {
        "type": "escalation.resolved",
        "data": {"level": 2, "reason": "deescalated", "open_ms": 90_000, "escalation_id": "x"},
    }
    raised = {
        "type": "escalation.raised",
        "data": {"level": 1, "kind": "functional", "reason": "trigger", "trigger": "legal"},
    }
    metrics.observe_emits(
        [(Emit("escalations", "T", event), "high", False), (Emit("escalations", "T", raised), "high", False)]
    )
    reg = metrics.registry
    assert reg.get_sample_value("escalator_escalations_resolved_total", {"level": "2", "reason": "deescalated"}) == 1
    assert reg.get_sample_value("escalator_escalation_open_seconds_count", {"level": "2"}) == 1
    assert reg.get_sample_value("escalator_escalation_open_seconds_sum", {"level": "2"}) == 90.0
    assert reg.get_sample_value("escalator_escalations_by_trigger_total", {"trigger": "legal"}) == 1


def test_time_to_first_escalation_is_measured_once_per_ticket_by_level_and_reason() -> None:
    from escalator.core import FirstEscalation
    from escalator.replay.simulate import simulate_lines

    firsts = [c for c in simulate_lines(lines(), PS) if type(c) is FirstEscalation]
    # A escalates at L1 (0m after the 1h target) and at L2 later: only the first is timed; B replies in time
    assert [(f.ticket_id, f.level, f.reason, f.elapsed_ms) for f in firsts] == [("A", 1, "sla_breach", 3_600_000)]
    metrics = Metrics(CollectorRegistry())
    metrics.observe_first_escalations(firsts)
    labels = {"level": "1", "reason": "sla_breach"}
    assert metrics.registry.get_sample_value("escalator_time_to_first_escalation_seconds_count", labels) == 1
    assert metrics.registry.get_sample_value("escalator_time_to_first_escalation_seconds_sum", labels) == 3600.0
