"""The Grafana dashboard of escalator, generated from code with Grafana's own SDK (grafana-foundation-sdk).

    .venv/bin/python tools/dashboards.py            # (make dashboards) writes deploy/grafana/dashboards/escalator.json
    .venv/bin/python tools/dashboards.py --check    # exit 1 when the checked-in file differs from this code

The JSON is never edited by hand: tests/unit/test_observability.py fails when it differs from :func:`render`, checks
that every metric the panels read exists in the processes' catalogues, and tests/integration/test_promtool.py has
promtool parse every panel expression. Heavy queries read the recording rules of deploy/prometheus/rules.yml
(``job...:escalator_...:...``), so the dashboard expects them loaded; docs/operations.md says how to read it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

__all__ = ["OUTPUT", "build", "expressions", "main", "render"]

OUTPUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards" / "escalator.json"
UID = "escalator-overview"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
_REF_IDS = "ABCDEFGH"


def _query(expr: str, legend: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).datasource(DATASOURCE).range()


def _series(
    title: str, description: str, unit: str, queries: list[tuple[str, str]], *, stacked: bool = False, width: int = 8
) -> timeseries.Panel:
    """A time series panel; ``queries`` are (PromQL, legend) pairs."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .height(8)
        .span(width)
        .fill_opacity(10)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(common.StackingMode.NORMAL))
    for ref_id, (expr, legend) in zip(_REF_IDS, queries, strict=False):
        panel = panel.with_target(_query(expr, legend).ref_id(ref_id))
    return panel


def _stat(title: str, description: str, unit: str, expr: str, red_above: float | None = None) -> stat.Panel:
    """A single number; turns red above ``red_above`` when given."""
    steps = [model.Threshold(value=None, color="green")]
    if red_above is not None:
        steps.append(model.Threshold(value=red_above, color="red"))
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(4)
        .span(4)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.AREA)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]))
        .thresholds(dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps))
        .with_target(_query(expr, title).ref_id("A"))
    )


def _overview(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Overview"))
        .with_panel(
            _stat(
                "Events in / s",
                "Ticket events consumed by the workers.",
                "reqps",
                "sum(job_type:escalator_events_consumed:rate5m)",
            )
        )
        .with_panel(
            _stat(
                "Dead letters / s",
                "Input records sent to the dead-letter topic (any reason).",
                "reqps",
                "sum(job_reason:escalator_events_rejected:rate5m) or vector(0)",
                red_above=0,
            )
        )
        .with_panel(_stat("Open tickets", "Open tickets held by the workers.", "short", "sum(escalator_open_tickets)"))
        .with_panel(
            _stat(
                "Tickets at risk",
                "Open tickets with an SLA threshold within 15 minutes, or overdue.",
                "short",
                "sum(escalator_tickets_at_risk)",
            )
        )
        .with_panel(
            _stat(
                "Consumer lag",
                "Input records not yet processed, all partitions.",
                "short",
                "sum(escalator_consumer_lag)",
                red_above=10000,
            )
        )
        .with_panel(
            _stat(
                "Workers not ready",
                "Workers recovering or rebalancing (escalator_ready == 0); their partitions are silent.",
                "short",
                "count(escalator_ready == 0) or vector(0)",
                red_above=0,
            )
        )
    )


def _input(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Input"))
        .with_panel(
            _series(
                "Ingest rate by event type",
                "Ticket events consumed per second, by CloudEvent type.",
                "reqps",
                [("sum by (type) (job_type:escalator_events_consumed:rate5m)", "{{type}}")],
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Dead-letter rate by reason",
                "Input records sent to the dead-letter topic per second, by reason (escalator-dlq-reason header).",
                "reqps",
                [("sum by (reason) (job_reason:escalator_events_rejected:rate5m)", "{{reason}}")],
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Duplicates ignored",
                "Input events ignored as duplicates (same source and id): redelivery, harmless.",
                "reqps",
                [("sum(rate(escalator_events_duplicate_total[$__rate_interval]))", "duplicates")],
            )
        )
    )


def _service_levels(board: dash.Dashboard) -> dash.Dashboard:
    smp = "job_metric_priority_policy"
    return (
        board.with_row(dash.Row("Service levels"))
        .with_panel(
            _series(
                "SLA breaches by metric / priority / policy",
                "Targets breached per second.",
                "reqps",
                [
                    (
                        f"sum by (metric, priority, policy) ({smp}:escalator_sla_breaches:rate5m)",
                        "{{metric}} {{priority}} {{policy}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "SLA warnings by metric / priority / policy",
                "Warnings sent per second (warn_at fractions and ladder steps before the target).",
                "reqps",
                [
                    (
                        f"sum by (metric, priority, policy) ({smp}:escalator_sla_warnings:rate5m)",
                        "{{metric}} {{priority}} {{policy}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Breach ratio by priority (1 h, 1 d)",
                "Share of metric cycles ended in the window that were breached (escalator_sla_outcomes_total).",
                "percentunit",
                [
                    ("job_priority:escalator_sla_outcomes:breached_ratio_1h", "{{priority}} 1h"),
                    ("job_priority:escalator_sla_outcomes:breached_ratio_1d", "{{priority}} 1d"),
                ],
            )
        )
        .with_panel(
            _series(
                "Escalations by level / kind / reason",
                "Escalations raised per second: SLA ladders (hierarchical), triggers, incidents.",
                "reqps",
                [
                    (
                        "sum by (level, kind, reason) (job_level_kind_reason:escalator_escalations:rate5m)",
                        "L{{level}} {{kind}} {{reason}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Time to first escalation (median)",
                "From a ticket's creation to its first escalation (event time), by the escalation's level and reason.",
                "s",
                [
                    (
                        "histogram_quantile(0.5, sum by (level, reason, le) "
                        "(rate(escalator_time_to_first_escalation_seconds_bucket[$__rate_interval])))",
                        "L{{level}} {{reason}}",
                    )
                ],
            )
        )
        .with_panel(
            _series(
                "Open tickets by priority",
                "Open tickets held by the workers.",
                "short",
                [("sum by (priority) (escalator_open_tickets)", "{{priority}}")],
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Tickets at risk over time",
                "Open tickets with an SLA threshold within 15 minutes (to the minute), or overdue.",
                "short",
                [("sum(escalator_tickets_at_risk)", "at risk")],
            )
        )
    )


def _timeliness(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Timeliness"))
        .with_panel(
            _series(
                "Timer lateness p50 / p99",
                "From a threshold's due instant to its output being produced; ~1 s (the allowed lateness) is normal.",
                "s",
                [
                    ("job:escalator_timer_lateness_seconds:p50_5m", "p50 {{job}}"),
                    ("job:escalator_timer_lateness_seconds:p99_5m", "p99 {{job}}"),
                ],
            )
        )
        .with_panel(
            _series(
                "Event lag p50 / p99",
                "From an input event's time to its processing (includes the ticket system's own publishing delay).",
                "s",
                [
                    ("job:escalator_event_lag_seconds:p50_5m", "p50 {{job}}"),
                    ("job:escalator_event_lag_seconds:p99_5m", "p99 {{job}}"),
                ],
            )
        )
        .with_panel(
            _series(
                "Consumer lag by partition",
                "Input records not yet processed, per input partition (one line stuck high: a stuck partition).",
                "short",
                [("max by (partition) (escalator_consumer_lag)", "partition {{partition}}")],
            )
        )
    )


def _workers(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Workers"))
        .with_panel(
            _series(
                "Readiness by worker",
                "1 once a worker's partitions are recovered and its deadline index built.",
                "short",
                [("max by (instance) (escalator_ready)", "{{instance}}")],
                width=6,
            )
        )
        .with_panel(
            _series(
                "Recovery time by worker (p99)",
                "Time to recover a partition store from its changelog, after an assignment or a re-validation.",
                "s",
                [
                    (
                        "histogram_quantile(0.99, sum by (instance, le) "
                        "(rate(escalator_recovery_seconds_bucket[$__rate_interval])))",
                        "{{instance}}",
                    )
                ],
                width=6,
            )
        )
        .with_panel(
            _series(
                "Ownership checks and recovery stalls",
                "Partitions re-validated by reason (lease, gap, released), and recoveries that stalled.",
                "short",
                [
                    ("sum by (reason) (increase(escalator_ownership_checks_total[$__rate_interval]))", "{{reason}}"),
                    ("sum(increase(escalator_recovery_stalls_total[$__rate_interval]))", "recovery stalls"),
                ],
                width=6,
            )
        )
        .with_panel(
            _series(
                "Policy version in force",
                "Workers running each policy version (a content hash); two lines = a rollout in progress.",
                "short",
                [("count by (version) (escalator_policy_info)", "{{version}}")],
                width=6,
            )
        )
    )


def _gateway(board: dash.Dashboard) -> dash.Dashboard:
    return (
        board.with_row(dash.Row("Gateway (escalator gateway)"))
        .with_panel(
            _series(
                "Requests by source / outcome",
                "Webhook and CloudEvents requests per second; unavailable = 503 (the broker did not acknowledge).",
                "reqps",
                [
                    (
                        "sum by (source, outcome) (job_source_outcome:escalator_gateway_requests:rate5m)",
                        "{{source}} {{outcome}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            _series(
                "Mapping failures by source / reason",
                "Requests that could not be mapped to valid v1 events (422, nothing produced).",
                "reqps",
                [
                    (
                        "sum by (source, reason) (rate(escalator_gateway_mapping_failures_total[$__rate_interval]))",
                        "{{source}} {{reason}}",
                    )
                ],
            )
        )
        .with_panel(
            _series(
                "Produce latency p99 / events produced",
                "From a request's first record handed to the producer to the broker's last acknowledgement; events "
                "acknowledged per second.",
                "s",
                [
                    ("job:escalator_gateway_produce_seconds:p99_5m", "p99 {{job}}"),
                    ("sum by (source) (rate(escalator_gateway_events_total[$__rate_interval]))", "events/s {{source}}"),
                ],
            )
        )
    )


def _notify(board: dash.Dashboard) -> dash.Dashboard:
    rate = "[$__rate_interval]"
    return (
        board.with_row(dash.Row("Notifications (escalator notify)"))
        .with_panel(
            _series(
                "Delivered / failed by channel",
                "Notifications delivered and failed delivery attempts per second (a failure is retried).",
                "reqps",
                [
                    (f"sum by (channel) (rate(escalator_notify_delivered_total{rate}))", "delivered {{channel}}"),
                    (
                        f"sum by (channel, reason) (rate(escalator_notify_failed_total{rate}))",
                        "failed {{channel}} {{reason}}",
                    ),
                ],
                width=6,
            )
        )
        .with_panel(
            _series(
                "Dead-lettered / suppressed",
                "Notifications given up on (the delivery DLQ) by channel, and not sent on purpose by reason.",
                "short",
                [
                    (f"sum by (channel) (increase(escalator_notify_dead_lettered_total{rate}))", "DLQ {{channel}}"),
                    (f"sum by (reason) (increase(escalator_notify_suppressed_total{rate}))", "suppressed {{reason}}"),
                ],
                width=6,
            )
        )
        .with_panel(
            _series(
                "Delivery latency p50 / p99",
                "From a notification's fired_at to its delivery.",
                "s",
                [
                    ("job:escalator_notify_delivery_latency_seconds:p50_5m", "p50 {{job}}"),
                    ("job:escalator_notify_delivery_latency_seconds:p99_5m", "p99 {{job}}"),
                ],
                width=6,
            )
        )
        .with_panel(
            _series(
                "Relay readiness",
                "1 once a relay has its partitions.",
                "short",
                [("max by (instance) (escalator_notify_ready)", "{{instance}}")],
                width=6,
            )
        )
    )


def build() -> dict[str, Any]:
    """The dashboard as Grafana's JSON model (the SDK's output, with unique panel ids)."""
    board = (
        dash.Dashboard("escalator")
        .uid(UID)
        .description("SLA clocks, escalations, timeliness and the health of the escalator processes.")
        .tags(["escalator"])
        .time("now-6h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(dash.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for section in (_overview, _input, _service_levels, _timeliness, _workers, _gateway, _notify):
        board = section(board)
    payload: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for number, panel in enumerate(payload["panels"], start=1):
        panel["id"] = number  # unique ids: Grafana keys panel state and links on them
    return payload


def render() -> str:
    """The dashboard's JSON text, exactly as checked in."""
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def expressions() -> list[tuple[str, str]]:
    """Every (panel title, PromQL expression) of the dashboard, in order."""
    found: list[tuple[str, str]] = []
    for panel in json.loads(render())["panels"]:
        found.extend((panel["title"], target["expr"]) for target in panel.get("targets", ()))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only compare the checked-in file with the code")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is out of date: run `make dashboards`", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT} ({len(expressions())} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
