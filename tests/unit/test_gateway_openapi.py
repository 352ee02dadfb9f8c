"""The gateway's OpenAPI document and its code agree: the file is what the code generates, and it lists exactly the
routes the application serves, each POST with every status the handlers answer."""

from __future__ import annotations

from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from escalator.gateway.app import create_gateway
from escalator.gateway.openapi import openapi_document, openapi_yaml
from escalator.service.timesource import ManualTime
from escalator.settings import Settings
from tests.unit.test_gateway_app import FakeDelivery

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "schemas" / "openapi-gateway.yaml"


def test_the_file_is_what_the_code_generates() -> None:
    assert DOCUMENT.read_text() == openapi_yaml(), "run: escalator schemas write"


def test_the_document_lists_exactly_the_routes_the_app_serves() -> None:
    app = create_gateway(Settings(bootstrap_servers="127.0.0.1:1"), FakeDelivery(), CollectorRegistry(), ManualTime(0))
    served = {(r.method, r.resource.canonical) for r in app.router.routes() if r.method != "HEAD" and r.resource}
    documented = {(m.upper(), path) for path, ops in yaml.safe_load(DOCUMENT.read_text())["paths"].items() for m in ops}
    assert served == documented


def test_every_post_documents_every_answer_and_its_schema_reference_exists() -> None:
    doc = openapi_document()
    for path, ops in doc["paths"].items():
        if "post" in ops:
            assert sorted(ops["post"]["responses"]) == ["202", "401", "413", "415", "422", "429", "503"], path
    assert (ROOT / "schemas" / "v1" / "ticket-event.json").exists()
