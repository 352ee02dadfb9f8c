"""The report's SVG charts as geometry: each chart function computes a :class:`Chart` (a size, a label and the
shapes to draw, in drawing order) and the report's one SVG macro (``templates/_svg.html.j2``) writes any chart out,
escaping every text.

Coordinates are plain numbers: integers are written as they are, other numbers to one decimal
(:func:`number_text`), which is the precision of the drawing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from .summary import format_span

__all__ = [
    "DURATION_EDGES_S",
    "Chart",
    "Line",
    "Polyline",
    "Rect",
    "Shape",
    "Text",
    "compliance_bars",
    "duration_text",
    "funnel",
    "histogram",
    "histogram_counts",
    "number_text",
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
METRIC_COLOR = {
    "first_response": "#2563eb",
    "next_reply": "#7c3aed",
    "periodic_update": "#0891b2",
    "resolution": "#ea580c",
}
GOOD, BAD, MID = "#16a34a", "#dc2626", "#f59e0b"
A_COLOR, B_COLOR = "#2563eb", "#db2777"
_LADDER_COLORS = ("#f59e0b", "#ea580c", "#dc2626", "#991b1b", "#7f1d1d")  # funnel levels 1, 2, 3, 4, 5+ (one run)


# ---------------------------------------------------------------------------------------------------------------
# Shapes


@dataclass(frozen=True, slots=True)
class Line:
    tag: ClassVar[str] = "line"
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str
    stroke_width: float | None = None
    dash: str | None = None  # stroke-dasharray


@dataclass(frozen=True, slots=True)
class Rect:
    tag: ClassVar[str] = "rect"
    x: float
    y: float
    width: float
    height: float
    fill: str
    rx: int | None = None
    opacity: str | None = None


@dataclass(frozen=True, slots=True)
class Text:
    tag: ClassVar[str] = "text"
    x: float
    y: float
    text: str
    size: float  # font-size
    fill: str
    anchor: str | None = None  # text-anchor
    weight: str | None = None  # font-weight


@dataclass(frozen=True, slots=True)
class Polyline:
    tag: ClassVar[str] = "polyline"
    points: tuple[tuple[float, float], ...]
    stroke: str
    stroke_width: float


Shape = Line | Rect | Text | Polyline


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG drawing ``width`` x ``height`` user units wide (drawn at most that many pixels wide), described by
    ``label`` for screen readers."""

    width: int
    height: int
    label: str
    shapes: tuple[Shape, ...]


def number_text(v: float) -> str:
    """A coordinate as the SVG says it: an integer as it is, another number to one decimal."""
    return str(v) if isinstance(v, int) else f"{v:.1f}"


def duration_text(seconds: float | None, none: str = "\N{EN DASH}") -> str:
    """An open-time span as the report writes it: ``27 min``, ``14.2 h``, ``3.0 d``."""
    return format_span(seconds, (" min", " h", " d"), none)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return float(m * exp)
    return float(10 * exp)


# ---------------------------------------------------------------------------------------------------------------
# Charts


def compliance_bars(rows: Sequence[tuple[str, Sequence[tuple[str, float | None, int]]]], label: str) -> Chart:
    """Horizontal bars 0..100 %: ``rows`` = [(group label, [(series label, pct, n), ...])]. One bar per series."""
    series_n = max((len(s) for _, s in rows), default=1)
    bar_h, gap, left, right, top = 18, 4, 70, 150, 22
    group_h = series_n * (bar_h + gap) + 10
    width = 560
    plot_w = width - left - right
    height = top + group_h * len(rows) + 8
    shapes: list[Shape] = []
    for tick in (0, 25, 50, 75, 100):
        x = left + plot_w * tick / 100
        shapes.append(Line(x, top - 4, x, height - 6, "#e2e8f0"))
        shapes.append(Text(x, top - 8, f"{tick}%", 11, "#64748b", "middle"))
    for gi, (group, series) in enumerate(rows):
        y0 = top + gi * group_h
        shapes.append(Text(left - 8, y0 + (len(series) * (bar_h + gap)) / 2 + 2, group, 13, "#1e293b", "end"))
        for si, (name, pct, n) in enumerate(series):
            y = y0 + si * (bar_h + gap)
            color = A_COLOR if si == 0 else B_COLOR
            if len(series) == 1:
                color = GOOD if (pct or 0) >= 95 else MID if (pct or 0) >= 80 else BAD
            shapes.append(Rect(left, y, plot_w, bar_h, "#f1f5f9", rx=2))
            if pct is not None:
                shapes.append(Rect(left, y, plot_w * pct / 100, bar_h, color, rx=2))
            text = "no data" if pct is None else f"{pct:.1f}%  ({n:,})"
            prefix = f"{name}: " if len(series) > 1 else ""
            shapes.append(Text(left + plot_w + 6, y + bar_h - 5, prefix + text, 12, "#334155"))
    return Chart(width, height, label, tuple(shapes))


def stacked_columns(
    buckets: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    label: str,
    *,
    line: tuple[str, str, Sequence[int]] | None = None,
    height: int = 220,
) -> Chart:
    """Stacked columns over time (``series`` = [(name, color, values per bucket)]), optionally with a line on a
    second axis (``line`` = (name, color, values))."""
    width, left, right, top, bottom = 1040, 52, 52 if line else 16, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    col_w = plot_w / max(1, len(buckets))
    ymax = _nice_max(max((sum(s[2][i] for s in series) for i in range(len(buckets))), default=0))
    shapes: list[Shape] = []
    for k in range(5):
        y = top + plot_h - plot_h * k / 4
        shapes.append(Line(left, y, left + plot_w, y, "#eef2f6"))
        shapes.append(Text(left - 6, y + 4, f"{ymax * k / 4:,.0f}", 10, "#64748b", "end"))
    bw = max(1.0, col_w * 0.8)
    for i in range(len(buckets)):
        y = top + plot_h
        for _, color, values in series:
            v = values[i]
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y -= h
            shapes.append(Rect(left + i * col_w + (col_w - bw) / 2, y, bw, h, color))
    if line is not None:
        _, color, values = line
        lmax = _nice_max(max(values, default=0))
        points = tuple((left + (i + 0.5) * col_w, top + plot_h - plot_h * v / lmax) for i, v in enumerate(values))
        shapes.append(Polyline(points, color, 1.6))
        for k in range(5):
            y = top + plot_h - plot_h * k / 4
            shapes.append(Text(left + plot_w + 6, y + 4, f"{lmax * k / 4:,.0f}", 10, color))
    step = max(1, math.ceil(len(buckets) / 12))  # x labels: at most ~12
    for i in range(0, len(buckets), step):
        shapes.append(Text(left + (i + 0.5) * col_w, top + plot_h + 16, buckets[i], 10, "#64748b", "middle"))
    shapes.append(Line(left, top + plot_h, left + plot_w, top + plot_h, "#94a3b8"))
    return Chart(width, height, label, tuple(shapes))


def funnel(
    stages: Sequence[tuple[str, Sequence[int]]], total: Sequence[int], names: Sequence[str], label: str
) -> Chart:
    """Horizontal funnel bars: ``stages`` = [(label, [count per run])], widths relative to ``total`` per run."""
    runs = len(total)
    bar_h, gap, left, top = 22, 5, 190, 8
    width = 760
    plot_w = width - left - 150
    group_h = runs * (bar_h + gap) + 8
    height = top + group_h * len(stages) + 4
    shapes: list[Shape] = []
    for si, (name, counts) in enumerate(stages):
        y0 = top + si * group_h
        shapes.append(Text(left - 10, y0 + runs * (bar_h + gap) / 2 + 4, name, 12.5, "#1e293b", "end"))
        for ri in range(runs):
            y = y0 + ri * (bar_h + gap)
            base = total[ri] or 1
            w = max(plot_w * counts[ri] / base, 1.5)
            if runs > 1:
                color = (A_COLOR, B_COLOR)[ri % 2]
            else:
                color = "#475569" if si == 0 else BAD if si == 1 else _LADDER_COLORS[min(si - 2, 4)]
            shapes.append(Rect(left, y, w, bar_h, color, rx=3))
            tag = f"{names[ri]}: " if runs > 1 else ""
            text = f"{tag}{counts[ri]:,} ({100.0 * counts[ri] / base:.1f}%)"
            shapes.append(Text(left + w + 8, y + bar_h - 6, text, 11.5, "#334155"))
    return Chart(width, height, label, tuple(shapes))


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


def histogram(
    within: Sequence[int], beyond: Sequence[int], targets: Sequence[float], label: str, *, title: str
) -> Chart:
    """A duration histogram over :data:`DURATION_EDGES_S` buckets, each column split into cycles within their
    target (green) and beyond it (red), with the target(s) marked."""
    width, height, left, right, top, bottom = 520, 190, 40, 10, 44, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(DURATION_EDGES_S)
    ymax = _nice_max(max((a + b for a, b in zip(within, beyond, strict=True)), default=0))
    col_w = plot_w / n
    shapes: list[Shape] = [Text(0, 13, title, 12.5, "#1e293b", weight="600")]
    for k in (0, 2, 4):
        y = top + plot_h - plot_h * k / 4
        shapes.append(Line(left, y, left + plot_w, y, "#eef2f6"))
        shapes.append(Text(left - 4, y + 3, f"{ymax * k / 4:,.0f}", 9, "#64748b", "end"))
    for i in range(n):
        x = left + i * col_w + 1
        y = top + plot_h
        for v, color in ((within[i], GOOD), (beyond[i], BAD)):
            if v <= 0:
                continue
            h = plot_h * v / ymax
            y -= h
            shapes.append(Rect(x, y, col_w - 2, h, color, opacity=".85"))
        if i % 2 == 0 or n <= 10:
            shapes.append(Text(left + i * col_w, top + plot_h + 12, _EDGE_LABELS[i], 9, "#64748b", "middle"))
    for k, t in enumerate(targets):
        x = left + _edge_position(t) * col_w
        shapes.append(Line(x, top - 16 + 12 * k, x, top + plot_h, "#0f172a", stroke_width=1.5, dash="4 3"))
        anchor, dx = ("end", -4) if x > left + plot_w * 0.7 else ("start", 4)
        shapes.append(Text(x + dx, top - 8 + 12 * k, f"target {duration_text(t)}", 10.5, "#0f172a", anchor))
    shapes.append(Line(left, top + plot_h, left + plot_w, top + plot_h, "#94a3b8"))
    shapes.append(
        Text(
            left + plot_w / 2,
            height - 4,
            "open time (business hours of the policy's calendar, pauses excluded)",
            9.5,
            "#64748b",
            "middle",
        )
    )
    return Chart(width, height, label, tuple(shapes))


def histogram_counts(elapsed: Sequence[int], targets: Sequence[int]) -> tuple[list[int], list[int], list[float]]:
    """Cycles per :data:`DURATION_EDGES_S` bucket within and beyond their target (open times and targets in ms),
    and the (at most two) most common targets in seconds."""
    n = len(DURATION_EDGES_S)
    within, beyond = [0] * n, [0] * n
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
