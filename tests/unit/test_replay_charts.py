"""The report's charts as geometry (escalator.replay.charts): the numbers the SVG is drawn with."""

from __future__ import annotations

import pytest

from escalator.replay.charts import (
    A_COLOR,
    B_COLOR,
    DURATION_EDGES_S,
    GOOD,
    MID,
    Rect,
    Text,
    compliance_bars,
    histogram,
    histogram_counts,
    number_text,
)
from escalator.replay.report import _environment

BACKGROUND = "#f1f5f9"


def test_compliance_bars_are_as_long_as_the_share() -> None:
    rows = [("urgent", [("A", 97.5, 40)]), ("normal", [("A", 82.0, 1234)]), ("low", [("A", None, 0)])]
    chart = compliance_bars(rows, "Resolution compliance by priority")
    left, plot_w, bar_h, group_h, top = 70, 560 - 70 - 150, 18, 18 + 4 + 10, 22
    assert (chart.width, chart.height) == (560, top + group_h * 3 + 8)
    rects = [s for s in chart.shapes if isinstance(s, Rect)]
    backgrounds = [r for r in rects if r.fill == BACKGROUND]
    bars = [r for r in rects if r.fill != BACKGROUND]
    assert [(r.x, r.y, r.width, r.height) for r in backgrounds] == [
        (left, top + i * group_h, plot_w, bar_h) for i in range(3)
    ]
    # one bar per row with data, plot_w * pct / 100 long, coloured by the share (no bar for "no data")
    assert [(r.x, r.y, r.width, r.fill) for r in bars] == [
        (left, top, plot_w * 97.5 / 100, GOOD),
        (left, top + group_h, plot_w * 82.0 / 100, MID),
    ]
    labels = [s.text for s in chart.shapes if isinstance(s, Text)]
    assert labels[:5] == ["0%", "25%", "50%", "75%", "100%"]
    assert "97.5%  (40)" in labels and "82.0%  (1,234)" in labels and "no data" in labels


def test_two_series_get_the_run_colours_and_names() -> None:
    chart = compliance_bars([("high", [("A", 50.0, 2), ("B", 25.0, 4)])], "x")
    bars = [s for s in chart.shapes if isinstance(s, Rect) and s.fill != BACKGROUND]
    assert [(r.width, r.fill) for r in bars] == [(170.0, A_COLOR), (85.0, B_COLOR)]
    assert [s.text for s in chart.shapes if isinstance(s, Text)][-2:] == ["A: 50.0%  (2)", "B: 25.0%  (4)"]


def test_histogram_buckets_and_targets() -> None:
    hour, day = 3_600_000, 86_400_000
    within, beyond, targets = histogram_counts([30_000, 2 * hour, 2 * hour, 3 * day], [hour, 4 * hour, hour, day])
    assert len(within) == len(beyond) == len(DURATION_EDGES_S)
    assert within[0] == 1 and beyond[DURATION_EDGES_S.index(7200)] == 1 and within[DURATION_EDGES_S.index(7200)] == 1
    assert beyond[DURATION_EDGES_S.index(259200)] == 1
    assert targets == [3600.0, 14400.0]  # the two most common targets, in seconds
    chart = histogram(within, beyond, targets, "label", title="normal: 4 cycles")
    texts = [s.text for s in chart.shapes if isinstance(s, Text)]
    assert texts[0] == "normal: 4 cycles" and "target 1.0 h" in texts and "target 4.0 h" in texts


@pytest.mark.parametrize(("value", "text"), [(70, "70"), (70.0, "70.0"), (12.345, "12.3"), (0.96, "1.0"), (-4, "-4")])
def test_coordinates_keep_the_drawings_precision(value: float, text: str) -> None:
    assert number_text(value) == text


def test_the_svg_macro_escapes_chart_texts() -> None:
    chart = compliance_bars([("<b>p</b>", [("A", 50.0, 1)])], 'a "label" & <more>')
    svg = str(_environment().get_template("_svg.html.j2").module.svg(chart))
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="a &#34;label&#34; &amp; ')
    assert "&lt;b&gt;p&lt;/b&gt;</text>" in svg and "<b>" not in svg
    assert '<rect x="70" y="22" width="170.0" height="18" fill="#dc2626" rx="2"/>' in svg
