"""Authenticity of the gateway's sources: good, bad, stale and missing signatures for every scheme (a fixed clock)."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from escalator.core.timefmt import format_ms
from escalator.gateway.signatures import (
    SourceAuth,
    Unauthorized,
    escalator_signature,
    hub_signature,
    source_auths,
    verify,
    zendesk_signature,
)
from escalator.settings import Settings
from tests.support import ms

NOW = ms("2026-11-20T10:00:00Z")
SECRET = b"dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
BODY = b'{"say": "hello"}'


def auth(scheme: str, *, token: str | None = None, secret: bytes | None = SECRET) -> SourceAuth:
    return SourceAuth(
        scheme,  # type: ignore[arg-type]
        SecretStr(secret.decode()) if secret else None,
        SecretStr(token) if token else None,
        tolerance_ms=300_000,
    )


def reason(a: SourceAuth, headers: dict[str, str], body: bytes = BODY, now: int = NOW) -> str | None:
    try:
        verify(a, headers, body, now)
    except Unauthorized as exc:
        return exc.reason
    return None


def zendesk_headers(timestamp: str, body: bytes = BODY, secret: bytes = SECRET) -> dict[str, str]:
    return {
        "X-Zendesk-Webhook-Signature": zendesk_signature(secret, timestamp, body),
        "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
    }


def test_zendesk_signature_signs_timestamp_then_body() -> None:
    # the inputs of the example in Zendesk's "Verifying webhook authenticity"; the order is timestamp + body as its
    # text says (the event-connectors page's example value signs body + timestamp: docs/gateway.md)
    secret = b"HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
    signature = zendesk_signature(secret, "2021-07-25T10:00:00Z", b'{"say": "hello"}')
    assert signature == "Rry/4TtIdFyawtXXp8QdI6tlAUUQ/5kL1OTp5qo/ZIk="


def test_zendesk_good_bad_stale_missing() -> None:
    a = auth("zendesk")
    now_text = format_ms(NOW - 60_000)
    assert reason(a, zendesk_headers(now_text)) is None
    assert reason(a, zendesk_headers(now_text), body=b'{"say": "bye"}') == "bad signature (X-Zendesk-Webhook-Signature)"
    assert reason(a, zendesk_headers(now_text, secret=b"other")) == "bad signature (X-Zendesk-Webhook-Signature)"
    stale = reason(a, zendesk_headers(format_ms(NOW - 301_000)))
    assert stale is not None and stale.startswith("stale timestamp")
    future = reason(a, zendesk_headers(format_ms(NOW + 301_000)))
    assert future is not None and future.startswith("stale timestamp")
    headers = zendesk_headers(now_text)
    del headers["X-Zendesk-Webhook-Signature-Timestamp"]
    assert reason(a, headers) == "missing X-Zendesk-Webhook-Signature-Timestamp header"
    assert reason(a, {}) == "missing X-Zendesk-Webhook-Signature header"
    assert reason(a, zendesk_headers("yesterday")) == "unreadable X-Zendesk-Webhook-Signature-Timestamp"


def test_jira_good_bad_missing() -> None:
    a = auth("jira")
    assert reason(a, {"X-Hub-Signature": hub_signature(SECRET, BODY)}) is None
    assert hub_signature(SECRET, BODY).startswith("sha256=")
    assert reason(a, {"X-Hub-Signature": hub_signature(b"other", BODY)}) == "bad signature (X-Hub-Signature)"
    assert reason(a, {"X-Hub-Signature": "sha256=00"}) == "bad signature (X-Hub-Signature)"
    assert reason(a, {}) == "missing X-Hub-Signature header"


def test_escalator_hmac_good_bad_stale_missing() -> None:
    a = auth("escalator")
    ts = str(NOW // 1000 - 10)
    good = {"X-Escalator-Timestamp": ts, "X-Escalator-Signature": escalator_signature(SECRET, ts, BODY)}
    assert reason(a, good) is None
    assert reason(a, good, body=b"{}") == "bad signature (X-Escalator-Signature)"
    old = str(NOW // 1000 - 400)
    stale = {"X-Escalator-Timestamp": old, "X-Escalator-Signature": escalator_signature(SECRET, old, BODY)}
    assert (reason(a, stale) or "").startswith("stale timestamp")
    assert reason(a, {"X-Escalator-Signature": good["X-Escalator-Signature"]}) == "missing X-Escalator-Timestamp header"


def test_bearer_token_good_bad_and_the_hmac_still_works_beside_it() -> None:
    a = auth("escalator", token="s3cr3t-token")
    assert reason(a, {"Authorization": "Bearer s3cr3t-token"}) is None
    assert reason(a, {"Authorization": "Bearer wrong"}) == "bad bearer token"
    only_token = auth("escalator", token="s3cr3t-token", secret=None)
    assert reason(only_token, {}) == "missing Authorization: Bearer token"


def test_a_source_without_credentials_is_refused_unless_unsigned_is_allowed() -> None:
    refused = reason(SourceAuth("zendesk"), {})
    assert refused is not None and refused.startswith("not configured")
    assert reason(SourceAuth("zendesk", allow_unsigned=True), {}) is None


def test_source_auths_from_settings() -> None:
    settings = Settings(
        gateway_zendesk_secret="zendesk-signing-secret",  # type: ignore[arg-type]
        gateway_events_token="t",  # type: ignore[arg-type]
        gateway_timestamp_tolerance_seconds=60,
    )
    auths = source_auths(settings)
    assert sorted(auths) == ["events", "jira", "servicenow", "zendesk"]
    assert auths["zendesk"].scheme == "zendesk" and auths["zendesk"].tolerance_ms == 60_000
    assert auths["jira"].secret is None and auths["events"].token is not None
    assert "zendesk-signing-secret" not in repr(auths["zendesk"])  # secrets never print


@pytest.mark.parametrize("scheme", ["zendesk", "jira", "escalator"])
def test_every_scheme_refuses_an_empty_request(scheme: str) -> None:
    assert reason(auth(scheme), {}) is not None
