"""The OpenAPI 3.1 document of the gateway's HTTP API (``schemas/openapi-gateway.yaml``), built from the routes the
application registers (:data:`escalator.gateway.app.ROUTES`); a unit test keeps file, routes and code in step.
It is one of the generated contracts: ``escalator schemas write`` regenerates it, ``escalator schemas check`` checks
it (``escalator gateway --openapi`` prints it)."""

from __future__ import annotations

from typing import Any

import orjson
import yaml

from .app import ROUTES
from .metrics import OUTCOMES
from .signatures import (
    ESCALATOR_SIGNATURE,
    ESCALATOR_TIMESTAMP,
    HUB_SIGNATURE,
    ZENDESK_SIGNATURE,
    ZENDESK_TIMESTAMP,
)

__all__ = ["openapi_document", "openapi_yaml"]

_JSON = "application/json"
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "events": [{"escalatorHmac": []}, {"bearer": []}],
    "zendesk": [{"zendeskSignature": []}],
    "jira": [{"hubSignature": []}],
    "servicenow": [{"escalatorHmac": []}, {"bearer": []}],
}
_SUMMARIES = {
    "events": "CloudEvents (structured, binary or batched mode) that are v1 ticket events",
    "zendesk": "A Zendesk event-subscribed ticket webhook (zen:event-type:ticket.*)",
    "jira": "A Jira / Jira Service Management webhook (jira:issue_created, jira:issue_updated, comment_created)",
    "servicenow": "The body of the ServiceNow business rule documented in docs/gateway.md",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _answer(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {_JSON: {"schema": _ref(schema)}}}
    if headers:
        out["headers"] = headers
    return out


def _request_body(source: str) -> dict[str, Any]:
    if source == "events":
        event = "v1/ticket-event.json"  # schemas/v1, generated from the v1 contract
        return {
            "required": True,
            "content": {
                "application/cloudevents+json": {"schema": {"$ref": event}},
                "application/cloudevents-batch+json": {"schema": {"type": "array", "items": {"$ref": event}}},
                _JSON: {"schema": {"description": "binary mode: the event's data; attributes in ce-* headers"}},
            },
        }
    return {"required": True, "content": {_JSON: {"schema": {"type": "object"}}}}


def _post(source: str) -> dict[str, Any]:
    return {
        "summary": _SUMMARIES[source],
        "operationId": f"post_{source}",
        "security": _SECURITY[source],
        "requestBody": _request_body(source),
        "responses": {
            "202": _answer(
                "Every event was acknowledged by the broker (acks=all), or there was none to produce.", "Accepted"
            ),
            "401": _answer(
                "Not authentic: missing, bad or stale signature or token, or the source is not configured.", "Error"
            ),
            "413": _answer("The body or the number of events is over the limit.", "Error"),
            "415": _answer("Not a CloudEvents content type (POST /v1/events only).", "Error"),
            "422": _answer("Cannot be mapped to valid v1 events; nothing was produced.", "Unprocessable"),
            "429": _answer("The source is over its rate limit.", "Error", _RETRY_AFTER),
            "503": _answer("The broker failed or did not acknowledge in time; retry.", "Error", _RETRY_AFTER),
        },
    }


def _get(path: str) -> dict[str, Any]:
    if path == "/metrics":
        return {
            "summary": f"Prometheus metrics (escalator_gateway_*; outcomes: {', '.join(OUTCOMES)})",
            "operationId": "metrics",
            "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
        }
    name = path.strip("/")
    ready = {"type": "object", "properties": {"ready": {"type": "boolean"}}}
    health = {"type": "object", "properties": {"status": {"const": "ok"}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "Serving" if name == "healthz" else "The producer has the broker's metadata",
            "content": {_JSON: {"schema": health if name == "healthz" else ready}},
        },
    }
    if name == "readyz":
        responses["503"] = {"description": "Not ready", "content": {_JSON: {"schema": ready}}}
    return {"summary": "Liveness" if name == "healthz" else "Readiness", "operationId": name, "responses": responses}


def _components() -> dict[str, Any]:
    text = {"type": "string"}
    return {
        "schemas": {
            "Accepted": {
                "type": "object",
                "required": ["accepted", "ids"],
                "properties": {
                    "accepted": {"type": "integer", "minimum": 0},
                    "ids": {"type": "array", "items": text, "description": "CloudEvent ids of the produced events"},
                    "note": text,
                },
            },
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": text, "reason": text, "detail": text},
            },
            "Unprocessable": {
                "type": "object",
                "required": ["error", "field", "reason", "detail"],
                "properties": {
                    "error": {"const": "unprocessable"},
                    "field": {**text, "description": "dotted path of the offending field ([i]. prefixes a batch item)"},
                    "reason": text,
                    "detail": text,
                },
            },
        },
        "securitySchemes": {
            "zendeskSignature": {
                "type": "apiKey",
                "in": "header",
                "name": ZENDESK_SIGNATURE,
                "description": f"base64(HMAC-SHA256(secret, {ZENDESK_TIMESTAMP} + body))",
            },
            "hubSignature": {
                "type": "apiKey",
                "in": "header",
                "name": HUB_SIGNATURE,
                "description": "sha256=hex(HMAC-SHA256(secret, body))",
            },
            "escalatorHmac": {
                "type": "apiKey",
                "in": "header",
                "name": ESCALATOR_SIGNATURE,
                "description": f"sha256=hex(HMAC-SHA256(secret, {ESCALATOR_TIMESTAMP} + '.' + body)); "
                f"{ESCALATOR_TIMESTAMP} in Unix seconds",
            },
            "bearer": {"type": "http", "scheme": "bearer"},
        },
    }


def openapi_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for (method, path), source in ROUTES.items():
        paths.setdefault(path, {})[method.lower()] = _post(source) if method == "POST" else _get(path)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "escalator gateway",
            "version": "1.0.0",
            "description": "Ticketing webhooks and CloudEvents over HTTP in, v1 ticket events out (docs/gateway.md).",
        },
        "servers": [{"url": "http://127.0.0.1:8088"}],
        "paths": paths,
        "components": _components(),
    }


def openapi_yaml() -> str:
    plain = orjson.loads(orjson.dumps(openapi_document()))  # no shared objects: no YAML anchors in the file
    return yaml.safe_dump(plain, sort_keys=False, width=120, allow_unicode=True)
