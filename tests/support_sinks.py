"""Test support for the notification relay: record builders, fake transports (unit tests: no network), and real
loopback sinks (integration tests): an HTTP sink that records requests and can be told to fail, time out or answer
429/5xx, and an aiosmtpd SMTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any

import orjson

from escalator.notify.channels import HttpAnswer, SendError

__all__ = [
    "FakeHttp",
    "FakeSmtp",
    "HttpSink",
    "Posted",
    "SmtpSink",
    "escalation_event",
    "free_port",
    "incident_event",
    "notification_event",
    "resolution_event",
]


def notification_event(
    nid: str,
    *,
    kind: str = "sla_breach",
    severity: str = "high",
    recipients: list[tuple[str, str]] | None = None,
    fired_at: str = "2026-03-02T10:00:00Z",
    ticket: str | None = "T-1",
    escalation_id: str | None = None,
) -> dict[str, Any]:
    """A ``notification.requested`` CloudEvent as the worker emits it."""
    return {
        "specversion": "1.0",
        "id": nid,
        "source": "urn:escalator",
        "type": "notification.requested",
        "subject": ticket or "incident",
        "time": fired_at,
        "datacontenttype": "application/json",
        "dataschema": "urn:escalator:schema:notification.requested:v1",
        "data": {
            "notification_id": nid,
            "ticket_id": ticket,
            "kind": kind,
            "recipients": [{"type": t, "id": i} for t, i in (recipients or [("role", "team_lead")])],
            "severity": severity,
            "subject": f"{kind} on {ticket} <{nid}>",
            "body": f"Body of {nid} & more.",
            "escalation_id": escalation_id,
            "incident_id": None,
            "metric": "first_response",
            "cycle": 1,
            "due_at": fired_at,
            "fired_at": fired_at,
            "policy": {"id": "p1", "version": "abc123"},
        },
    }


def escalation_event(
    eid: str, *, level: int = 2, targets: list[tuple[str, str]] | None = None, fired_at: str = "2026-03-02T10:00:00Z"
) -> dict[str, Any]:
    """An ``escalation.raised`` CloudEvent as the worker emits it."""
    return {
        "specversion": "1.0",
        "id": eid,
        "source": "urn:escalator",
        "type": "escalation.raised",
        "subject": "T-1",
        "time": fired_at,
        "datacontenttype": "application/json",
        "dataschema": "urn:escalator:schema:escalation.raised:v1",
        "data": {
            "escalation_id": eid,
            "ticket_id": "T-1",
            "level": level,
            "kind": "hierarchical",
            "reason": "sla_breach",
            "metric": "first_response",
            "trigger": None,
            "cycle": 1,
            "threshold": f"esc:L{level}",
            "policy": {"id": "p1", "version": "abc123"},
            "targets": [{"type": t, "id": i} for t, i in (targets or [("role", "support_manager")])],
            "due_at": fired_at,
            "fired_at": fired_at,
            "ticket": {
                "priority": "urgent",
                "status": "open",
                "group": "tier1",
                "assignee": None,
                "requester_tier": "standard",
                "tags": [],
            },
            "incident_id": None,
        },
    }


def resolution_event(
    eid: str, *, level: int = 2, reason: str = "clock_achieved", fired_at: str = "2026-03-02T10:30:00Z"
) -> dict[str, Any]:
    """An ``escalation.resolved`` CloudEvent as the worker emits it (id ``{eid}:resolved``)."""
    return {
        "specversion": "1.0",
        "id": f"{eid}:resolved",
        "source": "urn:escalator",
        "type": "escalation.resolved",
        "subject": "T-1",
        "time": fired_at,
        "datacontenttype": "application/json",
        "dataschema": "urn:escalator:schema:escalation.resolved:v1",
        "data": {
            "escalation_id": eid,
            "ticket_id": "T-1",
            "level": level,
            "reason": reason,
            "raised_at": "2026-03-02T10:00:00Z",
            "fired_at": fired_at,
            "open_ms": 1_800_000,
            "acknowledged_by": None,
            "acknowledged_at": None,
            "by": None,
            "policy": {"id": "p1", "version": "abc123"},
        },
    }


def incident_event(
    iid: str, etype: str = "incident.detected", fired_at: str = "2026-03-02T10:00:00Z"
) -> dict[str, Any]:
    """An ``incident.detected``, ``incident.updated`` or ``incident.resolved`` CloudEvent as the worker emits it
    (ids ``iid``, ``{iid}:updated:1``, ``{iid}:resolved``; key and subject the group value)."""
    common = {"incident_id": iid, "rule": "outage", "group_by": "product", "group_value": "mail"}
    policy = {"id": None, "version": "abc123"}
    data: dict[str, Any]
    if etype == "incident.detected":
        eid = iid
        data = {
            **common,
            "count": 3,
            "window": "15m",
            "level": 2,
            "tickets": ["T-1", "T-2", "T-3"],
            "first_at": "2026-03-02T09:55:00Z",
            "fired_at": fired_at,
            "targets": [{"type": "role", "id": "support_manager"}],
            "policy": policy,
        }
    elif etype == "incident.updated":
        eid = f"{iid}:updated:1"
        data = {**common, "joined": ["T-4"], "joined_count": 1, "count": 4, "members": 4, "fired_at": fired_at}
        data["policy"] = policy
    else:
        eid = f"{iid}:resolved"
        data = {
            **common,
            "reason": "resolved",
            "by": "statuspage",
            "note": None,
            "detected_at": "2026-03-02T10:00:00Z",
            "fired_at": fired_at,
            "open_ms": 600_000,
            "count": 4,
            "tickets": ["T-1", "T-2", "T-3", "T-4"],
            "policy": policy,
        }
    return {
        "specversion": "1.0",
        "id": eid,
        "source": "urn:escalator",
        "type": etype,
        "subject": "mail",
        "time": fired_at,
        "datacontenttype": "application/json",
        "dataschema": f"urn:escalator:schema:{etype}:v1",
        "data": data,
    }


# -- fakes (unit tests) -------------------------------------------------------------------------------------------


@dataclass
class Posted:
    url: str
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class FakeHttp:
    """Records every POST; answers from ``script`` (a status, or a SendError to raise) in order, then 200."""

    script: list[int | SendError] = field(default_factory=list)
    posts: list[Posted] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpAnswer:
        self.posts.append(Posted(url, body, dict(headers)))
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, SendError):
            raise answer
        return HttpAnswer(answer)


@dataclass
class FakeSmtp:
    sent: list[EmailMessage] = field(default_factory=list)

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)


# -- real loopback servers (integration tests) ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpSink:
    """An aiohttp server on 127.0.0.1 in its own thread. ``requests`` lists (path, headers, body) as received;
    ``behave[path]`` is a list of answers consumed in order (a status code, or ``"timeout"``: no answer for
    ``hang_s``), then 200 (202 for ``/pagerduty``). ``secret``: webhook signatures are verified on ``/webhook*``
    paths and ``bad_signatures`` counts the ones that did not verify."""

    def __init__(self, secret: str | None = None, hang_s: float = 5.0) -> None:
        self.port = free_port()
        self.secret = secret
        self.hang_s = hang_s
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.behave: dict[str, list[int | str]] = {}
        self.bad_signatures = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def received(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for p, h, b in list(self.requests) if p == path]

    def _verify(self, headers: Mapping[str, str], body: bytes) -> bool:
        assert self.secret is not None
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
        return any(hmac.compare_digest(expected, o) for o in offered)

    def _serve(self) -> None:
        from aiohttp import web

        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            path = request.path
            headers = {k.lower(): v for k, v in request.headers.items()}
            if self.secret is not None and path.startswith("/webhook") and not self._verify(headers, body):
                self.bad_signatures += 1
                return web.Response(status=401)
            script = self.behave.get(path)
            answer = script.pop(0) if script else (202 if path == "/pagerduty" else 200)
            if answer == "timeout":
                await asyncio.sleep(self.hang_s)
                answer = 200
            self.requests.append((path, headers, body))
            return web.Response(status=int(answer), headers={"Retry-After": "0"} if answer == 429 else {})

        async def start() -> None:
            app = web.Application()
            app.router.add_post("/{tail:.*}", handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    def __enter__(self) -> HttpSink:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class SmtpSink:
    """aiosmtpd on 127.0.0.1 (no TLS, no AUTH); ``messages`` are the received mails as (envelope to, raw bytes)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.port = free_port()
        self.messages: list[tuple[list[str], bytes]] = []

        async def on_data(*args: Any) -> str:  # aiosmtpd calls handle_DATA(server, session, envelope)
            envelope = args[-1]
            self.messages.append((list(envelope.rcpt_tos), bytes(envelope.content)))
            return "250 OK"

        self._controller = Controller(SimpleNamespace(handle_DATA=on_data), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()
