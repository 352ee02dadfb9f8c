"""Slack incoming webhooks: Block Kit blocks with a text fallback, or text only (``ESCALATOR_NOTIFY_SLACK_FORMAT``).
A digest is one message listing its notifications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from ..routing import Destination, Notice
from . import HttpTransport, check_answer

__all__ = ["SlackChannel", "slack_payload"]


def _escape(text: str) -> str:
    """Slack's three control characters in text and mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _context(notice: Notice) -> str:
    about = f"ticket {notice.ticket_id}" if notice.ticket_id else notice.kind
    return f"{notice.kind} · {notice.severity} · {about} · {notice.fired_at}"


def slack_payload(notices: Sequence[Notice], recipient: str, fmt: str = "blocks") -> dict[str, Any]:
    """The JSON object posted to the webhook."""
    if len(notices) == 1:
        n = notices[0]
        text = f"{_escape(n.subject)}\n{_escape(n.body)}"
        if fmt == "text":
            return {"text": text}
        return {
            "text": _escape(n.subject),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(n.subject)}*\n{_escape(n.body)}"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": _escape(_context(n))}]},
            ],
        }
    title = f"{len(notices)} notifications for {_escape(recipient)}"
    lines = "\n".join(f"• [{n.severity}] {_escape(n.subject)}" for n in notices)
    if fmt == "text":
        return {"text": f"{title}\n{lines}"}
    return {
        "text": title,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{lines}"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "digest · escalator"}]},
        ],
    }


class SlackChannel:
    def __init__(self, transport: HttpTransport, timeout_s: float, fmt: str = "blocks") -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.fmt = fmt

    async def send(self, destination: Destination, notices: Sequence[Notice], now_ms: int) -> None:
        body = orjson.dumps(slack_payload(notices, destination.recipient, self.fmt))
        headers = {"Content-Type": "application/json"}
        check_answer(await self.transport.post(destination.address, body, headers, self.timeout_s))
