"""Code and published contracts agree: checked-in schemas are what the code generates, and every event the engine
emits validates against them (and against the pydantic models)."""

from __future__ import annotations

import orjson
import pytest
import yaml
from jsonschema import Draft202012Validator

from escalator.contracts import differences, generate
from escalator.core import Emit, IncidentSignal, load_policy_text, observe
from escalator.core.output_models import EscalationRaised, IncidentDetected, NotificationRequested
from tests.support import ROOT, comment, created, envelope, ev, example_policy, run, status

SCHEMAS = ROOT / "schemas"
PS = example_policy()


def test_checked_in_schemas_match_the_code() -> None:
    assert differences(SCHEMAS) == []


def test_no_stale_schema_files() -> None:
    generated = set(generate())
    on_disk = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*") if p.is_file() and p.suffix != ".md"}
    assert on_disk == generated


def test_the_changelog_lists_every_additive_output_value() -> None:
    """Values added to v1 output enums after the first release are listed in schemas/CHANGELOG.md."""
    changelog = (SCHEMAS / "CHANGELOG.md").read_text()
    assert "`sla_at_risk`" in changelog
    assert "`agreement: {id, group}`" in changelog
    assert "`escalation.resolved`" in changelog and "`ticket.deescalated`" in changelog
    assert "`agent_request`" in changelog
    assert "`policy-version.json`" in changelog


def test_asyncapi_names_all_topics_and_messages() -> None:
    doc = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "ticket-events",
        "ticket-escalations",
        "ticket-notifications",
        "ticket-events.dlq",
        "escalator-policies",
    }
    for channel in doc["channels"].values():
        for message in channel["messages"].values():
            for part in ("payload", "headers"):
                ref = message.get(part, {}).get("$ref")
                if ref:
                    assert (SCHEMAS / ref).exists(), ref


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(orjson.loads((SCHEMAS / "v1" / name).read_bytes()))


def all_kinds_of_output() -> list[Emit]:
    events = [
        created("2026-11-20T10:00:00Z", tags=["legal"], group="g", assignee="a"),
        ev("escalation_requested", "2026-11-20T10:01:00Z"),
        ev("escalation_acknowledged", "2026-11-20T10:20:00Z", by="x"),
        comment("2026-11-20T12:00:00Z"),
        status("2026-11-20T12:01:00Z", "pending"),
    ]
    _, cmds = run(events, PS, until="2026-11-21T00:00:00Z")
    _, cmds2 = run(
        [created("2026-11-20T10:00:00Z", ticket="U", priority="low", tier="x")], PS, until="2026-11-30T00:00:00Z"
    )
    w, inc = None, []
    for i in range(10):
        w, out = observe(w, IncidentSignal("outage", "mail", f"I{i}", 1_800_000_000_000 + i), PS)
        inc += out
    # an OLA (per group, with a step before its target) and a per-ticket agreement beside the SLA
    ola = load_policy_text((ROOT / "examples" / "ola-policy.yaml").read_text(), "examples/ola-policy.yaml")
    _, cmds3 = run(
        [created("2026-11-20T10:00:00Z", ticket="V", priority="urgent", group="network")],
        ola,
        until="2026-11-24T00:00:00Z",
    )
    return [c for c in cmds + cmds2 + cmds3 if isinstance(c, Emit)] + inc


OUTPUTS = all_kinds_of_output()


def test_outputs_cover_every_kind() -> None:
    kinds = {c.event["data"].get("kind") for c in OUTPUTS if c.type == "notification.requested"}
    assert kinds == {"sla_warning", "sla_breach", "escalation", "requester_update", "incident"}
    reasons = {c.event["data"]["reason"] for c in OUTPUTS if c.type == "escalation.raised"}
    assert reasons == {"sla_breach", "sla_at_risk", "trigger", "requester_request"}
    agreements = {str(c.event["data"].get("agreement")) for c in OUTPUTS}
    assert {"None", "{'id': 'ola', 'group': 'network'}", "{'id': 'regulatory', 'group': None}"} <= agreements
    assert {c.type for c in OUTPUTS} == {"escalation.raised", "notification.requested", "incident.detected"}


@pytest.mark.parametrize("emit", OUTPUTS, ids=lambda e: e.id)
def test_every_output_matches_schema_and_model(emit: Emit) -> None:
    doc = orjson.loads(orjson.dumps(emit.event))
    validator(f"{emit.type}.json").validate(doc)
    model = {
        "escalation.raised": EscalationRaised,
        "notification.requested": NotificationRequested,
        "incident.detected": IncidentDetected,
    }[emit.type]
    # fields added to v1 later (``agreement``) are absent unless used: compare what the document sets
    assert model.model_validate(doc).model_dump(mode="json", exclude_unset=True) == doc


def test_input_schema_accepts_what_the_decoder_accepts() -> None:
    v = validator("ticket-event.json")
    v.validate(envelope("ticket.created", "2026-11-20T10:00:00Z", "T", {"priority": "low", "requester": {"id": "r"}}))
    errors = list(v.iter_errors(envelope("ticket.created", "2026-11-20T10:00:00Z", "T", {"priority": "asap"})))
    assert errors
