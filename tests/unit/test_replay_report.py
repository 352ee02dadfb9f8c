"""The summary's numbers on a hand-checked scenario, and the HTML report that shows them (with a comparison and
source labels): produced, self-contained, containing the expected numbers."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import orjson
import pytest

from escalator.core import Event, format_ms, load_policy_text
from escalator.replay.report import render_report
from escalator.replay.run import run_lines
from escalator.replay.summary import agreement, compare, format_text
from tests.support import comment, created, envelope, status

POLICY = """
version: 1
policies:
  - id: std
    match: {}
    calendar: always
    targets: {first_response: 1h, resolution: 4h}
    escalation:
      - {after: 0m, level: 1, notify: [{role: lead}]}
      - {after: 1h, level: 2, notify: [{role: manager}]}
      - {after: 2h, level: 3, notify: [{role: director}]}
"""
LENIENT = POLICY.replace("first_response: 1h, resolution: 4h", "first_response: 2h, resolution: 8h")


def scenario() -> list[Event]:
    """A: met both; B: breached both (never answered, solved at 15:00); C: answered, resolution breached and still
    open at the end; D: created 30 minutes before the end, both clocks running."""
    return [
        created("2026-11-23T09:00:00Z", "A", priority="urgent"),
        created("2026-11-23T09:00:00Z", "B", priority="normal"),
        created("2026-11-23T09:00:00Z", "C", priority="normal"),
        comment("2026-11-23T09:10:00Z", ticket="C"),
        comment("2026-11-23T09:30:00Z", ticket="A"),
        status("2026-11-23T10:00:00Z", "solved", "A"),
        created("2026-11-23T14:30:00Z", "D", priority="low"),
        status("2026-11-23T15:00:00Z", "solved", "B"),
    ]


def lines_of(events: list[Event]) -> list[tuple[int, bytes]]:
    """The events as numbered JSON lines (what the CLI reads)."""
    out = []
    for i, e in enumerate(events, 1):
        doc = envelope(e.type, format_ms(e.time_ms), e.ticket_id, e.data.model_dump(exclude_unset=True), e.id)
        out.append((i, orjson.dumps(doc)))
    return out


@pytest.fixture(scope="module")
def runs() -> tuple[dict[str, object], str]:
    policy = load_policy_text(POLICY, "strict.yaml")
    other = load_policy_text(LENIENT, "lenient.yaml")
    lines = lines_of(scenario())
    lines.insert(3, (99, b"{broken"))
    result = run_lines(lines, policy, other_policy=other)
    assert result.other is not None
    d = result.summary.to_dict()
    o = result.other.to_dict()
    d["comparison"] = compare(result.summary, result.other)
    labels = {"A": True, "B": False, "C": True, "X": True}
    d["agreement"] = agreement(result.summary, labels)
    o["agreement"] = agreement(result.other, labels)
    html = render_report(result.summary, d, other_summary=result.other, other=o, title="Scenario", note="test data")
    return {"d": d, "o": o, "text": format_text(d, o)}, html


def test_summary_numbers(runs: tuple[dict[str, object], str]) -> None:
    d = runs[0]["d"]
    assert isinstance(d, dict)
    assert d["input"]["events"] == 8 and d["input"]["rejected"] == 1 and d["input"]["lines"] == 9
    assert d["input"]["rejected_examples"][0]["line"] == 99
    assert d["tickets"] == 4
    assert d["metrics"]["first_response"] == {"achieved": 2, "breached": 1, "running": 1, "compliance_pct": 66.67}
    assert d["metrics"]["resolution"] == {"achieved": 1, "breached": 2, "running": 1, "compliance_pct": 33.33}
    assert d["compliance"]["by_priority"]["normal"]["resolution"]["breached"] == 2
    assert list(d["compliance"]["by_priority"]) == ["urgent", "normal", "low"]
    # B: first response L1 10:00, L2 11:00, L3 12:00; resolution L1 13:00, L2 14:00 (solved at 15:00, the instant
    # of L3: the event comes first). C: resolution L1 13:00, L2 14:00, L3 15:00 (the end of the run, inclusive).
    assert d["escalations"] == {
        "total": 8,
        "by_level": {"1": 3, "2": 3, "3": 2},
        "by_kind": {"automatic": 8},
        "by_reason": {"sla_breach": 8},
    }
    assert d["funnel"] == {
        "tickets": 4,
        "breached_any": 2,
        "escalated": 2,
        "reached_level": {"1": 2, "2": 2, "3": 2},
    }
    assert d["notifications"]["by_kind"] == {"escalation": 8, "sla_breach": 3}
    assert d["period"]["end"] == "2026-11-23T15:00:00Z"
    comp = d["comparison"]
    # lenient targets (2h / 8h): B's first response (answered never, solved after 6h) still breaches; nobody's
    # resolution does (B solved after 6h, C open 6h at the end)
    assert comp["first_response"]["breached_only_a"] == 0 and comp["resolution"]["breached_only_a"] == 2
    assert comp["resolution"]["examples_only_a"] == ["B", "C"]
    ag = d["agreement"]
    assert ag["unmatched"] == 1  # X is not in the run
    assert ag["total"]["tickets"] == 3 and ag["total"]["agree"] == 2  # A made/made, B missed/missed, C made/breached
    text = runs[0]["text"]
    assert isinstance(text, str)
    assert "first_response            2         1         1       66.7%" in text
    assert "compared with lenient.yaml" in text


class _Checker(HTMLParser):
    VOID = {"meta", "br", "img", "input", "link", "hr", "line", "rect", "polyline", "path", "circle"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.errors.append(f"external reference {value}")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def test_report_is_self_contained_and_shows_the_numbers(runs: tuple[dict[str, object], str]) -> None:
    html = runs[1]
    checker = _Checker()
    checker.feed(html)
    assert checker.errors == [] and checker.stack == []
    assert "script" not in checker.tags and {"svg", "table", "style"} <= checker.tags
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    text = re.sub(r"<[^>]+>", " ", html)
    for expected in (
        "Scenario",
        "test data",
        "66.7%",  # first response compliance (A), also in the tiles
        "33.3%",  # resolution compliance (A)
        "100.0%",  # resolution compliance under B
        "2 (50.0%)",  # funnel: 2 of 4 tickets breached / reached each level
        "Breached only under A",
        "B, C",
        "Agreement with the source system",
    ):
        assert expected in text, expected
    assert "<td>99</td>" in html, "the rejected line is listed with its number"
    # agreement under B (lenient: C's resolution is met, as the label says): 3 of 3
    assert "B: agreement" in html and "100.0%" in text
    # a histogram per priority with ended cycles: first response urgent (A) and normal (B, C), resolution urgent
    # (A) and normal (B; C is still running), under A and under B
    assert html.count("cycles, median") == 2 * (2 + 2)


def test_report_without_compare_or_labels() -> None:
    policy = load_policy_text(POLICY, "strict.yaml")
    result = run_lines(lines_of(scenario()), policy)
    d = result.summary.to_dict()
    html = render_report(result.summary, d)
    assert "Policy comparison" not in html and "Agreement with" not in html
    assert html == render_report(result.summary, d), "deterministic: no clock in the report"
    assert "66.7%" in html


def test_the_text_summary_is_unchanged(runs: tuple[dict[str, object], str]) -> None:
    """The whole text summary of the scenario, line for line (tests/data/summary-scenario.txt)."""
    expected = (Path(__file__).resolve().parents[1] / "data" / "summary-scenario.txt").read_text()
    assert runs[0]["text"] == expected


HOSTILE = """
version: 1
policies:
  - id: "<i>std</i>"
    match: {}
    calendar: always
    targets: {resolution: 1h}
    escalation:
      - {after: 0m, level: 1, notify: [{role: lead}]}
incidents:
  - {id: "<u>spike</u>", group_by: product, threshold: 2, window: 1h, notify: [{role: lead}]}
"""


class _Text(HTMLParser):
    """The document's text as a reader sees it (entities decoded), without the style sheet."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.in_style = tag == "style"

    def handle_data(self, data: str) -> None:
        if not self.in_style:
            self.parts.append(data)


def test_strings_from_the_users_files_are_escaped() -> None:
    """Policy file names, policy and rule ids, ticket ids, group values, the title and the note come from the user's
    files and command line: they are shown as text, never as markup."""
    bad_ticket, odd_ticket, product = "<img src=x onerror=alert(1)>", "q\"'&", "<svg onload=alert(2)>"
    events = [
        created("2026-11-23T09:00:00Z", bad_ticket, priority="normal", product=product),
        created("2026-11-23T09:05:00Z", odd_ticket, priority="normal", product=product),
        status("2026-11-23T11:00:00Z", "solved", bad_ticket),
    ]
    policy = load_policy_text(HOSTILE, "<b>x</b>.yaml")
    other = load_policy_text(HOSTILE.replace("resolution: 1h", "resolution: 8h"), "lenient&<i>.yaml")
    result = run_lines(lines_of(events), policy, other_policy=other)
    assert result.other is not None
    d, o = result.summary.to_dict(), result.other.to_dict()
    d["comparison"] = compare(result.summary, result.other)
    assert d["comparison"]["resolution"]["examples_only_a"] == sorted([bad_ticket, odd_ticket])
    assert d["incidents"]["list"][0]["group_value"] == product
    title, note = "Q&A </title><script>x</script>", "<script>alert(3)</script>"
    html = render_report(result.summary, d, other_summary=result.other, other=o, title=title, note=note)

    checker = _Checker()
    checker.feed(html)
    assert checker.errors == [] and checker.stack == []
    assert not {"script", "img", "u"} & checker.tags
    hostile = ["<b>x</b>.yaml", "lenient&<i>.yaml", "<i>std</i>", "<u>spike</u>", bad_ticket, odd_ticket, product]
    for raw in [*hostile, title, note]:
        assert raw not in html, raw
    assert html.count("<title>") == 1 and html.count("<script") == 0
    reader = _Text()
    reader.feed(html)
    text = "".join(reader.parts)
    for shown in [*hostile, title, note]:
        assert shown in text, shown


def test_no_entity_is_escaped_twice(runs: tuple[dict[str, object], str]) -> None:
    """The dashes, ellipses and the division sign are characters, not entities that an escape could double."""
    html = runs[1]
    assert re.search(r"&amp;(#?\w+);", html) is None
    assert re.search(r"&(ndash|mdash|hellip|divide);", html) is None
    assert "\N{EN DASH}" in html and "\N{EM DASH} A" in html and "\N{DIVISION SIGN}" in html
    assert 'charset="utf-8"' in html
