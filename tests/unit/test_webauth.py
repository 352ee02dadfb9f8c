"""Who may use the HTTP ports (escalator.service.webauth): bearer tokens on the worker's API and on /metrics of the
worker, the relay and the gateway; probes always open; 401/403 that do not say what failed; TLS from settings; the
tokens never printed. Real aiohttp servers on loopback."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from escalator.notify.app import notify_web_app
from escalator.service.app import web_app
from escalator.service.webauth import protect, server_ssl_context, split_tokens
from escalator.settings import Settings
from tests.unit.test_service_app import make
from tests.unit.test_service_app import settings as settings  # noqa: PLC0414 (the fixture)

API_A, API_B, METRICS = "api-token-aaaaaaaaaaaaaaaa", "api-token-bbbbbbbbbbbbbbbb", "metrics-token-cccccccccccc"


def with_tokens(base: Settings, **changes: Any) -> Settings:
    return base.model_copy(update=changes)


async def client_for(app: web.Application) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[TestClient[Any, Any]]:
    from pydantic import SecretStr

    s = with_tokens(settings, web_api_tokens=SecretStr(f"{API_A}, {API_B}"), web_metrics_tokens=SecretStr(METRICS))
    service, _broker, _ports = make(s)
    client = await client_for(web_app(service))
    try:
        yield client
    finally:
        await client.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_probes_stay_open(worker: TestClient[Any, Any]) -> None:
    assert (await worker.get("/healthz")).status == 200
    assert (await worker.get("/readyz")).status in (200, 503)  # not ready yet: but not refused


@pytest.mark.parametrize("path", ["/policy", "/tickets/T-1", "/no-such-path"])
async def test_api_needs_an_api_token(worker: TestClient[Any, Any], path: str) -> None:
    missing = await worker.get(path)
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    for headers in (bearer("wrong"), bearer(METRICS), {"Authorization": f"Basic {API_A}"}, bearer(API_A + "x")):
        r = await worker.get(path, headers=headers)
        assert r.status in (401, 403), headers
        assert await r.json() in ({"error": "forbidden"}, {"error": "unauthorized"})  # never which part failed
    for token in (API_A, API_B):  # any configured token
        ok = await worker.get(path, headers=bearer(token))
        assert ok.status not in (401, 403)
    assert (await worker.get(path, headers={"Authorization": f"bearer {API_B}"})).status not in (401, 403)


async def test_metrics_need_a_metrics_or_an_api_token(worker: TestClient[Any, Any]) -> None:
    assert (await worker.get("/metrics")).status == 401
    assert (await worker.get("/metrics", headers=bearer("nope"))).status == 403
    assert (await worker.get("/metrics", headers=bearer(METRICS))).status == 200
    assert (await worker.get("/metrics", headers=bearer(API_A))).status == 200


async def test_without_tokens_everything_stays_open(settings: Settings) -> None:
    service, _b, _p = make(settings)
    client = await client_for(web_app(service))
    try:
        for path in ("/policy", "/metrics", "/healthz"):
            assert (await client.get(path)).status == 200, path
    finally:
        await client.close()


async def test_metrics_only_token_leaves_the_api_open(settings: Settings) -> None:
    from pydantic import SecretStr

    service, _b, _p = make(with_tokens(settings, web_metrics_tokens=SecretStr(METRICS)))
    client = await client_for(web_app(service))
    try:
        assert (await client.get("/policy")).status == 200
        assert (await client.get("/metrics")).status == 401
    finally:
        await client.close()


class StubRelay:
    ready = True

    def pending(self) -> int:
        return 0


async def test_the_relays_metrics_take_the_metrics_token_and_its_probes_stay_open(
    settings: Settings,
) -> None:
    from pydantic import SecretStr

    s = with_tokens(settings, web_api_tokens=SecretStr(API_A), web_metrics_tokens=SecretStr(METRICS))
    client = await client_for(protect(notify_web_app(StubRelay(), CollectorRegistry()), s, api=False))  # type: ignore[arg-type]
    try:
        assert (await client.get("/healthz")).status == 200 and (await client.get("/readyz")).status == 200
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers=bearer(METRICS))).status == 200
    finally:
        await client.close()


async def test_the_gateways_metrics_take_the_metrics_token_and_its_webhooks_keep_their_own_checks() -> None:
    from pydantic import SecretStr

    from tests.unit.test_gateway_app import Harness  # the gateway's own test factory

    gateway = Harness(web_metrics_tokens=SecretStr(METRICS), gateway_events_token="gw-events-token-123456")
    client = await client_for(gateway.app)
    try:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/metrics")).status == 401
        assert (await client.get("/metrics", headers=bearer(METRICS))).status == 200
        r = await client.post("/v1/events", data=b"[]", headers=bearer("gw-events-token-123456"))
        assert r.status not in (401, 403)  # the webhook's own token, not the metrics token, decides
    finally:
        await client.close()


def test_tokens_are_secrets(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ESCALATOR_WEB_API_TOKENS", f"{API_A},{API_B}")
    monkeypatch.setenv("ESCALATOR_WEB_METRICS_TOKENS", METRICS)
    s = Settings()
    assert split_tokens(s.web_api_tokens) == [API_A, API_B] and split_tokens(s.web_metrics_tokens) == [METRICS]
    text = repr(s) + str(s.model_dump()) + s.model_dump_json()
    from escalator.cli import main

    main(["config", "show"])
    text += capsys.readouterr().out
    for token in (API_A, API_B, METRICS):
        assert token not in text


def test_every_http_port_binds_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ESCALATOR_WEB_HOST", "ESCALATOR_NOTIFY_WEB_HOST", "ESCALATOR_GATEWAY_HOST"):
        monkeypatch.delenv(name, raising=False)
    s = Settings()
    assert s.web_host == s.notify_web_host == s.gateway_host == "127.0.0.1"
    assert server_ssl_context(s) is None and s.canonical_url.startswith("http://")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
async def test_tls_from_settings(settings: Settings, tmp_path: Path) -> None:
    from pydantic import SecretStr

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    s = with_tokens(settings, web_tls_certfile=cert, web_tls_keyfile=key, web_api_tokens=SecretStr(API_A))
    assert s.canonical_url.startswith("https://")
    service, _b, _p = make(s)
    runner = web.AppRunner(web_app(service))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ssl_context(s))
    await site.start()
    port = runner.addresses[0][1]
    try:
        trusted = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/policy", ssl=trusted, headers=bearer(API_A)) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):  # plain HTTP is not served
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    await r.read()
            with pytest.raises(aiohttp.ClientConnectorCertificateError):  # and the certificate is checked
                async with http.get(f"https://127.0.0.1:{port}/healthz") as r:
                    await r.read()
    finally:
        await runner.cleanup()
