"""The what-if report: one self-contained HTML file (inline CSS and SVG charts, no scripts, no external assets).

Written for a support lead: compliance by priority and by policy, SLA breaches over time, the escalation ladder
funnel, time-to-first-response and time-to-resolution distributions against their targets, escalations,
notifications and incidents, the quality of the input and -- with a second policy -- the two side by side with the
tickets whose outcome changed. The same input always gives the same bytes (nothing in it reads the clock).

This module prepares the view data (rows, legends and the charts of :mod:`.charts`); the document is the Jinja2
template ``templates/report.html.j2`` with its sections in ``templates/_sections.html.j2``, the SVG macro in
``templates/_svg.html.j2`` and the style sheet ``templates/report.css``. Autoescaping is on: policy file names,
ticket ids, rules, group values, titles and notes come from the user's files and are always escaped.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import NamedTuple

from jinja2 import Environment, PackageLoader, StrictUndefined

from ..core import METRICS
from .charts import (
    A_COLOR,
    B_COLOR,
    BAD,
    GOOD,
    METRIC_COLOR,
    Chart,
    compliance_bars,
    duration_text,
    funnel,
    histogram,
    histogram_counts,
    number_text,
    stacked_columns,
)
from .summary import PRIORITY_ORDER, AgreementDict, AgreementRow, ComparisonRow, MetricRow, Summary, SummaryDict

__all__ = ["render_report"]

METRIC_LABEL = {
    "first_response": "First response",
    "next_reply": "Next reply",
    "periodic_update": "Periodic update",
    "resolution": "Resolution",
}


def _metric_label(metric: str) -> str:
    """A metric's column title (a metric the policy defines: its name, capitalised)."""
    return METRIC_LABEL.get(metric) or metric.replace("_", " ").capitalize()


_Legend = list[tuple[str, str]]  # (text, colour)


# ---------------------------------------------------------------------------------------------------------------
# Formatting (the templates' filters)


def _thousands(v: int) -> str:
    return f"{v:,}"


def _pct_text(v: float | None, none: str = "\N{EN DASH}") -> str:
    return none if v is None else f"{v:.1f}%"


def _pct_class(v: float | None) -> str:
    if v is None:
        return ""
    return "good" if v >= 95 else "mid" if v >= 80 else "bad"


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("escalator.replay", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        thousands=_thousands,
        pct=_pct_text,
        pct_class=_pct_class,
        duration=duration_text,
        coord=number_text,
        metric_label=_metric_label,
    )
    return env


# ---------------------------------------------------------------------------------------------------------------
# View data, one per section


class _ComplianceTable(NamedTuple):
    metrics: list[str]
    runs: int  # columns per metric
    rows: list[tuple[str, list[MetricRow | None]]]  # (priority or policy, a cell per metric and run)


class _Compliance(NamedTuple):
    legend: _Legend
    charts: list[tuple[str, Chart]]  # (metric, bars by priority)
    by_priority: _ComplianceTable
    by_policy: _ComplianceTable


class _Agreement(NamedTuple):
    agreement: AgreementDict
    with_b: bool
    rows: list[tuple[str, AgreementRow, AgreementRow | None]]  # (priority or "all", A, B)


class _Breaches(NamedTuple):
    unit: str
    legend: _Legend
    chart: Chart


class _Ladder(NamedTuple):
    legend: _Legend
    chart: Chart
    runs: list[tuple[str, SummaryDict]]


class _Distribution(NamedTuple):
    name: str | None
    legend: _Legend
    groups: list[tuple[str, list[Chart]]]  # (metric, a histogram per priority)


class _ComparedMetric(NamedTuple):
    metric: str
    c: ComparisonRow
    pct_a: float | None
    pct_b: float | None


def _run_legend(names: Sequence[str]) -> _Legend:
    return list(zip(names, (A_COLOR, B_COLOR), strict=False))


def _compliance_table(
    table: Mapping[str, Mapping[str, MetricRow]], other: Mapping[str, Mapping[str, MetricRow]] | None
) -> _ComplianceTable:
    tables = (table, other) if other else (table,)
    present = {m for t in tables for row in t.values() for m in row}
    metrics = [m for m in METRICS if m in present] + sorted(present - set(METRICS))
    keys = [*table, *(k for k in other or {} if k not in table)]
    rows = [(key, [t.get(key, {}).get(m) for m in metrics for t in tables]) for key in keys]
    return _ComplianceTable(metrics, len(tables), rows)


def _compliance_rows(
    metric: str,
    by_p: Mapping[str, Mapping[str, MetricRow]],
    ob_p: Mapping[str, Mapping[str, MetricRow]] | None,
    names: Sequence[str],
) -> list[tuple[str, list[tuple[str, float | None, int]]]]:
    prios = [p for p in PRIORITY_ORDER if metric in by_p.get(p, {}) or (ob_p and metric in ob_p.get(p, {}))]
    prios += [p for p in by_p if p not in PRIORITY_ORDER and metric in by_p[p]]
    rows = []
    for p in prios:
        series: list[tuple[str, float | None, int]] = []
        for name, table in zip(names, (by_p, ob_p) if ob_p is not None else (by_p,), strict=False):
            r = table.get(p, {}).get(metric)
            series.append((name, None, 0) if r is None else (name, r["compliance_pct"], r["achieved"] + r["breached"]))
        rows.append((p, series))
    return rows


def _compliance(d: SummaryDict, o: SummaryDict | None, names: Sequence[str]) -> _Compliance:
    by_p = d["compliance"]["by_priority"]
    ob_p = o["compliance"]["by_priority"] if o else None
    charts = []
    for metric in ("first_response", "resolution", "next_reply", "periodic_update"):
        rows = _compliance_rows(metric, by_p, ob_p, names)
        if rows:
            charts.append((metric, compliance_bars(rows, f"{METRIC_LABEL[metric]} compliance by priority")))
    return _Compliance(
        _run_legend(names) if o else [],
        charts,
        _compliance_table(by_p, ob_p),
        _compliance_table(d["compliance"]["by_policy"], o["compliance"]["by_policy"] if o else None),
    )


def _agreement(d: SummaryDict, o: SummaryDict | None) -> _Agreement | None:
    ag = d.get("agreement")
    if not ag:
        return None
    other = o.get("agreement") if o is not None else None
    rows: list[tuple[str, AgreementRow, AgreementRow | None]] = []
    for prio, r in [*ag["by_priority"].items(), ("all", ag["total"])]:
        rb = None if other is None else other["total"] if prio == "all" else other["by_priority"].get(prio)
        rows.append((prio, r, rb))
    return _Agreement(ag, other is not None, rows)


def _agreements(d: SummaryDict) -> list[tuple[str, _ComplianceTable]]:
    """Per agreement beside the customer SLA: compliance by group (rows) and metric (columns)."""
    return [(name, _compliance_table(groups, None)) for name, groups in (d.get("agreements") or {}).items()]


def _period_buckets(days: Sequence[str]) -> tuple[str, list[str], dict[str, str]]:
    """Choose day, ISO week or month buckets so the chart has at most ~120 columns."""
    if not days:
        return "day", [], {}
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    span = (last - first).days + 1
    unit = "day" if span <= 120 else "week" if span <= 7 * 120 else "month"
    labels: list[str] = []
    mapping: dict[str, str] = {}
    d = first
    while d <= last:
        if unit == "week":
            key = (d - timedelta(days=d.weekday())).isoformat()
        elif unit == "month":
            key = d.isoformat()[:7]
        else:
            key = d.isoformat()
        if not labels or labels[-1] != key:
            labels.append(key)
        mapping[d.isoformat()] = key
        d += timedelta(days=1)
    return unit, labels, mapping


def _breaches(s: Summary) -> _Breaches | None:
    created = dict(s.created_by_day())
    breaches = dict(s.breaches_by_day())
    days = sorted(set(created) | set(breaches))
    if not days:
        return None
    unit, labels, mapping = _period_buckets(days)
    index = {k: i for i, k in enumerate(labels)}
    metrics = [m for m in METRICS if any(m in v for v in breaches.values())]
    series_values = {m: [0] * len(labels) for m in metrics}
    created_values = [0] * len(labels)
    for day, per_metric in breaches.items():
        i = index[mapping[day]]
        for m, n in per_metric.items():
            series_values[m][i] += n
    for day, n in created.items():
        created_values[index[mapping[day]]] += n
    chart = stacked_columns(
        [lab[5:] if unit == "day" else lab for lab in labels],
        [(METRIC_LABEL[m], METRIC_COLOR[m], series_values[m]) for m in metrics],
        "SLA breaches over time",
        line=("tickets created", "#94a3b8", created_values),
    )
    legend = [(f"{METRIC_LABEL[m]} breaches", METRIC_COLOR[m]) for m in metrics]
    return _Breaches(unit, [*legend, ("tickets created (right axis)", "#94a3b8")], chart)


def _ladder(ds: Sequence[SummaryDict], names: Sequence[str]) -> _Ladder:
    levels = sorted({int(k) for d in ds for k in d["funnel"]["reached_level"]})
    stages: list[tuple[str, list[int]]] = [
        ("tickets", [d["funnel"]["tickets"] for d in ds]),
        ("breached an SLA", [d["funnel"]["breached_any"] for d in ds]),
    ]
    for lv in levels:
        stages.append((f"reached escalation level {lv}", [d["funnel"]["reached_level"].get(str(lv), 0) for d in ds]))
    chart = funnel(stages, [d["funnel"]["tickets"] for d in ds], names, "Escalation ladder funnel")
    return _Ladder(_run_legend(names) if len(ds) > 1 else [], chart, list(zip(names, ds, strict=False)))


def _distribution(s: Summary, d: SummaryDict, name: str | None) -> _Distribution | None:
    groups = []
    for metric in ("first_response", "resolution"):
        rows = d["durations"].get(metric)
        if not rows:
            continue
        charts = []
        for prio, r in rows.items():
            elapsed, targets_ms = s.elapsed.get(metric, {}).get(prio, ((), ()))
            within, beyond, targets = histogram_counts(elapsed, targets_ms)
            title = (
                f"{prio}: {r['n']:,} cycles, median {duration_text(r['p50_s'], '-')}, "
                f"p90 {duration_text(r['p90_s'], '-')}, {_pct_text(r['within_target_pct'], '-')} within target"
            )
            label = f"{METRIC_LABEL[metric]} time for {prio}"
            charts.append(histogram(within, beyond, targets, label, title=title))
        groups.append((metric, charts))
    if not groups:
        return None
    return _Distribution(name, [("within target", GOOD), ("beyond target", BAD)], groups)


def _comparison(d: SummaryDict, o: SummaryDict | None) -> list[_ComparedMetric] | None:
    comp = d.get("comparison")
    if not comp or o is None:
        return None
    return [
        _ComparedMetric(metric, c, _compliance_of(d, metric), _compliance_of(o, metric)) for metric, c in comp.items()
    ]


def _compliance_of(d: SummaryDict, metric: str) -> float | None:
    row = d["metrics"].get(metric)
    return None if row is None else row["compliance_pct"]


# ---------------------------------------------------------------------------------------------------------------
# The document


def render_report(
    summary: Summary,
    d: SummaryDict,
    *,
    other_summary: Summary | None = None,
    other: SummaryDict | None = None,
    title: str = "What-if replay",
    note: str | None = None,
) -> str:
    """The complete HTML document. ``d`` is ``summary.to_dict()`` (plus ``comparison``/``agreement`` when made)."""
    names = ["A", "B"] if other is not None else [d["policy"]["source"]]
    distributions = [_distribution(summary, d, "A" if other is not None else None)]
    if other_summary is not None and other is not None:
        distributions.append(_distribution(other_summary, other, "B"))
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            note=note,
            d=d,
            o=other,
            comparison=_comparison(d, other),
            compliance=_compliance(d, other, names),
            agreement=_agreement(d, other),
            agreements=_agreements(d),
            analytics=d.get("analytics"),
            breaches=_breaches(summary),
            ladder=_ladder([d, other] if other is not None else [d], names),
            distributions=[x for x in distributions if x is not None],
        )
    )
