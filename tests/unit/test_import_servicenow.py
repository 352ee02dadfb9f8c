"""The ServiceNow importer: golden output on a real sample, the mapping on hand-written rows, bad rows, ordering.

The sample (tests/data/servicenow_sample.csv.gz) is 315 rows of 38 incidents from the UCI "Incident management
process enriched event log" (Amaral, Fantinato, Reijers, Peres, 2018; CC BY 4.0); see tests/data/README.md.
Set ESCALATOR_UPDATE_GOLDEN=1 to rewrite the golden files after an intended change.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import orjson
import pytest

from escalator.cli import main
from escalator.core import decode_record
from escalator.replay.importers import BadRow, EventWriter, import_servicenow

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "servicenow_sample.csv.gz"
HEADER = (
    "number,incident_state,active,reassignment_count,reopen_count,sys_mod_count,made_sla,caller_id,opened_by,"
    "opened_at,sys_created_by,sys_created_at,sys_updated_by,sys_updated_at,contact_type,location,category,"
    "subcategory,u_symptom,cmdb_ci,impact,urgency,priority,assignment_group,assigned_to,knowledge,"
    "u_priority_confirmation,notify,problem_id,rfc,vendor,caused_by,closed_code,resolved_by,resolved_at,closed_at"
)


def golden(name: str, data: bytes) -> None:
    path = DATA / name
    if os.environ.get("ESCALATOR_UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert path.exists(), f"{path} missing: run with ESCALATOR_UPDATE_GOLDEN=1 once"
    assert data == path.read_bytes(), f"{name} differs from the golden file"


def row(
    number: str,
    state: str,
    updated: str,
    *,
    prio: str = "3 - Moderate",
    group: str = "Group 1",
    assignee: str = "?",
    reopen: int = 0,
    mod: int = 0,
    made_sla: str = "true",
    opened: str = "1/3/2016 08:00",
) -> str:
    cells = dict.fromkeys(HEADER.split(","), "?")
    cells.update(
        number=number,
        incident_state=state,
        sys_updated_at=updated,
        opened_at=opened,
        priority=prio,
        assignment_group=group,
        assigned_to=assignee,
        reopen_count=str(reopen),
        sys_mod_count=str(mod),
        made_sla=made_sla,
        caller_id="Caller 7",
        contact_type="Phone",
        category="Category 9",
        impact="2 - Medium",
    )
    return ",".join(cells[h] for h in HEADER.split(","))


def run_import(csv_text: str, tmp_path: Path, **kw: object) -> tuple[list[dict[str, object]], list[BadRow], str]:
    src = tmp_path / "log.csv"
    src.write_text(HEADER + "\n" + csv_text)
    out = io.BytesIO()
    bad: list[BadRow] = []
    labels = io.StringIO()
    writer = EventWriter(out, **kw)  # type: ignore[arg-type]
    import_servicenow(str(src), writer, on_bad=bad.append, labels=labels)
    writer.close()
    return [orjson.loads(x) for x in out.getvalue().splitlines()], bad, labels.getvalue()


def test_golden_sample_and_every_event_is_valid_v1(tmp_path: Path) -> None:
    out = io.BytesIO()
    labels = io.StringIO()
    bad: list[BadRow] = []
    writer = EventWriter(out)
    stats = import_servicenow(str(SAMPLE), writer, on_bad=bad.append, labels=labels)
    writer.close()
    data = out.getvalue()
    golden("servicenow_sample.events.jsonl", data)
    golden("servicenow_sample.labels.csv", labels.getvalue().encode())
    lines = data.splitlines()
    assert stats.rows == 315 and stats.tickets == 38 and stats.events == len(lines) == 212
    # the sample keeps the log's two rows in state -100: reported with their line numbers, not imported
    assert [(b.line, b.reason) for b in bad] == [
        (3, "unknown incident_state: '-100'"),
        (4, "unknown incident_state: '-100'"),
    ]
    events = [decode_record(x) for x in lines]  # every line is a valid v1 event
    times = [e.time_ms for e in events]
    assert times == sorted(times), "time order"
    assert len({e.id for e in events}) == len(events)
    assert sum(1 for e in events if e.type == "ticket.created") == 38


def test_ids_are_stable_and_orders_agree(tmp_path: Path) -> None:
    def run(**kw: object) -> bytes:
        out = io.BytesIO()
        writer = EventWriter(out, **kw)  # type: ignore[arg-type]
        import_servicenow(str(SAMPLE), writer)
        writer.close()
        return out.getvalue()

    timed = run()
    assert run() == timed
    assert run(chunk=7) == timed, "the external merge sort (spilled chunks) gives the same bytes"
    by_input = run(order="input")
    assert by_input != timed and sorted(by_input.splitlines()) == sorted(timed.splitlines())

    def per_ticket(data: bytes) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in data.splitlines():
            doc = orjson.loads(line)
            out.setdefault(doc["subject"], []).append(doc["id"])
        return out

    assert per_ticket(by_input) == per_ticket(timed), "a ticket's events keep their order"


def test_mapping_created_updates_status_reopen(tmp_path: Path) -> None:
    rows = [
        row("INC1", "New", "1/3/2016 08:05", mod=0),
        row("INC1", "Active", "1/3/2016 09:00", assignee="Resolver 2", mod=1),  # New -> Active: both open
        row("INC1", "Awaiting User Info", "1/3/2016 10:00", assignee="Resolver 2", mod=2),
        row("INC1", "Active", "1/3/2016 11:30", prio="2 - High", group="Group 2", assignee="Resolver 2", mod=3),
        row("INC1", "Resolved", "1/3/2016 12:00", prio="2 - High", group="Group 2", assignee="Resolver 2", mod=4),
        row(
            "INC1", "Active", "2/3/2016 09:00", prio="2 - High", group="Group 2", assignee="Resolver 2", mod=5, reopen=1
        ),
        row(
            "INC1",
            "Closed",
            "5/3/2016 12:00",
            prio="2 - High",
            group="Group 2",
            assignee="Resolver 2",
            mod=6,
            reopen=1,
            made_sla="false",
        ),
    ]
    events, bad, labels = run_import("\n".join(rows) + "\n", tmp_path)
    assert bad == []
    got = [(e["id"], e["type"], e["time"], e["data"]) for e in events]
    assert got == [
        (
            "INC1:created",
            "ticket.created",
            "2016-03-01T08:00:00Z",
            {
                "priority": "normal",
                "status": "open",
                "requester": {"id": "Caller 7"},
                "group": "Group 1",
                "assignee": None,
                "channel": "phone",
                "category": "Category 9",
                "product": None,
                "fields": {"impact": "2 - Medium"},
            },
        ),
        ("INC1:1:updated", "ticket.updated", "2016-03-01T09:00:00Z", {"changes": {"assignee": "Resolver 2"}}),
        ("INC1:2:status", "ticket.status_changed", "2016-03-01T10:00:00Z", {"status": "pending"}),
        (
            "INC1:3:updated",
            "ticket.updated",
            "2016-03-01T11:30:00Z",
            {"changes": {"priority": "high", "group": "Group 2"}},
        ),
        ("INC1:3:status", "ticket.status_changed", "2016-03-01T11:30:00Z", {"status": "open"}),
        ("INC1:4:status", "ticket.status_changed", "2016-03-01T12:00:00Z", {"status": "solved"}),
        ("INC1:5:status", "ticket.status_changed", "2016-03-02T09:00:00Z", {"status": "open"}),  # the reopen
        ("INC1:6:status", "ticket.status_changed", "2016-03-05T12:00:00Z", {"status": "closed"}),
    ]
    assert labels == "ticket_id,priority,made_sla\nINC1,high,false\n"


def test_rows_sorted_by_update_time_and_first_snapshot_diffed(tmp_path: Path) -> None:
    rows = [
        row("INC2", "Resolved", "1/3/2016 10:00", mod=1),  # listed first, happened second
        row("INC2", "Resolved", "1/3/2016 09:00", mod=0, opened="1/3/2016 09:30"),  # opened after its first update
    ]
    events, bad, _ = run_import("\n".join(rows) + "\n", tmp_path)
    assert bad == []
    # created at the earlier of opened_at and the first update; a log first seen Resolved is solved at that update
    assert [(e["id"], e["time"], e["data"].get("status")) for e in events] == [
        ("INC2:created", "2016-03-01T09:00:00Z", "open"),
        ("INC2:0:status", "2016-03-01T09:00:00Z", "solved"),
    ]


def test_bad_rows_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    lines = [
        row("INC3", "New", "1/3/2016 08:05"),
        row("INC3", "-100", "1/3/2016 08:06"),
        row("INC3", "Active", "31/2/2016 08:07"),
        row("INC3", "Active", "1/3/2016 08:08", prio="9 - Whatever"),
        "INC3,too,few,columns",
        row("", "Active", "1/3/2016 08:09"),
        row("INC4", "New", "1/3/2016 09:00"),
        row("INC3", "Resolved", "1/3/2016 10:00"),  # INC3 again after INC4: not contiguous
        row("INC4", "Resolved", "1/3/2016 11:00"),
    ]
    events, bad, _ = run_import("\n".join(lines) + "\n", tmp_path)
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [
        (3, "unknown incident_state"),
        (4, "bad timestamp"),
        (5, "unknown priority"),
        (6, "wrong number of columns"),
        (7, "missing number"),
        (9, "rows of incident INC3 are not contiguous"),
    ]
    assert [e["id"] for e in events] == ["INC3:created", "INC4:created", "INC4:1:status"]


def test_cli_import_to_file_and_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "events.jsonl.gz"
    labels = tmp_path / "labels.csv"
    assert main(["import", "servicenow", str(SAMPLE), "-o", str(out), "--labels", str(labels)]) == 0
    err = capsys.readouterr().err
    assert ":3: skipped: unknown incident_state: '-100'" in err and "212 events" in err
    assert gzip.decompress(out.read_bytes()) == (DATA / "servicenow_sample.events.jsonl").read_bytes()
    assert labels.read_bytes() == (DATA / "servicenow_sample.labels.csv").read_bytes()
    assert main(["import", "servicenow", str(SAMPLE), "--show-errors", "0"]) == 0
    captured = capsys.readouterr()
    assert captured.out.encode() == (DATA / "servicenow_sample.events.jsonl").read_bytes()
    assert "skipped" not in captured.err.split("\n")[0]
    assert main(["import", "servicenow", str(tmp_path / "missing.csv")]) == 1


def test_not_a_servicenow_log(tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        import_servicenow(str(src), EventWriter(io.BytesIO()))
