"""Generated wire contracts: versioned JSON Schemas and the AsyncAPI 3 document, built from the pydantic models.

``escalator schemas write`` regenerates ``schemas/``; ``escalator schemas check`` (and a test) fails when the files
on disk differ from what the code would generate, so code and published contracts cannot drift apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import TypeAdapter

from .core.envelopes import ENVELOPES, TicketEventEnvelope
from .core.output_models import (
    DeadLetterHeaders,
    EscalationRaised,
    EscalationResolved,
    IncidentDetected,
    IncidentResolved,
    IncidentUpdated,
    NotificationRequested,
)
from .policy_versions import PolicyVersionRecord

__all__ = [
    "SCHEMA_VERSION",
    "asyncapi",
    "differences",
    "generate",
    "input_schema_name",
    "schema_files",
]

SCHEMA_VERSION = "v1"
BASE_ID = "urn:escalator:schema"
DEFAULT_TOPICS = {
    "input": "ticket-events",
    "escalations": "ticket-escalations",
    "notifications": "ticket-notifications",
    "dlq": "ticket-events.dlq",
    "policies": "escalator-policies",
}


def _schema(adapter_or_model: Any, name: str, title: str) -> dict[str, Any]:
    if isinstance(adapter_or_model, TypeAdapter):
        schema = adapter_or_model.json_schema(by_alias=True)
    else:
        schema = adapter_or_model.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_ID}:{name}:{SCHEMA_VERSION}",
        "title": title,
        **{k: v for k, v in schema.items() if k != "title"},
    }


#: Output types, by the name of their schema (the ``dataschema`` of the events: urn:escalator:schema:{type}:v1).
OUTPUTS: dict[str, Any] = {
    "escalation.raised": EscalationRaised,
    "escalation.resolved": EscalationResolved,
    "notification.requested": NotificationRequested,
    "incident.detected": IncidentDetected,
    "incident.updated": IncidentUpdated,
    "incident.resolved": IncidentResolved,
}


def input_schema_name(event_type: str) -> str:
    """The schema name of an input type: the type itself, or ``input.{type}`` when an output type has the same
    name (``incident.resolved`` is both what an incident tool tells escalator and what escalator publishes)."""
    return f"input.{event_type}" if event_type in OUTPUTS else event_type


def schema_files() -> dict[str, dict[str, Any]]:
    """File name (under ``schemas/v1/``) -> JSON Schema."""
    files = {
        "ticket-event.json": _schema(
            TypeAdapter(TicketEventEnvelope),
            "ticket-event",
            "Ticket event (CloudEvents 1.0, structured mode), any v1 type",
        ),
        **{f"{name}.json": _schema(model, name, name) for name, model in OUTPUTS.items()},
        "dead-letter-headers.json": _schema(
            DeadLetterHeaders, "dead-letter-headers", "Headers added to a dead-lettered record"
        ),
        "policy-version.json": _schema(
            PolicyVersionRecord, "policy-version", "A published policy version (the policies topic)"
        ),
    }
    for event_type, model in ENVELOPES.items():
        name = input_schema_name(event_type)
        files[f"{name}.json"] = _schema(model, name, event_type)
    return files


def asyncapi(topics: dict[str, str] | None = None) -> dict[str, Any]:
    t = {**DEFAULT_TOPICS, **(topics or {})}
    key_doc = {"type": "string", "description": "The ticket id (equals the CloudEvent subject)."}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "escalator",
            "version": "1.0.0",
            "description": (
                "SLA and escalation events. Ticket systems publish ticket events; escalator publishes escalations, "
                "incidents and notification requests. Every output id is deterministic (a pure function of the "
                "ticket's event history), so consumers de-duplicate on the CloudEvent id. Delivery is "
                "at-least-once. Structured-mode CloudEvents JSON; the input also accepts binary mode (ce_* headers)."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": {**_channels(t), **_policy_channel(t)},
        "operations": {
            "consumeTicketEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ticketEvents"},
                "bindings": {"kafka": {"groupId": {"type": "string"}}},
            },
            "publishEscalations": {"action": "send", "channel": {"$ref": "#/channels/ticketEscalations"}},
            "publishNotifications": {"action": "send", "channel": {"$ref": "#/channels/ticketNotifications"}},
            "publishDeadLetters": {"action": "send", "channel": {"$ref": "#/channels/deadLetters"}},
            "consumePolicyVersions": {"action": "receive", "channel": {"$ref": "#/channels/policyVersions"}},
        },
        "components": {"messageTraits": {"ticketKey": {"bindings": {"kafka": {"key": key_doc}}}}},
    }


def _policy_channel(t: dict[str, str]) -> dict[str, Any]:
    return {
        "policyVersions": {
            "address": t["policies"],
            "description": (
                "Published policy versions (`escalator policy publish`; `<app_id>-policies`, one partition, "
                "compacted), key `{version}@{effective_from}/{applies_to}`. Every worker reads it to its end before "
                "processing and follows it."
            ),
            "messages": {
                "policy_version": {
                    "name": "policy-version",
                    "contentType": "application/json",
                    "payload": {"$ref": "./v1/policy-version.json"},
                }
            },
        },
    }


def _channels(t: dict[str, str]) -> dict[str, Any]:
    ref = "./v1/{}".format
    input_messages = {
        name.replace(".", "_"): {
            "name": name,
            "title": name,
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": ref(f"{input_schema_name(name)}.json")},
        }
        for name in ENVELOPES
    }
    return {
        "ticketEvents": {
            "address": t["input"],
            "description": "Ticket events, record key = ticket id; incident.resolved (from an incident or status "
            "tool), record key = subject = the incident id.",
            "messages": input_messages,
        },
        "ticketEscalations": {
            "address": t["escalations"],
            "description": "escalation.raised and escalation.resolved (key: ticket id), incident.detected, "
            "incident.updated and incident.resolved (key: group value).",
            "messages": {
                "escalation_raised": {
                    "name": "escalation.raised",
                    "payload": {"$ref": ref("escalation.raised.json")},
                },
                "escalation_resolved": {
                    "name": "escalation.resolved",
                    "payload": {"$ref": ref("escalation.resolved.json")},
                },
                "incident_detected": {
                    "name": "incident.detected",
                    "payload": {"$ref": ref("incident.detected.json")},
                },
                "incident_updated": {
                    "name": "incident.updated",
                    "payload": {"$ref": ref("incident.updated.json")},
                },
                "incident_resolved": {
                    "name": "incident.resolved",
                    "payload": {"$ref": ref("incident.resolved.json")},
                },
            },
        },
        "ticketNotifications": {
            "address": t["notifications"],
            "description": "notification.requested (key: ticket id, or the group value for incidents).",
            "messages": {
                "notification_requested": {
                    "name": "notification.requested",
                    "payload": {"$ref": ref("notification.requested.json")},
                }
            },
        },
        "deadLetters": {
            "address": t["dlq"],
            "description": (
                "Input records that could not be used: original key, value and headers, plus escalator-dlq-* "
                "headers naming the reason, detail and original topic/partition/offset."
            ),
            "messages": {
                "dead_letter": {
                    "name": "dead-letter",
                    "contentType": "application/octet-stream",
                    "payload": {"type": "string", "description": "The original record value, unchanged."},
                    "headers": {"$ref": ref("dead-letter-headers.json")},
                }
            },
        },
    }


def generate() -> dict[str, bytes]:
    """Relative path under ``schemas/`` -> file content."""
    out = {
        f"{SCHEMA_VERSION}/{name}": orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        for name, schema in schema_files().items()
    }
    out["asyncapi.yaml"] = yaml.safe_dump(asyncapi(), sort_keys=False, width=110).encode()
    from .gateway.openapi import openapi_yaml  # the gateway's HTTP API (docs/gateway.md)

    out["openapi-gateway.yaml"] = openapi_yaml().encode()
    from .service.openapi import openapi_yaml as worker_openapi  # the worker's HTTP API (docs/service.md)

    out["openapi-worker.yaml"] = worker_openapi().encode()
    return out


def differences(root: Path) -> list[str]:
    """Files under ``root`` that are missing or differ from what :func:`generate` produces."""
    problems = []
    for rel, content in generate().items():
        path = root / rel
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_bytes() != content:
            problems.append(f"{path}: differs from the code (run `escalator schemas write`)")
    return problems
