"""The help-desk importer: golden output on a real sample, the activity mapping, bad rows.

The sample (tests/data/helpdesk_sample.csv.gz) is 183 rows of 33 cases from the help-desk log of an Italian
software company (4TU.ResearchData, doi:10.4121/uuid:0c60edf1-6f83-4e75-9367-4c63b3e9d5bb; CC BY 4.0); see
tests/data/README.md. Set ESCALATOR_UPDATE_GOLDEN=1 to rewrite the golden file after an intended change.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import orjson

from escalator.cli import main
from escalator.core import decode_record
from escalator.replay.importers import BadRow, EventWriter, import_helpdesk
from escalator.replay.importers.helpdesk import ACTIVITIES

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "helpdesk_sample.csv.gz"
HEADER = (
    "Case ID,Activity,Resource,Complete Timestamp,Variant,Variant index,Variant,seriousness,customer,product,"
    "responsible_section,seriousness_2,service_level,service_type,support_section,workgroup"
)


def row(
    case: str,
    activity: str,
    at: str,
    resource: str = "Value 1",
    seriousness: str = "Value 1",
    workgroup: str = "Value 1",
) -> str:
    return (
        f"{case},{activity},{resource},{at},Variant 1,1,Variant 1,Value 1,Value 7,Value 2,Value 1,{seriousness},"
        f"Value 2,Value 1,Value 1,{workgroup}"
    )


def run_import(lines: list[str], tmp_path: Path) -> tuple[list[dict[str, object]], list[BadRow]]:
    src = tmp_path / "log.csv"
    src.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    out = io.BytesIO()
    bad: list[BadRow] = []
    writer = EventWriter(out)
    import_helpdesk(str(src), writer, on_bad=bad.append)
    writer.close()
    return [orjson.loads(x) for x in out.getvalue().splitlines()], bad


def test_golden_sample_and_every_event_is_valid_v1() -> None:
    out = io.BytesIO()
    bad: list[BadRow] = []
    writer = EventWriter(out)
    stats = import_helpdesk(str(SAMPLE), writer, on_bad=bad.append)
    writer.close()
    data = out.getvalue()
    path = DATA / "helpdesk_sample.events.jsonl"
    if os.environ.get("ESCALATOR_UPDATE_GOLDEN"):
        path.write_bytes(data)
    assert data == path.read_bytes()
    assert bad == [] and stats.rows == 183 and stats.tickets == 33
    events = [decode_record(x) for x in data.splitlines()]
    assert len(events) == stats.events == 252
    assert [e.time_ms for e in events] == sorted(e.time_ms for e in events)
    # the sample covers every activity of the log
    import csv
    import gzip

    with gzip.open(SAMPLE, "rt", newline="") as fh:
        assert {r["Activity"] for r in csv.DictReader(fh)} == set(ACTIVITIES)


def test_activity_mapping(tmp_path: Path) -> None:
    events, bad = run_import(
        [
            row("Case 9", "Insert ticket", "2012/01/02 09:00:00.000", seriousness="Value 3"),
            row("Case 9", "Assign seriousness", "2012/01/02 09:05:00.000", seriousness="Value 4"),
            row(
                "Case 9", "Take in charge ticket", "2012/01/02 09:30:00.000", resource="Value 5", seriousness="Value 4"
            ),
            row("Case 9", "Wait", "2012/01/02 10:00:00.000", seriousness="Value 4"),
            row("Case 9", "Create SW anomaly", "2012/01/03 10:00:00.000", seriousness="Value 4", workgroup="Value 2"),
            row(
                "Case 9", "Take in charge ticket", "2012/01/04 10:00:00.000", resource="Value 5", seriousness="Value 4"
            ),
            row("Case 9", "Resolve ticket", "2012/01/04 11:00:00.500", seriousness="Value 4"),
            row("Case 9", "Closed", "2012/01/20 11:00:00.000", seriousness="Value 4"),
            row(
                "Case 9", "Take in charge ticket", "2012/01/21 11:00:00.000", resource="Value 6", seriousness="Value 4"
            ),
        ],
        tmp_path,
    )
    assert bad == []
    got = [(e["id"], e["time"], e["data"]) for e in events]
    assert got[0] == (
        "Case 9:created",
        "2012-01-02T09:00:00Z",
        {
            "priority": "high",
            "status": "new",
            "requester": {"id": "customer-7", "tier": "level-2"},
            "group": "workgroup-1",
            "assignee": None,
            "product": "product-2",
            "category": "service-type-1",
            "tags": [],
            "fields": {"seriousness": "3", "support_section": "1", "responsible_section": "1"},
        },
    )
    assert got[1:] == [
        (
            "Case 9:1:updated",
            "2012-01-02T09:05:00Z",
            {"changes": {"priority": "urgent", "fields": {"seriousness": "4"}}},
        ),
        ("Case 9:2:updated", "2012-01-02T09:30:00Z", {"changes": {"assignee": "resource-5"}}),
        ("Case 9:2:status", "2012-01-02T09:30:00Z", {"status": "open"}),
        ("Case 9:2:commented", "2012-01-02T09:30:00Z", {"author": "agent", "public": True}),
        ("Case 9:3:status", "2012-01-02T10:00:00Z", {"status": "pending"}),
        ("Case 9:4:updated", "2012-01-03T10:00:00Z", {"changes": {"group": "workgroup-2", "tags": ["sw_anomaly"]}}),
        ("Case 9:5:updated", "2012-01-04T10:00:00Z", {"changes": {"group": "workgroup-1"}}),
        ("Case 9:5:status", "2012-01-04T10:00:00Z", {"status": "open"}),
        ("Case 9:5:commented", "2012-01-04T10:00:00Z", {"author": "agent", "public": True}),
        ("Case 9:6:status", "2012-01-04T11:00:00.500Z", {"status": "solved"}),
        ("Case 9:7:status", "2012-01-20T11:00:00Z", {"status": "closed"}),
        ("Case 9:8:updated", "2012-01-21T11:00:00Z", {"changes": {"assignee": "resource-6"}}),
        ("Case 9:8:status", "2012-01-21T11:00:00Z", {"status": "open"}),  # taken in charge after Closed: a reopen
        ("Case 9:8:commented", "2012-01-21T11:00:00Z", {"author": "agent", "public": True}),
    ]


def test_bad_rows(tmp_path: Path) -> None:
    events, bad = run_import(
        [
            row("Case 1", "Assign seriousness", "2012/01/02 09:00:00.000"),
            row("Case 1", "Dance", "2012/01/02 09:01:00.000"),
            row("Case 1", "Wait", "2012/13/02 09:02:00.000"),
            "Case 1,Wait",
            row("Case 2", "Assign seriousness", "2012/01/03 09:00:00.000"),
            row("Case 1", "Resolve ticket", "2012/01/04 09:00:00.000"),
        ],
        tmp_path,
    )
    assert [(b.line, b.reason.split(":")[0]) for b in bad] == [
        (3, "unknown activity"),
        (4, "bad timestamp"),
        (5, "wrong number of columns"),
        (7, "rows of Case 1 are not contiguous"),
    ]
    assert [e["id"] for e in events] == ["Case 1:created", "Case 2:created"]


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "hd.jsonl"
    assert main(["import", "helpdesk", str(SAMPLE), "-o", str(out), "--chunk", "10"]) == 0
    assert out.read_bytes() == (DATA / "helpdesk_sample.events.jsonl").read_bytes()
    assert main(["import", "helpdesk", str(SAMPLE), "--timezone", "Mars/Olympus"]) == 2
