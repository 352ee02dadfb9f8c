"""Who may use the HTTP ports: optional bearer tokens and optional TLS, shared by the worker, the relay and the
gateway.

* ``/healthz`` and ``/readyz`` are always open (probes carry no credentials).
* ``/metrics`` is open unless ``ESCALATOR_WEB_METRICS_TOKENS`` is set; then it needs one of those tokens or an API
  token.
* Everything else on the worker (``/tickets/{id}``, ``/policy``, unknown paths) is open unless
  ``ESCALATOR_WEB_API_TOKENS`` is set. The gateway's webhook routes keep their own signatures and tokens.

A request without ``Authorization: Bearer <token>`` gets 401 (with ``WWW-Authenticate``), one with a token not
accepted for that path 403; both bodies are the same few words whatever failed. Tokens are compared as SHA-256
digests with :func:`hmac.compare_digest` against every configured token (no early exit, no length leak).
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable, Sequence

import orjson
from aiohttp import web
from pydantic import SecretStr

from ..settings import Settings

__all__ = ["OPEN_PATHS", "bearer_middleware", "protect", "server_ssl_context", "split_tokens"]

OPEN_PATHS = frozenset({"/healthz", "/readyz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def split_tokens(secret: SecretStr | None) -> list[str]:
    """The comma-separated tokens of a setting (blank entries ignored)."""
    if secret is None:
        return []
    return [t.strip() for t in secret.get_secret_value().split(",") if t.strip()]


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def _accepted(presented: str, digests: Sequence[bytes]) -> bool:
    got = _digest(presented)
    ok = False
    for d in digests:  # every token compared, whichever matches
        ok |= hmac.compare_digest(got, d)
    return ok


def _refusal(status: int) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="escalator"'} if status == 401 else None
    word = "unauthorized" if status == 401 else "forbidden"
    return web.Response(
        body=orjson.dumps({"error": word}), status=status, content_type="application/json", headers=headers
    )


def bearer_middleware(api_tokens: Sequence[str], metrics_tokens: Sequence[str], *, api: bool) -> Callable[..., object]:
    """The middleware: ``api`` -- whether paths other than the open ones and /metrics need an API token."""
    api_digests = [_digest(t) for t in api_tokens]
    metrics_digests = [_digest(t) for t in metrics_tokens] + api_digests

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path in OPEN_PATHS:
            return await handler(request)
        if path == "/metrics":
            digests = metrics_digests if metrics_tokens else []
        else:
            digests = api_digests if api else []
        if not digests:
            return await handler(request)
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return _refusal(401)
        if not _accepted(presented.strip(), digests):
            return _refusal(403)
        return await handler(request)

    return check


def protect(app: web.Application, settings: Settings, *, api: bool) -> web.Application:
    """Install the token check on ``app`` (before it starts) when any token is configured."""
    api_tokens = split_tokens(settings.web_api_tokens)
    metrics_tokens = split_tokens(settings.web_metrics_tokens)
    if api_tokens or metrics_tokens:
        app.middlewares.append(bearer_middleware(api_tokens, metrics_tokens, api=api))  # type: ignore[arg-type]
    return app


def server_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for an HTTP port when ``web_tls_certfile`` is set (TLS 1.2 or later)."""
    if settings.web_tls_certfile is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(
        str(settings.web_tls_certfile), str(settings.web_tls_keyfile) if settings.web_tls_keyfile else None
    )
    return ctx
