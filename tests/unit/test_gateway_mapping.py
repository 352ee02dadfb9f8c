"""The gateway's pure vendor mappers and its mapping file: sample webhooks -> exact v1 events; bodies that cannot be
mapped name the field; a bad mapping file names file, line and field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from escalator.core.events import decode_record
from escalator.gateway.cloudevents import to_record
from escalator.gateway.mapfile import MappingError, default_mappings, load_mapping_file, load_mapping_text
from escalator.gateway.mapping import Unmappable, map_jira, map_servicenow, map_zendesk

WEBHOOKS = Path(__file__).resolve().parents[1] / "data" / "webhooks"
EXPECTED: dict[str, list[dict[str, Any]]] = orjson.loads((WEBHOOKS / "expected.json").read_bytes())
MAPPINGS = default_mappings()
MAPPERS = {"zendesk": map_zendesk, "jira": map_jira, "servicenow": map_servicenow}


def sample(name: str) -> dict[str, Any]:
    return dict(orjson.loads((WEBHOOKS / name).read_bytes()))


def mapped(name: str, body: Any = None, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    vendor = name.split("-", maxsplit=1)[0]
    return MAPPERS[vendor](sample(name) if body is None else body, headers or {}, getattr(MAPPINGS, vendor))


def test_every_sample_has_its_expected_events() -> None:
    samples = sorted(p.name for p in WEBHOOKS.glob("*-*.json"))
    assert samples == sorted(EXPECTED)
    assert len(samples) >= 15


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_sample_maps_to_exactly_its_v1_events_which_the_worker_accepts(name: str) -> None:
    events = mapped(name)
    assert events == EXPECTED[name]
    for doc in events:
        record = to_record(doc, 1_000_000)
        event = decode_record(record.value, record.key)
        assert (event.id, event.ticket_id, event.type) == (doc["id"], doc["subject"], doc["type"])


def test_the_samples_cover_every_v1_event_the_vendors_send() -> None:
    kinds = {(name.split("-")[0], doc["type"]) for name, docs in EXPECTED.items() for doc in docs}
    for vendor in MAPPERS:
        assert {t for v, t in kinds if v == vendor} == {
            "ticket.created",
            "ticket.updated",
            "ticket.status_changed",
            "ticket.commented",
        }, vendor


def test_zendesk_comment_roles_and_visibility() -> None:
    assert EXPECTED["zendesk-comment-private-agent.json"][0]["data"] == {"author": "agent", "public": False}
    assert EXPECTED["zendesk-comment-public-requester.json"][0]["data"] == {"author": "requester", "public": True}


def test_a_vendor_event_escalator_has_no_use_for_maps_to_nothing() -> None:
    assert mapped("zendesk-brand-changed.json") == []
    assert (
        mapped("jira-issue-created.json", {**sample("jira-issue-created.json"), "webhookEvent": "worklog_created"})
        == []
    )


def test_an_upstream_retry_maps_to_identical_events() -> None:
    for name in EXPECTED:
        assert mapped(name) == mapped(name)


def test_jira_ids_come_from_the_delivery_identifier_when_there_is_one() -> None:
    events = mapped("jira-issue-updated.json", headers={"X-Atlassian-Webhook-Identifier": "1f2e3d4c-5b6a"})
    assert [e["id"] for e in events] == ["1f2e3d4c-5b6a:status", "1f2e3d4c-5b6a:updated"]


def test_a_zendesk_ticket_without_priority_gets_the_default() -> None:
    body = sample("zendesk-ticket-created.json")
    body["detail"]["priority"] = None
    assert mapped("zendesk-ticket-created.json", body)[0]["data"]["priority"] == "normal"


@pytest.mark.parametrize(
    ("name", "change", "field", "reason"),
    [
        ("zendesk-ticket-created.json", ("detail", "requester_id", None), "requester_id", "missing_field"),
        ("zendesk-ticket-created.json", ("detail", "priority", "CRITICAL"), "detail.priority", "unknown_value"),
        ("zendesk-status-changed.json", ("event", "current", "ARCHIVED"), "event.current", "unknown_value"),
        (
            "zendesk-comment-private-agent.json",
            ("event", "comment", {"id": "1"}),
            "event.comment.author.is_staff",
            "missing_field",
        ),
        ("jira-issue-created.json", ("issue", "key", None), "key", "missing_field"),
        ("jira-issue-updated.json", ("changelog", "items", "nope"), "changelog.items", "missing_field"),
        ("servicenow-insert.json", (None, "state", "42"), "state", "unknown_value"),
        ("servicenow-insert.json", (None, "sys_updated_on", "yesterday"), "sys_updated_on", "invalid_value"),
        ("servicenow-update.json", (None, "operation", "delete"), "operation", "unknown_value"),
    ],
)
def test_a_body_that_cannot_be_mapped_names_the_field(
    name: str, change: tuple[str | None, str, Any], field: str, reason: str
) -> None:
    body = copy.deepcopy(sample(name))
    parent, key, value = change
    target = body if parent is None else body[parent]
    target[key] = value
    with pytest.raises(Unmappable) as caught:
        mapped(name, body)
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_a_mapping_file_changes_words_groups_and_prefixes() -> None:
    text = """version: 1
zendesk:
  source: urn:zendesk:acme
  ticket_prefix: "zd-"
  priorities: {High: urgent}
  statuses: {new: new}
  groups: {8447320466430: billing}
"""
    mappings = load_mapping_text(text, "m.yaml")
    doc = map_zendesk(sample("zendesk-ticket-created.json"), {}, mappings.zendesk)[0]
    assert (doc["source"], doc["subject"]) == ("urn:zendesk:acme", "zd-5158")
    assert (doc["data"]["priority"], doc["data"]["group"]) == ("urgent", "billing")
    assert "fields" not in doc["data"]
    assert mappings.jira == MAPPINGS.jira  # a source left out keeps the defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nzendesk:\n  source: x\n  priorities: {urgent: urgnt}\n  statuses: {new: new}\n",
            "bad.yaml:4:16: zendesk.priorities.urgent: Input should be 'low', 'normal', 'high' or 'urgent'",
        ),
        (
            "version: 1\njira:\n  source: x\n  priorities: {high: high}\n  statuses: {done: solved}\n  colour: red\n",
            "bad.yaml:6:3: jira.colour: unknown field",
        ),
        (
            "version: 1\nservicenow:\n  priorities: {'1': urgent}\n  statuses: {'1': new}\n",
            "bad.yaml:2:1: servicenow.source: required field is missing",
        ),
        ("version: 1\nzendesk: [\n", "bad.yaml:3:1: YAML syntax error"),
        ("- 1\n", "bad.yaml:1:1: the mapping file must be a YAML mapping"),
        ("version: 2\n", "bad.yaml:1:1: version: Input should be 1"),
    ],
)
def test_a_bad_mapping_file_names_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping_text(text, "bad.yaml")
    assert str(caught.value).startswith(message), str(caught.value)


def test_an_unreadable_mapping_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"missing\.yaml: cannot read"):
        load_mapping_file(tmp_path / "missing.yaml")
    assert load_mapping_file(None) == MAPPINGS
