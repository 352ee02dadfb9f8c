"""Is this request from the source it claims? One scheme per source, every comparison with ``hmac.compare_digest``.

* ``zendesk``: ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(secret, timestamp + body)) with
  ``X-Zendesk-Webhook-Signature-Timestamp`` (RFC 3339), which must be within the tolerance of now.
* ``jira``: ``X-Hub-Signature`` = ``sha256=`` + hex(HMAC-SHA256(secret, body)) (Jira's webhook secret). Jira signs
  no timestamp: a replayed request maps to the same event ids, which escalator de-duplicates.
* ``escalator`` (ServiceNow and ``/v1/events``): ``Authorization: Bearer <token>``, or ``X-Escalator-Signature`` =
  ``sha256=`` + hex(HMAC-SHA256(secret, timestamp + "." + body)) with ``X-Escalator-Timestamp`` (Unix seconds)
  within the tolerance.

A source with neither secret nor token is refused ("not configured") unless ``allow_unsigned``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import SecretStr

from ..core.timefmt import parse_rfc3339_ms
from ..settings import Settings

__all__ = [
    "SourceAuth",
    "Unauthorized",
    "escalator_signature",
    "hub_signature",
    "source_auths",
    "verify",
    "zendesk_signature",
]

ZENDESK_SIGNATURE: Final = "X-Zendesk-Webhook-Signature"
ZENDESK_TIMESTAMP: Final = "X-Zendesk-Webhook-Signature-Timestamp"
HUB_SIGNATURE: Final = "X-Hub-Signature"
ESCALATOR_SIGNATURE: Final = "X-Escalator-Signature"
ESCALATOR_TIMESTAMP: Final = "X-Escalator-Timestamp"

Scheme = Literal["zendesk", "jira", "escalator"]


class Unauthorized(Exception):
    """The request is not authentic; ``reason`` says why (it is answered to the caller, never with a secret)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class SourceAuth:
    scheme: Scheme
    secret: SecretStr | None = None
    token: SecretStr | None = None
    tolerance_ms: int = 300_000
    allow_unsigned: bool = False


def zendesk_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest()).decode()


def hub_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def escalator_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def _fresh(when_ms: int, now_ms: int, tolerance_ms: int) -> None:
    if abs(now_ms - when_ms) > tolerance_ms:
        raise Unauthorized(f"stale timestamp: more than {tolerance_ms // 1000} s from the gateway's clock")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise Unauthorized(f"missing {name} header")
    return value


def _zendesk(auth: SourceAuth, secret: bytes, headers: Mapping[str, str], body: bytes, now_ms: int) -> None:
    signature = _header(headers, ZENDESK_SIGNATURE)
    timestamp = _header(headers, ZENDESK_TIMESTAMP)
    if not _same(signature, zendesk_signature(secret, timestamp, body)):
        raise Unauthorized(f"bad signature ({ZENDESK_SIGNATURE})")
    try:
        when_ms = parse_rfc3339_ms(timestamp.strip())
    except ValueError:
        raise Unauthorized(f"unreadable {ZENDESK_TIMESTAMP}") from None
    _fresh(when_ms, now_ms, auth.tolerance_ms)


def _escalator(auth: SourceAuth, secret: bytes, headers: Mapping[str, str], body: bytes, now_ms: int) -> None:
    signature = _header(headers, ESCALATOR_SIGNATURE)
    timestamp = _header(headers, ESCALATOR_TIMESTAMP)
    if not _same(signature, escalator_signature(secret, timestamp, body)):
        raise Unauthorized(f"bad signature ({ESCALATOR_SIGNATURE})")
    if not timestamp.strip().isdigit():
        raise Unauthorized(f"unreadable {ESCALATOR_TIMESTAMP} (Unix seconds)")
    _fresh(int(timestamp) * 1000, now_ms, auth.tolerance_ms)


def verify(auth: SourceAuth, headers: Mapping[str, str], body: bytes, now_ms: int) -> None:
    """Raise :class:`Unauthorized` unless the request is authentic under ``auth`` (headers: case-insensitive)."""
    if auth.secret is None and auth.token is None:
        if auth.allow_unsigned:
            return
        raise Unauthorized("not configured: this source has no secret or token (see docs/gateway.md)")
    if auth.token is not None and headers.get("Authorization", "").startswith("Bearer "):
        if not _same(headers["Authorization"][len("Bearer ") :], auth.token.get_secret_value()):
            raise Unauthorized("bad bearer token")
        return
    if auth.secret is None:
        raise Unauthorized("missing Authorization: Bearer token")
    secret = auth.secret.get_secret_value().encode()
    if auth.scheme == "zendesk":
        _zendesk(auth, secret, headers, body, now_ms)
    elif auth.scheme == "jira":
        if not _same(_header(headers, HUB_SIGNATURE), hub_signature(secret, body)):
            raise Unauthorized(f"bad signature ({HUB_SIGNATURE})")
    else:
        _escalator(auth, secret, headers, body, now_ms)


def source_auths(settings: Settings) -> dict[str, SourceAuth]:
    """Each source's scheme and credentials from the settings (``events`` is ``POST /v1/events``)."""
    tolerance = int(settings.gateway_timestamp_tolerance_seconds * 1000)
    unsigned = settings.gateway_allow_unsigned

    def auth(scheme: Scheme, secret: SecretStr | None, token: SecretStr | None = None) -> SourceAuth:
        return SourceAuth(scheme, secret, token, tolerance_ms=tolerance, allow_unsigned=unsigned)

    return {
        "zendesk": auth("zendesk", settings.gateway_zendesk_secret),
        "jira": auth("jira", settings.gateway_jira_secret),
        "servicenow": auth("escalator", settings.gateway_servicenow_secret, settings.gateway_servicenow_token),
        "events": auth("escalator", settings.gateway_events_secret, settings.gateway_events_token),
    }
