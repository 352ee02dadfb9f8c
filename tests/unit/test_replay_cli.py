"""``escalator simulate`` end to end on files: text and JSON summaries, --out bytes, --report, --compare, --labels,
rejected lines on stderr with their numbers, gzip and stdin input, --until."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import orjson
import pytest

from escalator.cli import main
from escalator.core import Emit, decode_record, encode_event, load_policy_text
from escalator.replay import simulate
from tests.support import ROOT

DATA = Path(__file__).resolve().parent.parent / "data"
EVENTS = DATA / "servicenow_sample.events.jsonl"
POLICY = ROOT / "examples" / "servicenow-policy.yaml"


@pytest.fixture
def events_with_bad_lines(tmp_path: Path) -> Path:
    lines = EVENTS.read_bytes().splitlines(keepends=True)
    lines.insert(1, b'{"specversion": "1.0", "type": "ticket.created"}\n')  # line 2
    lines.insert(4, b"garbage\n")  # line 5
    lines.insert(5, b'{"specversion": "1.0", "type": [1]}\n')  # line 6: the decoder raises TypeError
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def test_simulate_json_out_and_report(
    tmp_path: Path, events_with_bad_lines: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, report = tmp_path / "outputs.jsonl", tmp_path / "report.html"
    code = main(
        [
            "simulate",
            "--policy",
            str(POLICY),
            "--events",
            str(events_with_bad_lines),
            "--json",
            "--out",
            str(out),
            "--report",
            str(report),
            "--labels",
            str(DATA / "servicenow_sample.labels.csv"),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert f"{events_with_bad_lines}:2: rejected (schema_violation)" in captured.err
    assert f"{events_with_bad_lines}:5: rejected (invalid_json)" in captured.err
    doc = orjson.loads(captured.out)
    assert f"{events_with_bad_lines}:6: rejected (unknown_type)" in captured.err
    assert doc["input"]["events"] == 212 and doc["input"]["rejected"] == 3 and doc["input"]["lines"] == 215
    assert doc["input"]["rejected_by_reason"] == {"invalid_json": 1, "schema_violation": 1, "unknown_type": 1}
    assert doc["tickets"] == 38
    assert doc["agreement"]["total"]["tickets"] == 38
    # --out: exactly the golden outputs, i.e. encode_event of every Emit of the pure simulator
    assert out.read_bytes() == (DATA / "servicenow_sample.outputs.jsonl").read_bytes()
    policy = load_policy_text(POLICY.read_text(), str(POLICY))
    emits = [
        c for c in simulate((decode_record(x) for x in EVENTS.read_bytes().splitlines()), policy) if isinstance(c, Emit)
    ]
    assert out.read_bytes() == b"".join(encode_event(e.event) + b"\n" for e in emits)
    assert doc["outputs_written"] == len(emits)
    html = report.read_text()
    assert html.startswith("<!DOCTYPE html>") and f"{doc['metrics']['resolution']['compliance_pct']:.1f}%" in html


def test_simulate_text_gzip_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gz = tmp_path / "events.jsonl.gz"
    gz.write_bytes(gzip.compress(EVENTS.read_bytes()))
    out = tmp_path / "outputs.jsonl.gz"
    code = main(
        [
            "simulate",
            "--policy",
            str(POLICY),
            "--events",
            str(gz),
            "--compare",
            str(ROOT / "examples" / "policy.yaml"),
            "--out",
            str(out),
            "--show-errors",
            "0",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "212 events, 38 tickets, 0 rejected" in text
    assert "compared with" in text and "breached only A" in text
    assert gzip.decompress(out.read_bytes()) == (DATA / "servicenow_sample.outputs.jsonl").read_bytes()


def test_simulate_from_stdin_with_until(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    class Stdin:
        buffer = io.BytesIO(EVENTS.read_bytes())

    monkeypatch.setattr(sys, "stdin", Stdin())
    code = main(["simulate", "--policy", str(POLICY), "--events", "-", "--until", "2016-03-01T00:00:00Z", "--json"])
    assert code == 0
    doc = orjson.loads(capsys.readouterr().out)
    assert doc["period"]["end"] == "2016-03-01T00:00:00Z"
    assert doc["input"]["after_until"] > 0
    assert doc["input"]["events"] + doc["input"]["after_until"] == 212  # only those up to --until are applied
    assert doc["tickets"] < 38


def test_simulate_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--policy", str(tmp_path / "nope.yaml"), "--events", str(EVENTS)]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["simulate", "--policy", str(POLICY), "--events", str(tmp_path / "nope.jsonl")]) == 1
    assert main(["simulate", "--policy", str(POLICY), "--events", str(EVENTS), "--until", "yesterday"]) == 2


def test_progress_bar_rate_percentage_and_eta() -> None:
    from escalator.replay.run import Progress

    now = [100.0]
    position = [(250, 1000)]
    out = io.StringIO()
    bar = Progress(out, lambda: position[0], clock=lambda: now[0])
    now[0] = 102.0
    bar.update(50_000)
    line = out.getvalue()
    assert line.startswith("\r[")
    assert " 25.0%" in line and "50,000 events  25,000 events/s" in line and "ETA 0:06" in line
    now[0] = 102.1  # redrawn at most every 0.2 s
    bar.update(51_000)
    assert out.getvalue() == line
    position[0] = None  # stdin: no size, no percentage
    now[0] = 104.0
    bar.update(100_000, final=True)
    assert out.getvalue().endswith("\r100,000 events  25,000 events/s\n")


def test_no_progress_bar_when_not_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--policy", str(POLICY), "--events", str(EVENTS)]) == 0
    assert "\r" not in capsys.readouterr().err  # pytest's captured stdout is not a terminal
