"""The OpenAPI 3.1 document of the worker's HTTP API (``schemas/openapi-worker.yaml``; docs/service.md). One of the
generated contracts: ``escalator schemas write`` regenerates it, ``escalator schemas check`` checks it, and a unit
test checks that it lists exactly the routes :func:`escalator.service.app.web_app` serves and that the views'
fields are the ones it documents."""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from ..core.vocabulary import PRIORITIES, STATUSES

__all__ = [
    "AT_RISK_ROW",
    "POLICY_VERSION_ROW",
    "POLICY_VIEW",
    "TICKET_VIEW",
    "TIMELINE_ENTRY",
    "openapi_document",
    "openapi_yaml",
]

_JSON = "application/json"
_TEXT: dict[str, Any] = {"type": "string"}
_NULLABLE_TEXT: dict[str, Any] = {"type": ["string", "null"]}

#: The fields of each view (the tests compare them with what the code returns).
TICKET_VIEW = (
    "ticket_id",
    "policy",
    "ticket",
    "created_at",
    "reopen_count",
    "reassignment_count",
    "unanswered_requester_messages",
    "rating",
    "triggers_active",
    "flags",
    "clocks",
    "next_deadline",
    "escalations",
)
TIMELINE_ENTRY = ("at", "kind", "type", "id", "what")
POLICY_VIEW = ("version", "source", "spec", "plans", "versions", "rejected_records")
POLICY_VERSION_ROW = ("version", "source", "effective_from", "applies_to", "published_at", "state", "open_tickets")
AT_RISK_ROW = (
    "ticket_id",
    "metric",
    "threshold",
    "due_at",
    "due_ms",
    "agreement",
    "priority",
    "group",
    "assignee",
    "status",
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _ticket_path(summary: str, op: str, schema: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": op,
            "parameters": [{"name": "ticket_id", "in": "path", "required": True, "schema": _TEXT}],
            "responses": {
                "200": _json_answer("Answered by the owner of the ticket's partition (forwarded to it).", _ref(schema)),
                "404": _json_answer("No such ticket on the partition that would hold it.", _ref("Error")),
                "502": _json_answer("The owning worker did not answer.", _ref("Error")),
                "503": _json_answer("The owner of the ticket's partition is not known yet; retry.", _ref("Error")),
            },
        }
    }


def _at_risk_path() -> dict[str, Any]:
    def q(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}

    return {
        "get": {
            "summary": "Open tickets whose next threshold falls within the horizon, soonest first, across all workers",
            "operationId": "at_risk",
            "parameters": [
                q("within", "The horizon, a duration (default 2h).", {"type": "string", "default": "2h"}),
                q("group", "Only tickets of this group.", _TEXT),
                q("priority", "Only tickets of this priority.", {"enum": list(PRIORITIES)}),
                q("agreement", "Only thresholds of this agreement (id or instance; sla: the customer SLA).", _TEXT),
                q("limit", "At most this many rows (1..1000, default 100).", {"type": "integer", "default": 100}),
            ],
            "responses": {
                "200": _json_answer("This worker's rows merged with the other workers'.", _ref("AtRisk")),
                "400": _json_answer("A bad query.", _ref("Error")),
            },
        }
    }


def _plain(op: str, summary: str, schema: dict[str, Any], not_ready: bool = False) -> dict[str, Any]:
    responses = {"200": _json_answer(summary, schema)}
    if not_ready:
        responses["503"] = _json_answer("Not ready (recovering or rebalancing).", schema)
    return {"get": {"summary": summary, "operationId": op, "responses": responses}}


def _components() -> dict[str, Any]:
    obj: dict[str, Any] = {"type": "object"}
    entry = {
        "type": "object",
        "required": list(TIMELINE_ENTRY),
        "properties": {
            "at": {**_TEXT, "description": "The instant (RFC 3339): an event's applied instant, an output's time."},
            "kind": {"enum": ["event", "output"]},
            "type": {**_TEXT, "description": "The CloudEvent type."},
            "id": {**_TEXT, "description": "The CloudEvent id."},
            "what": {**_TEXT, "description": "A short reading: a status, an author, a kind, a level and reason."},
        },
    }
    row_props: dict[str, Any] = dict.fromkeys(AT_RISK_ROW, _NULLABLE_TEXT)
    row_props.update({"due_ms": {"type": "integer"}, "priority": {"enum": list(PRIORITIES)}})
    row_props["status"] = {"enum": list(STATUSES)}
    view_props: dict[str, Any] = dict.fromkeys(TICKET_VIEW, obj)
    view_props.update(
        {
            "ticket_id": _TEXT,
            "created_at": _TEXT,
            "next_deadline": _NULLABLE_TEXT,
            "rating": {"type": ["integer", "null"]},
            "reopen_count": {"type": "integer"},
            "reassignment_count": {"type": "integer"},
            "unanswered_requester_messages": {"type": "integer"},
            "triggers_active": {"type": "array", "items": _TEXT},
            "flags": {"type": "array", "items": _TEXT},
            "clocks": {"type": "array", "items": obj, "description": "Each metric's clock (docs/service.md)."},
            "escalations": {"type": "array", "items": obj, "description": "Open and resolved escalation records."},
        }
    )
    return {
        "schemas": {
            "TicketView": {"type": "object", "required": list(TICKET_VIEW), "properties": view_props},
            "Timeline": {
                "type": "object",
                "required": ["ticket_id", "kept", "entries"],
                "properties": {
                    "ticket_id": _TEXT,
                    "kept": {"type": "integer", "description": "How many of the most recent entries are kept."},
                    "entries": {"type": "array", "items": entry, "description": "Oldest first."},
                },
            },
            "AtRisk": {
                "type": "object",
                "required": ["until", "filters", "tickets", "unanswered"],
                "properties": {
                    "until": _TEXT,
                    "filters": obj,
                    "tickets": {
                        "type": "array",
                        "items": {"type": "object", "required": list(AT_RISK_ROW), "properties": row_props},
                    },
                    "unanswered": {"type": "array", "items": _TEXT, "description": "Workers that did not answer."},
                },
            },
            "Error": {"type": "object", "required": ["error"], "properties": {"error": _TEXT, "ticket_id": _TEXT}},
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "Required when ESCALATOR_WEB_API_TOKENS (or, for /metrics, _METRICS_TOKENS) is set.",
            }
        },
    }


def _policy_schema() -> dict[str, Any]:
    nullable_instant = {"type": ["string", "null"], "description": "RFC 3339; null: since forever / not published"}
    row = {
        "version": {**_TEXT, "description": "The content hash."},
        "source": _TEXT,
        "effective_from": nullable_instant,
        "applies_to": {"enum": ["open_tickets", "new_tickets"]},
        "published_at": nullable_instant,
        "state": {"enum": ["in_force", "pending", "superseded"]},
        "open_tickets": {"type": "integer", "description": "This worker's open tickets on the version."},
    }
    assert tuple(row) == POLICY_VERSION_ROW
    return {
        "type": "object",
        "required": list(POLICY_VIEW),
        "properties": {
            "version": _TEXT,
            "source": _TEXT,
            "spec": {"type": "object", "description": "The validated policy file."},
            "plans": {"type": "object", "description": "Per policy and metric: [offset, threshold] pairs."},
            "versions": {
                "type": "array",
                "items": {"type": "object", "required": list(POLICY_VERSION_ROW), "properties": row},
            },
            "rejected_records": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "Policies-topic records (and file edits) not used, by reason.",
            },
        },
    }


def openapi_document() -> dict[str, Any]:
    health = {"type": "object", "properties": {"status": {"const": "ok"}}}
    ready = {"type": "object", "properties": {"ready": {"type": "boolean"}, "partitions": {"type": "object"}}}
    paths: dict[str, Any] = {
        "/healthz": _plain("healthz", "Liveness", health),
        "/readyz": _plain("readyz", "Readiness: every owned partition recovered and claimed", ready, True),
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (docs/service.md)",
                "operationId": "metrics",
                "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
            }
        },
        "/policy": _plain(
            "policy",
            "The version new tickets get now (its file and compiled thresholds) and every policy version held",
            _policy_schema(),
        ),
        "/at-risk": _at_risk_path(),
        "/tickets/{ticket_id}": _ticket_path("A ticket's clocks, thresholds and escalations", "ticket", "TicketView"),
        "/tickets/{ticket_id}/timeline": _ticket_path(
            "The ticket's most recent applied events and emitted outputs, in order", "timeline", "Timeline"
        ),
    }
    for path, ops in paths.items():
        if path not in ("/healthz", "/readyz"):  # open; the rest needs a token once tokens are configured
            ops["get"]["security"] = [{}, {"bearer": []}]
            ops["get"]["responses"]["401"] = _json_answer("No bearer token (tokens are configured).", _ref("Error"))
            ops["get"]["responses"]["403"] = _json_answer("A token that is not accepted.", _ref("Error"))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "escalator worker",
            "version": "1.0.0",
            "description": "The worker's views of the tickets it holds, answered across workers (docs/service.md).",
        },
        "servers": [{"url": "http://127.0.0.1:6066"}],
        "paths": paths,
        "components": _components(),
    }


def openapi_yaml() -> str:
    plain = orjson.loads(orjson.dumps(openapi_document()))  # no shared objects: no YAML anchors in the file
    return yaml.safe_dump(plain, sort_keys=False, width=120, allow_unicode=True)
