"""The what-if report: one self-contained HTML file (inline CSS and SVG charts, no scripts, no external assets).

Written for a support lead: compliance by priority and by policy, SLA breaches over time, the escalation ladder
funnel, time-to-first-response and time-to-resolution distributions against their targets, escalations,
notifications and incidents, the quality of the input and -- with a second policy -- the two side by side with the
tickets whose outcome changed. The same input always gives the same bytes (nothing in it reads the clock).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..core import METRICS
from .summary import PRIORITY_ORDER, Summary, format_span

__all__ = [
    "DURATION_EDGES_S",
    "compliance_bars",
    "funnel",
    "histogram",
    "render_report",
    "stacked_columns",
]

# Histogram bucket edges for open time, in seconds (log-like); the last bucket is open-ended.
DURATION_EDGES_S = (
    0,
    60,
    300,
    900,
    1800,
    3600,
    7200,
    14400,
    28800,
    86400,
    172800,
    259200,
    432000,
    604800,
    1209600,
    2592000,
)
_EDGE_LABELS = ("0", "1m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "1d", "2d", "3d", "5d", "7d", "14d", "30d")
METRIC_LABEL = {
    "first_response": "First response",
    "next_reply": "Next reply",
    "periodic_update": "Periodic update",
    "resolution": "Resolution",
}
METRIC_COLOR = {
    "first_response": "#2563eb",
    "next_reply": "#7c3aed",
    "periodic_update": "#0891b2",
    "resolution": "#ea580c",
}
GOOD, BAD, MID = "#16a34a", "#dc2626", "#f59e0b"
A_COLOR, B_COLOR = "#2563eb", "#db2777"
FONT = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"

CSS = f"""
*{{box-sizing:border-box}}
body{{margin:0;background:#f4f6f9;color:#1e293b;{FONT};font-size:14px;line-height:1.45}}
main{{max-width:1120px;margin:0 auto;padding:28px 28px 48px}}
h1{{font-size:26px;margin:0 0 4px}}
h2{{font-size:18px;margin:0 0 4px}}
h3{{font-size:14px;margin:14px 0 6px;color:#334155}}
p.lead{{margin:0 0 18px;color:#475569}}
.sub{{color:#64748b;font-size:12.5px}}
section{{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:18px 22px;margin:0 0 18px}}
.tiles{{display:grid;grid-template-columns:repeat(auto-fit,minmax(118px,1fr));gap:12px;margin:0 0 18px}}
.tile{{background:#fff;border:1px solid #e2e8f0;border-radius:10px;padding:12px 14px}}
.tile .v{{font-size:24px;font-weight:650}}
.tile .l{{color:#64748b;font-size:12px;text-transform:uppercase;letter-spacing:.04em}}
.tile .d{{color:#64748b;font-size:12px}}
table{{border-collapse:collapse;width:100%;margin:6px 0 4px;font-size:13px}}
th,td{{padding:5px 8px;border-bottom:1px solid #eef2f6;text-align:right;white-space:nowrap}}
th{{color:#475569;font-weight:600;background:#f8fafc;white-space:normal}}
th:first-child,td:first-child{{text-align:left}}
td.l,th.l{{text-align:left}}
.good{{color:#15803d}}.bad{{color:#b91c1c}}.mid{{color:#b45309}}
.grid2{{display:grid;grid-template-columns:1fr 1fr;gap:18px}}
.charts{{display:grid;grid-template-columns:repeat(auto-fit,minmax(470px,1fr));gap:10px 24px}}
td.l,th.l{{white-space:normal}}
.legend span{{display:inline-block;margin-right:14px;font-size:12px;color:#475569}}
.legend i{{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}}
.note{{font-size:12.5px;color:#64748b;margin:8px 0 0}}
code{{font-size:12px;background:#f1f5f9;padding:1px 4px;border-radius:4px}}
footer{{color:#64748b;font-size:12px;margin-top:8px}}
svg text{{{FONT}}}
"""


# ---------------------------------------------------------------------------------------------------------------
# Formatting helpers


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _pct_text(v: float | None) -> str:
    return "&ndash;" if v is None else f"{v:.1f}%"


def _pct_class(v: float | None) -> str:
    if v is None:
        return ""
    return "good" if v >= 95 else "mid" if v >= 80 else "bad"


def _dur(seconds: float | None) -> str:
    return format_span(seconds, (" min", " h", " d"), "&ndash;")


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return float(m * exp)
    return float(10 * exp)


def _legend(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="legend">'
        + "".join(f'<span><i style="background:{c}"></i>{_e(t)}</span>' for t, c in items)
        + "</div>"
    )


# ---------------------------------------------------------------------------------------------------------------
# SVG charts


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(label)}" width="100%" '
        f'viewBox="0 0 {width} {height}" style="max-width:{width}px">{body}</svg>'
    )


def compliance_bars(rows: Sequence[tuple[str, Sequence[tuple[str, float | None, int]]]], label: str) -> str:
    """Horizontal bars 0..100 %: ``rows`` = [(group label, [(series label, pct, n), ...])]. One bar per series."""
    series_n = max((len(s) for _, s in rows), default=1)
    bar_h, gap, left, right, top = 18, 4, 70, 150, 22
    group_h = series_n * (bar_h + gap) + 10
    width = 560
    plot_w = width - left - right
    height = top + group_h * len(rows) + 8
    parts: list[str] = []
    for tick in (0, 25, 50, 75, 100):
        x = left + plot_w * tick / 100
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#e2e8f0"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{top - 8}" font-size="11" fill="#64748b" text-anchor="middle">{tick}%</text>'
        )
    for gi, (group, series) in enumerate(rows):
        y0 = top + gi * group_h
        parts.append(
            f'<text x="{left - 8}" y="{y0 + (len(series) * (bar_h + gap)) / 2 + 2:.1f}" font-size="13" '
            f'text-anchor="end" fill="#1e293b">{_e(group)}</text>'
        )
        for si, (name, pct, n) in enumerate(series):
            y = y0 + si * (bar_h + gap)
            color = A_COLOR if si == 0 else B_COLOR
            if len(series) == 1:
                color = GOOD if (pct or 0) >= 95 else MID if (pct or 0) >= 80 else BAD
            w = 0.0 if pct is None else plot_w * pct / 100
            parts.append(f'<rect x="{left}" y="{y}" width="{plot_w}" height="{bar_h}" fill="#f1f5f9" rx="2"/>')
            if pct is not None:
                parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}" rx="2"/>')
            text = "no data" if pct is None else f"{pct:.1f}%  ({n:,})"
            prefix = f"{name}: " if len(series) > 1 else ""
            parts.append(
                f'<text x="{left + plot_w + 6}" y="{y + bar_h - 5}" font-size="12" fill="#334155">'
                f"{_e(prefix)}{_e(text)}</text>"
            )
    return _svg(width, height, "".join(parts), label)


def stacked_columns(
    buckets: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    label: str,
    *,
    line: tuple[str, str, Sequence[int]] | None = None,
    height: int = 220,
) -> str:
    """Stacked columns over time (``series`` = [(name, color, values per bucket)]), optionally with a line on a
    second axis (``line`` = (name, color, values))."""
    width, left, right, top, bottom = 1040, 52, 52 if line else 16, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(buckets))
    totals = [sum(s[2][i] for s in series) for i in range(len(buckets))]
    ymax = _nice_max(max(totals, default=0))
    parts: list[str] = []
    for k in range(5):
        v = ymax * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eef2f6"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="10" fill="#64748b" text-anchor="end">{v:,.0f}</text>'
        )
    col_w = plot_w / n
    bw = max(1.0, col_w * 0.8)
    for i in range(len(buckets)):
        y = top + plot_h
        for _, color, values in series:
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y -= h
            parts.append(
                f'<rect x="{left + i * col_w + (col_w - bw) / 2:.1f}" y="{y:.1f}" width="{bw:.1f}" '
                f'height="{h:.1f}" fill="{color}"/>'
            )
    if line is not None:
        lmax = _nice_max(max(line[2], default=0))
        pts = " ".join(
            f"{left + (i + 0.5) * col_w:.1f},{top + plot_h - plot_h * v / lmax:.1f}" for i, v in enumerate(line[2])
        )
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{line[1]}" stroke-width="1.6"/>')
        for k in range(5):
            v = lmax * k / 4
            y = top + plot_h - plot_h * k / 4
            parts.append(
                f'<text x="{left + plot_w + 6}" y="{y + 4:.1f}" font-size="10" fill="{line[1]}">{v:,.0f}</text>'
            )
    # x labels: at most ~12
    step = max(1, math.ceil(len(buckets) / 12))
    for i in range(0, len(buckets), step):
        x = left + (i + 0.5) * col_w
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" font-size="10" fill="#64748b" text-anchor="middle">'
            f"{_e(buckets[i])}</text>"
        )
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#94a3b8"/>')
    return _svg(width, height, "".join(parts), label)


def funnel(stages: Sequence[tuple[str, Sequence[int]]], total: Sequence[int], names: Sequence[str], label: str) -> str:
    """Horizontal funnel bars: ``stages`` = [(label, [count per run])], widths relative to ``total`` per run."""
    runs = len(total)
    bar_h, gap, left, top = 22, 5, 190, 8
    width = 760
    plot_w = width - left - 150
    group_h = runs * (bar_h + gap) + 8
    height = top + group_h * len(stages) + 4
    parts: list[str] = []
    for si, (name, counts) in enumerate(stages):
        y0 = top + si * group_h
        parts.append(
            f'<text x="{left - 10}" y="{y0 + runs * (bar_h + gap) / 2 + 4:.1f}" font-size="12.5" text-anchor="end" '
            f'fill="#1e293b">{_e(name)}</text>'
        )
        for ri in range(runs):
            y = y0 + ri * (bar_h + gap)
            base = total[ri] or 1
            w = plot_w * counts[ri] / base
            color = (A_COLOR, B_COLOR)[ri % 2] if runs > 1 else ("#475569" if si == 0 else BAD if si == 1 else MID)
            if runs == 1 and si >= 2:
                color = ("#f59e0b", "#ea580c", "#dc2626", "#991b1b", "#7f1d1d")[min(si - 2, 4)]
            parts.append(f'<rect x="{left}" y="{y}" width="{max(w, 1.5):.1f}" height="{bar_h}" fill="{color}" rx="3"/>')
            share = 100.0 * counts[ri] / base
            tag = f"{names[ri]}: " if runs > 1 else ""
            parts.append(
                f'<text x="{left + max(w, 1.5) + 8:.1f}" y="{y + bar_h - 6}" font-size="11.5" fill="#334155">'
                f"{_e(tag)}{counts[ri]:,} ({share:.1f}%)</text>"
            )
    return _svg(width, height, "".join(parts), label)


def _bucket_of(seconds: float) -> int:
    idx = 0
    for i, edge in enumerate(DURATION_EDGES_S):
        if seconds >= edge:
            idx = i
    return idx


def _edge_position(seconds: float) -> float:
    """Position of an instant on the bucket axis (bucket index + log-interpolated fraction)."""
    i = _bucket_of(seconds)
    if i == len(DURATION_EDGES_S) - 1:
        return float(i) + 0.5
    lo, hi = DURATION_EDGES_S[i], DURATION_EDGES_S[i + 1]
    if lo == 0:
        return i + seconds / hi
    return i + math.log(seconds / lo) / math.log(hi / lo)


def histogram(within: Sequence[int], beyond: Sequence[int], targets: Sequence[float], label: str, *, title: str) -> str:
    """A duration histogram over :data:`DURATION_EDGES_S` buckets, each column split into cycles within their
    target (green) and beyond it (red), with the target(s) marked."""
    width, height, left, right, top, bottom = 520, 190, 40, 10, 44, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(DURATION_EDGES_S)
    ymax = _nice_max(max((a + b for a, b in zip(within, beyond, strict=True)), default=0))
    col_w = plot_w / n
    parts = [f'<text x="0" y="13" font-size="12.5" font-weight="600" fill="#1e293b">{_e(title)}</text>']
    for k in (0, 2, 4):
        v = ymax * k / 4
        y = top + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eef2f6"/>')
        parts.append(
            f'<text x="{left - 4}" y="{y + 3:.1f}" font-size="9" fill="#64748b" text-anchor="end">{v:,.0f}</text>'
        )
    for i in range(n):
        x = left + i * col_w + 1
        y = top + plot_h
        for v, color in ((within[i], GOOD), (beyond[i], BAD)):
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{col_w - 2:.1f}" height="{h:.1f}" fill="{color}" opacity=".85"/>'
            )
        if i % 2 == 0 or n <= 10:
            parts.append(
                f'<text x="{left + i * col_w:.1f}" y="{top + plot_h + 12}" font-size="9" fill="#64748b" '
                f'text-anchor="middle">{_EDGE_LABELS[i]}</text>'
            )
    for k, t in enumerate(targets):
        x = left + _edge_position(t) * col_w
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 16 + 12 * k}" x2="{x:.1f}" y2="{top + plot_h}" stroke="#0f172a" '
            'stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        anchor, dx = ("end", -4) if x > left + plot_w * 0.7 else ("start", 4)
        parts.append(
            f'<text x="{x + dx:.1f}" y="{top - 8 + 12 * k}" font-size="10.5" fill="#0f172a" text-anchor="{anchor}">'
            f"target {_dur(t)}</text>"
        )
    parts.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#94a3b8"/>')
    parts.append(
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" font-size="9.5" fill="#64748b" text-anchor="middle">'
        "open time (business hours of the policy's calendar, pauses excluded)</text>"
    )
    return _svg(width, height, "".join(parts), label)


# ---------------------------------------------------------------------------------------------------------------
# Sections


def _tiles(d: Mapping[str, Any]) -> str:
    inp = d["input"]
    tiles = [
        ("Tickets", f"{d['tickets']:,}", f"{inp['events']:,} events"),
    ]
    for metric in ("first_response", "resolution"):
        row = d["metrics"].get(metric)
        if row:
            tiles.append(
                (
                    f"{METRIC_LABEL[metric]} compliance",
                    _pct_text(row["compliance_pct"]),
                    f"{row['breached']:,} breached, {row['running']:,} running",
                )
            )
    tiles.append(("Escalations", f"{d['escalations']['total']:,}", f"{d['funnel']['escalated']:,} tickets"))
    tiles.append(("Notifications", f"{d['notifications']['total']:,}", ""))
    tiles.append(("Incidents", f"{d['incidents']['total']:,}", ""))
    tiles.append(
        (
            "Rejected lines",
            f"{inp['rejected']:,}",
            f"{inp['duplicates_ignored']:,} duplicates ignored",
        )
    )
    return (
        '<div class="tiles">'
        + "".join(
            f'<div class="tile"><div class="l">{_e(label)}</div><div class="v">{value}</div>'
            f'<div class="d">{_e(detail)}</div></div>'
            for label, value, detail in tiles
        )
        + "</div>"
    )


def _compliance_table(table: Mapping[str, Mapping[str, Any]], other: Mapping[str, Mapping[str, Any]] | None) -> str:
    metrics = [
        m for m in METRICS if any(m in row for row in table.values()) or (other and any(m in r for r in other.values()))
    ]
    keys = list(table)
    if other:
        keys += [k for k in other if k not in table]
    head = "".join(f'<th colspan="{2 if other else 1}">{METRIC_LABEL[m]}</th>' for m in metrics)
    sub = ""
    if other:
        sub = "<tr><th></th>" + "".join("<th>A</th><th>B</th>" for _ in metrics) + "</tr>"
    rows = []
    for key in keys:
        cells = []
        for m in metrics:
            for t in (table, other) if other else (table,):
                r = t.get(key, {}).get(m) if t else None
                if r is None:
                    cells.append("<td>&ndash;</td>")
                else:
                    pct = r["compliance_pct"]
                    cells.append(
                        f'<td class="{_pct_class(pct)}" title="{r["achieved"]:,} achieved, {r["breached"]:,} breached, '
                        f'{r["running"]:,} running">{_pct_text(pct)} <span class="sub">'
                        f"({r['achieved'] + r['breached']:,})</span></td>"
                    )
        rows.append(f"<tr><td>{_e(key)}</td>{''.join(cells)}</tr>")
    return f"<table><tr><th></th>{head}</tr>{sub}{''.join(rows)}</table>"


def _compliance_section(d: Mapping[str, Any], o: Mapping[str, Any] | None, names: Sequence[str]) -> str:
    by_p = d["compliance"]["by_priority"]
    ob_p = o["compliance"]["by_priority"] if o else None
    charts = []
    for metric in ("first_response", "resolution", "next_reply", "periodic_update"):
        rows: list[tuple[str, list[tuple[str, float | None, int]]]] = []
        prios = [p for p in PRIORITY_ORDER if metric in by_p.get(p, {}) or (ob_p and metric in ob_p.get(p, {}))]
        prios += [p for p in by_p if p not in PRIORITY_ORDER and metric in by_p[p]]
        if not prios:
            continue
        for p in prios:
            series = []
            for name, table in zip(names, (by_p, ob_p) if ob_p is not None else (by_p,), strict=False):
                r = table.get(p, {}).get(metric)
                series.append(
                    (
                        name,
                        None if r is None else r["compliance_pct"],
                        0 if r is None else r["achieved"] + r["breached"],
                    )
                )
            rows.append((p, series))
        charts.append(
            f"<div><h3>{METRIC_LABEL[metric]}</h3>"
            + compliance_bars(rows, f"{METRIC_LABEL[metric]} compliance by priority")
            + "</div>"
        )
    legend = _legend([(n, c) for n, c in zip(names, (A_COLOR, B_COLOR), strict=False)]) if o else ""
    return (
        "<section><h2>SLA compliance by priority</h2>"
        '<p class="sub">Share of clock cycles with a target that met it (achieved &divide; achieved + breached; '
        "cycles still running at the end and not yet breached are left out). The number in brackets is the number "
        "of cycles judged.</p>"
        + legend
        + '<div class="charts">'
        + "".join(charts)
        + "</div><h3>By priority</h3>"
        + _compliance_table(by_p, ob_p)
        + "<h3>By policy</h3>"
        + _compliance_table(d["compliance"]["by_policy"], o["compliance"]["by_policy"] if o else None)
        + "</section>"
    )


def _period_buckets(days: Sequence[str]) -> tuple[str, list[str], dict[str, str]]:
    """Choose day, ISO week or month buckets so the chart has at most ~120 columns."""
    if not days:
        return "day", [], {}
    from datetime import date, timedelta

    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    span = (last - first).days + 1
    unit = "day" if span <= 120 else "week" if span <= 7 * 120 else "month"
    labels: list[str] = []
    mapping: dict[str, str] = {}
    d = first
    while d <= last:
        if unit == "day":
            key = d.isoformat()
        elif unit == "week":
            monday = d - timedelta(days=d.weekday())
            key = monday.isoformat()
        else:
            key = d.isoformat()[:7]
        if not labels or labels[-1] != key:
            labels.append(key)
        mapping[d.isoformat()] = key
        d += timedelta(days=1)
    return unit, labels, mapping


def _breaches_section(s: Summary) -> str:
    created = dict(s.created_by_day())
    breaches = dict(s.breaches_by_day())
    days = sorted(set(created) | set(breaches))
    if not days:
        return ""
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
    legend = _legend(
        [(f"{METRIC_LABEL[m]} breaches", METRIC_COLOR[m]) for m in metrics]
        + [("tickets created (right axis)", "#94a3b8")]
    )
    return (
        f'<section><h2>SLA breaches over time</h2><p class="sub">Breach notifications per {unit} (at the instant '
        f"each target was missed, in event time), stacked by metric; the line is tickets created per {unit}.</p>"
        + legend
        + chart
        + "</section>"
    )


def _funnel_section(ds: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    levels = sorted({int(k) for d in ds for k in d["funnel"]["reached_level"]})
    stages: list[tuple[str, list[int]]] = [
        ("tickets", [d["funnel"]["tickets"] for d in ds]),
        ("breached an SLA", [d["funnel"]["breached_any"] for d in ds]),
    ]
    for lv in levels:
        stages.append((f"reached escalation level {lv}", [d["funnel"]["reached_level"].get(str(lv), 0) for d in ds]))
    chart = funnel(stages, [d["funnel"]["tickets"] for d in ds], names, "Escalation ladder funnel")
    legend = _legend([(n, c) for n, c in zip(names, (A_COLOR, B_COLOR), strict=False)]) if len(ds) > 1 else ""
    rows = []
    for i, d in enumerate(ds):
        esc = d["escalations"]
        by_level = ", ".join(f"L{k}: {v:,}" for k, v in esc["by_level"].items()) or "&ndash;"
        by_kind = ", ".join(f"{_e(k)}: {v:,}" for k, v in esc["by_kind"].items()) or "&ndash;"
        by_reason = ", ".join(f"{_e(k)}: {v:,}" for k, v in esc["by_reason"].items()) or "&ndash;"
        notes = ", ".join(f"{_e(k)}: {v:,}" for k, v in d["notifications"]["by_kind"].items()) or "&ndash;"
        rows.append(
            f'<tr><td class="l">{_e(names[i])}</td><td>{esc["total"]:,}</td><td class="l">{by_level}</td>'
            f'<td class="l">{by_kind}</td><td class="l">{by_reason}</td><td class="l">{notes}</td></tr>'
        )
    table = (
        '<table><tr><th class="l">run</th><th>escalations</th><th class="l">by level</th><th class="l">by kind</th>'
        f'<th class="l">by reason</th><th class="l">notifications by kind</th></tr>{"".join(rows)}</table>'
    )
    return (
        '<section><h2>Escalation ladder</h2><p class="sub">How many tickets breached a target and how far up the '
        "ladder they went (highest level raised for the ticket, by any reason; a ticket that reached level 3 also "
        "counts for levels 1 and 2). Percentages are of all tickets.</p>" + legend + chart + table + "</section>"
    )


def _histogram_data(s: Summary, metric: str, prio: str) -> tuple[list[int], list[int], list[float]]:
    n = len(DURATION_EDGES_S)
    within, beyond = [0] * n, [0] * n
    pair = s.elapsed.get(metric, {}).get(prio)
    if pair is None:
        return within, beyond, []
    elapsed, targets = pair
    for e, t in zip(elapsed, targets, strict=True):
        i = _bucket_of(e / 1000)
        if e <= t:
            within[i] += 1
        else:
            beyond[i] += 1
    counts: dict[int, int] = {}
    for t in targets:
        counts[t] = counts.get(t, 0) + 1
    main = sorted(counts, key=lambda t: -counts[t])[:2]
    return within, beyond, [t / 1000 for t in sorted(main)]


def _distribution_section(s: Summary, d: Mapping[str, Any], name: str | None) -> str:
    parts = []
    for metric in ("first_response", "resolution"):
        rows = d["durations"].get(metric)
        if not rows:
            continue
        charts = []
        for prio in rows:
            within, beyond, targets = _histogram_data(s, metric, prio)
            r = rows[prio]
            title = (
                f"{prio}: {r['n']:,} cycles, median {_dur(r['p50_s'])}, p90 {_dur(r['p90_s'])}, "
                f"{_pct_text(r['within_target_pct'])} within target"
            ).replace("&ndash;", "-")
            charts.append(
                "<div>"
                + histogram(within, beyond, targets, f"{METRIC_LABEL[metric]} time for {prio}", title=title)
                + "</div>"
            )
        parts.append(f'<h3>Time to {METRIC_LABEL[metric].lower()}</h3><div class="charts">{"".join(charts)}</div>')
    if not parts:
        return ""
    suffix = f" &mdash; {_e(name)}" if name else ""
    return (
        f"<section><h2>Time to first response and to resolution against targets{suffix}</h2>"
        '<p class="sub">Open time of every ended cycle, per priority, on a log-like scale; green: within the target '
        "in force when the cycle ended, red: beyond it. Dashed lines mark the target(s); a priority served by "
        "several policies shows the two most common.</p>"
        + _legend([("within target", GOOD), ("beyond target", BAD)])
        + "".join(parts)
        + "</section>"
    )


def _agreement_section(d: Mapping[str, Any], o: Mapping[str, Any] | None = None) -> str:
    ag = d.get("agreement")
    if not ag:
        return ""
    other = o.get("agreement") if o is not None else None
    rows = []
    for prio, r in [*ag["by_priority"].items(), ("all", ag["total"])]:
        cells = (
            f"<tr><td>{_e(prio)}</td><td>{r['tickets']:,}</td><td>{r['label_made']:,}</td><td>{r['engine_made']:,}</td>"
            f'<td class="{_pct_class(r["agreement_pct"])}">{_pct_text(r["agreement_pct"])}</td>'
            f"<td>{r['engine_breached_label_made']:,}</td><td>{r['engine_met_label_missed']:,}</td>"
        )
        if other is not None:
            rb = other["total"] if prio == "all" else other["by_priority"].get(prio)
            if rb is None:
                cells += "<td>&ndash;</td><td>&ndash;</td>"
            else:
                cells += (
                    f"<td>{rb['engine_made']:,}</td>"
                    f'<td class="{_pct_class(rb["agreement_pct"])}">{_pct_text(rb["agreement_pct"])}</td>'
                )
        rows.append(cells + "</tr>")
    head_b = "<th>B: engine made</th><th>B: agreement</th>" if other is not None else ""
    prefix = "A: " if other is not None else ""
    return (
        f"<section><h2>Agreement with the source system's SLA verdicts</h2><p class=\"sub\">The engine's "
        f"{_e(ag['metric'])} verdict per ticket compared with the verdict recorded by the source system "
        f"({ag['labels']:,} labelled tickets, {ag['unmatched']:,} without a judged cycle in this run). Informative: "
        "the source's own SLA definitions are not published.</p>"
        f"<table><tr><th>priority</th><th>tickets</th><th>source: made</th><th>{prefix}engine made</th>"
        f"<th>{prefix}agreement</th><th>{prefix}engine breached, source made</th>"
        f"<th>{prefix}engine met, source missed</th>{head_b}</tr>" + "".join(rows) + "</table></section>"
    )


def _comparison_section(d: Mapping[str, Any], o: Mapping[str, Any] | None) -> str:
    comp = d.get("comparison")
    if not comp or o is None:
        return ""
    rows = []
    details = []
    for metric, c in comp.items():
        ra, rb = d["metrics"].get(metric, {}), o["metrics"].get(metric, {})
        rows.append(
            f"<tr><td>{METRIC_LABEL[metric]}</td><td>{c['tickets_measured']:,}</td>"
            f"<td>{_pct_text(ra.get('compliance_pct'))}</td><td>{_pct_text(rb.get('compliance_pct'))}</td>"
            f"<td>{c['breached_a']:,}</td><td>{c['breached_b']:,}</td>"
            f'<td class="bad">{c["breached_only_a"]:,}</td><td class="bad">{c["breached_only_b"]:,}</td></tr>'
        )
        if not (c["breached_only_a"] or c["breached_only_b"]):
            continue
        prio_rows = "".join(
            f"<tr><td>{_e(p)}</td><td>{r['only_a']:,}</td><td>{r['only_b']:,}</td></tr>"
            for p, r in c["by_priority"].items()
        )
        lists = []
        for side, key, n in (
            ("A", "examples_only_a", c["breached_only_a"]),
            ("B", "examples_only_b", c["breached_only_b"]),
        ):
            if n:
                ids = ", ".join(_e(t) for t in c[key])
                more = f" &hellip; ({n - len(c[key]):,} more)" if n > len(c[key]) else ""
                lists.append(f'<p class="note"><b>Breached only under {side}</b> ({n:,}): {ids}{more}</p>')
        details.append(
            f"<h3>{METRIC_LABEL[metric]}: tickets that changed, by priority</h3>"
            '<div class="grid2"><div><table><tr><th>priority</th><th>breached only under A</th>'
            f"<th>breached only under B</th></tr>{prio_rows}</table></div><div>{''.join(lists)}</div></div>"
        )
    return (
        "<section><h2>Policy comparison: tickets whose outcome changed</h2>"
        f'<p class="sub">A = <code>{_e(d["policy"]["source"])}</code> (version {_e(d["policy"]["version"])}), '
        f"B = <code>{_e(o['policy']['source'])}</code> (version {_e(o['policy']['version'])}), same input. "
        "A ticket changed when a metric breached under one policy and not under the other.</p>"
        "<table><tr><th>metric</th><th>tickets measured</th><th>compliance A</th><th>compliance B</th>"
        "<th>breached A</th><th>breached B</th><th>breached only under A</th><th>breached only under B</th></tr>"
        + "".join(rows)
        + "</table>"
        + ("".join(details) or '<p class="note">No ticket changed outcome.</p>')
        + "</section>"
    )


def _incidents_section(d: Mapping[str, Any]) -> str:
    inc = d["incidents"]
    if not inc["total"]:
        return ""
    rows = "".join(
        f'<tr><td>{_e(i["fired_at"])}</td><td class="l">{_e(i["rule"])}</td><td class="l">{_e(i["group_by"])} = '
        f"{_e(i['group_value'])}</td><td>{i['count']:,}</td><td>{_e(i['first_at'])}</td></tr>"
        for i in inc["list"][:20]
    )
    more = f'<p class="note">&hellip; and {inc["total"] - 20:,} more.</p>' if inc["total"] > 20 else ""
    return (
        f"<section><h2>Incidents detected ({inc['total']:,})</h2><table><tr><th>detected at</th>"
        '<th class="l">rule</th><th class="l">group</th><th>tickets in window</th><th>first ticket at</th></tr>'
        + rows
        + "</table>"
        + more
        + "</section>"
    )


def _input_section(d: Mapping[str, Any]) -> str:
    inp = d["input"]
    types = ", ".join(f"<code>{_e(k)}</code> {v:,}" for k, v in inp["event_types"].items()) or "&ndash;"
    parts = [
        "<section><h2>Input</h2>",
        f"<p>{inp['lines']:,} lines read, {inp['events']:,} events applied, {inp['rejected']:,} lines rejected, "
        f"{inp['duplicates_ignored']:,} duplicates ignored"
        + (f", {inp['after_until']:,} events after the end of the run (not applied)" if inp["after_until"] else "")
        + ".</p>",
        f'<p class="sub">Event types: {types}</p>',
    ]
    if inp["rejected"]:
        reasons = ", ".join(f"{_e(k)}: {v:,}" for k, v in inp["rejected_by_reason"].items())
        parts.append(f"<p>Rejected by reason: {reasons}</p>")
        parts.append('<table><tr><th>line</th><th class="l">reason</th><th class="l">detail</th></tr>')
        for r in inp["rejected_examples"]:
            detail = r["detail"] if len(r["detail"]) <= 140 else r["detail"][:137] + "..."
            parts.append(
                f'<tr><td>{r["line"]:,}</td><td class="l">{_e(r["reason"])}</td><td class="l">{_e(detail)}</td></tr>'
            )
        parts.append("</table>")
    parts.append("</section>")
    return "".join(parts)


def render_report(
    summary: Summary,
    d: Mapping[str, Any],
    *,
    other_summary: Summary | None = None,
    other: Mapping[str, Any] | None = None,
    title: str = "What-if replay",
    note: str | None = None,
) -> str:
    """The complete HTML document. ``d`` is ``summary.to_dict()`` (plus ``comparison``/``agreement`` when made)."""
    names = ["A", "B"] if other is not None else [str(d["policy"]["source"])]
    period = d["period"]
    pol = d["policy"]
    header = (
        f'<h1>{_e(title)}</h1><p class="lead">Policy <code>{_e(pol["source"])}</code> (version '
        f"{_e(pol['version'])})"
        + (
            f" compared with <code>{_e(other['policy']['source'])}</code> (version {_e(other['policy']['version'])})"
            if other
            else ""
        )
        + f" replayed in event time over {d['input']['events']:,} events of {d['tickets']:,} tickets, "
        f"{_e(period['first_event'] or '-')} to {_e(period['last_event'] or '-')} (run ended at "
        f"{_e(period['end'] or '-')}).</p>"
    )
    if note:
        header += f'<p class="note">{_e(note)}</p>'
    body = [header, _tiles(d)]
    if other is not None:
        body.append(_comparison_section(d, other))
    body.append(_compliance_section(d, other, names))
    body.append(_agreement_section(d, other))
    body.append(_breaches_section(summary))
    body.append(_funnel_section([d, other] if other is not None else [d], names))
    body.append(_distribution_section(summary, d, "A" if other is not None else None))
    if other_summary is not None and other is not None:
        body.append(_distribution_section(other_summary, other, "B"))
    body.append(_incidents_section(d))
    body.append(_input_section(d))
    footer = (
        "<footer>Generated by <code>escalator simulate</code> from the event log alone: every number is a "
        "count over the engine's outputs and final ticket states, in event time." + "</footer>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
        + "".join(body)
        + footer
        + "</main></body></html>\n"
    )
