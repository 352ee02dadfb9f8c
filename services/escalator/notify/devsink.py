"""``escalator notify --dev-sink``: what ``make run`` uses so a newcomer sees notifications *delivered*. A loopback
HTTP sink (and an SMTP sink, with the dev extra's aiosmtpd) receives every delivery and prints one line for it;
the directory's addresses are pointed at it. Never for production: nothing leaves the machine."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from email import message_from_bytes
from email.policy import default as default_policy
from types import SimpleNamespace
from typing import Any

import orjson
from aiohttp import web

from .routing import Contact, Directory

__all__ = ["local_directory", "start_dev_sink"]


def local_directory(directory: Directory, http_port: int) -> Directory:
    """``directory`` with every Slack and webhook address pointed at the sink (by channel and entry)."""
    sections: dict[str, Any] = {}
    for section in ("users", "roles", "teams", "groups", "requesters"):
        entries: dict[str, Contact] = getattr(directory.spec, section)
        sections[section] = {
            name: c.model_copy(
                update={
                    "slack": c.slack and f"http://127.0.0.1:{http_port}/slack",
                    "webhook": c.webhook and f"http://127.0.0.1:{http_port}/webhook",
                }
            )
            for name, c in entries.items()
        }
    return Directory(directory.spec.model_copy(update=sections))


def _say(channel: str, what: str) -> None:
    print(f"  \u2192 delivered  {channel:<9} {what}", flush=True)


def _summary(channel: str, body: dict[str, Any]) -> str:
    if channel == "slack":
        return str(body.get("text", "")).splitlines()[0] if body.get("text") else ""
    if channel == "pagerduty":
        payload = body.get("payload") or {}
        if body.get("event_action") != "trigger":  # resolve: only the alert it closes
            return f"{body.get('event_action')} {body.get('dedup_key')}"
        return f"{body.get('event_action')} [{payload.get('severity')}] {payload.get('summary')}"
    data = body.get("data") or {}
    if body.get("type") == "notification.digest":
        return f"{body.get('recipient')}: digest of {len(body.get('notifications') or [])}"
    return f"{body.get('recipient')}: {data.get('subject', '')}"


async def start_dev_sink(http_port: int, smtp_port: int) -> Callable[[], Awaitable[None]]:
    """Start the sinks on 127.0.0.1; returns their stop coroutine function."""

    async def receive(request: web.Request) -> web.StreamResponse:
        channel = request.match_info["channel"]
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            body = {}
        _say(channel, _summary(channel, body if isinstance(body, dict) else {}))
        return web.json_response({"status": "success"}, status=202 if channel == "pagerduty" else 200)

    app = web.Application()
    app.router.add_post("/{channel}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    controller: Any = None
    try:
        from aiosmtpd.controller import Controller

        async def on_data(*args: Any) -> str:  # aiosmtpd calls handle_DATA(server, session, envelope)
            envelope = args[-1]
            mail = message_from_bytes(envelope.content, policy=default_policy)
            _say("email", f"{', '.join(envelope.rcpt_tos)}: {mail['Subject']}")
            return "250 OK"

        controller = Controller(SimpleNamespace(handle_DATA=on_data), hostname="127.0.0.1", port=smtp_port)
        controller.start()
    except ImportError:
        print("notify: aiosmtpd is not installed (dev extra): e-mails are not received", file=sys.stderr)

    async def stop() -> None:
        if controller is not None:
            controller.stop()
        await runner.cleanup()

    return stop
