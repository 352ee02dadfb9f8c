"""The worker's OpenAPI document and its code agree (the file is what the code generates, it lists exactly the
routes the app serves, and the views return exactly the fields it documents); /tickets/{id}/timeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from escalator.core import parse_rfc3339_ms
from escalator.core.timeline import TIMELINE_KEPT
from escalator.service.app import web_app
from escalator.service.openapi import AT_RISK_ROW, TICKET_VIEW, TIMELINE_ENTRY, openapi_document, openapi_yaml
from escalator.settings import Settings
from escalator.stream.partitioner import partition_for
from tests.support import EXAMPLE_POLICY, envelope
from tests.unit.test_service_app import get, join, make, send

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "schemas" / "openapi-worker.yaml"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        bootstrap_servers="127.0.0.1:1",
        store="memory",
        data_dir=tmp_path,
        app_id="unit",
        policy_file=EXAMPLE_POLICY,
        partitions=2,
        output_partitions=2,
        web_advertised_host="worker-a",
    )


def test_the_file_is_what_the_code_generates() -> None:
    assert DOCUMENT.read_text() == openapi_yaml(), "run: escalator schemas write"


def test_the_document_lists_exactly_the_routes_the_app_serves(settings: Settings) -> None:
    service, _broker, _ports = make(settings)
    app = web_app(service)
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource}
    documented = {(m.upper(), path) for path, ops in yaml.safe_load(DOCUMENT.read_text())["paths"].items() for m in ops}
    assert served == documented


async def test_the_views_return_the_documented_fields_and_the_timeline_is_bounded(
    settings: Settings,
) -> None:
    service, broker, _ports = make(settings)
    app = web_app(service)
    tid = "T1"
    join(service, broker, [partition_for(tid.encode(), settings.partitions)])
    send(
        broker,
        settings,
        envelope("ticket.created", "2026-11-20T10:00:00Z", tid, {"priority": "urgent", "requester": {"id": "r"}}, "c"),
    )
    for i in range(TIMELINE_KEPT):  # each a public requester comment: an event (and no output)
        at = f"2026-11-20T10:00:{i // 10:02d}.{i % 10}00Z"
        send(broker, settings, envelope("ticket.commented", at, tid, {"author": "requester"}, f"m{i}"))
    send(broker, settings, envelope("ticket.status_changed", "2026-11-20T10:01:00Z", tid, {"status": "solved"}))
    service.runtime.step()
    status, view = await get(app, f"/tickets/{tid}")
    assert status == 200 and tuple(view) == TICKET_VIEW
    status, timeline = await get(app, f"/tickets/{tid}/timeline")
    assert status == 200 and timeline["ticket_id"] == tid and timeline["kept"] == TIMELINE_KEPT
    entries = timeline["entries"]
    assert len(entries) == TIMELINE_KEPT and all(tuple(e) == TIMELINE_ENTRY for e in entries)
    assert entries[0]["id"] != "c"  # the oldest fell off
    last = entries[-1]
    assert (last["kind"], last["type"], last["what"]) == ("event", "ticket.status_changed", "solved")
    instants = [parse_rfc3339_ms(e["at"]) for e in entries]
    assert instants == sorted(instants)
    assert (await get(app, "/tickets/nope/timeline"))[0] in (404, 503)


async def test_an_escalation_shows_as_its_event_then_its_outputs(settings: Settings) -> None:
    service, broker, _ports = make(settings)
    app = web_app(service)
    tid = "T2"
    join(service, broker, [partition_for(tid.encode(), settings.partitions)])
    created = {"priority": "normal", "requester": {"id": "r"}, "tags": ["legal"]}
    send(broker, settings, envelope("ticket.created", "2026-11-20T10:00:00Z", tid, created, "c2"))
    service.runtime.step()
    _status, timeline = await get(app, f"/tickets/{tid}/timeline")
    kinds = [(e["kind"], e["type"]) for e in timeline["entries"]]
    assert kinds[0] == ("event", "ticket.created")
    assert ("output", "escalation.raised") in kinds[1:]


def test_at_risk_rows_have_the_documented_fields() -> None:
    import orjson

    from escalator.core import apply, decode_record
    from escalator.core.views import upcoming
    from tests.support import example_policy, ms

    ps = example_policy()
    doc = envelope("ticket.created", "2026-11-20T10:00:00Z", "T3", {"priority": "urgent", "requester": {"id": "r"}})
    state, _ = apply(None, decode_record(orjson.dumps(doc)), ps)
    rows = upcoming(state, ps, ms("2026-11-21T10:00:00Z"))
    assert rows and all(tuple(r) == AT_RISK_ROW for r in rows)
    schema = openapi_document()["components"]["schemas"]["AtRisk"]["properties"]["tickets"]["items"]
    assert tuple(schema["required"]) == AT_RISK_ROW
