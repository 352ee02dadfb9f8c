"""Generic webhooks, signed per the Standard Webhooks convention (https://www.standardwebhooks.com/):
``webhook-id`` (the notification id, or the digest id: equal on every retry), ``webhook-timestamp`` (epoch seconds
of the attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed with the secret's
base64-decoded bytes (secrets look like ``whsec_<base64>``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

import orjson

from ..routing import Destination, Notice
from . import HttpTransport, check_answer, message_id

__all__ = ["WebhookChannel", "sign", "webhook_payload"]

_TYPES = {"notification": "notification.requested", "escalation": "escalation.raised"}


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value for one message."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def webhook_payload(notices: Sequence[Notice], recipient: str) -> dict[str, Any]:
    """The JSON body: one notification's data, or a digest listing several."""
    if len(notices) == 1:
        n = notices[0]
        return {"type": _TYPES[n.source], "id": n.id, "recipient": recipient, "data": n.data}
    return {
        "type": "notification.digest",
        "id": message_id(notices),
        "recipient": recipient,
        "notifications": [n.data for n in notices],
    }


class WebhookChannel:
    def __init__(self, transport: HttpTransport, timeout_s: float, secret: str | None) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.secret = secret

    async def send(self, destination: Destination, notices: Sequence[Notice], now_ms: int) -> None:
        body = orjson.dumps(webhook_payload(notices, destination.recipient), option=orjson.OPT_SORT_KEYS)
        msg_id, timestamp = message_id(notices), now_ms // 1000
        headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
        if self.secret:
            headers["webhook-signature"] = sign(self.secret, msg_id, timestamp, body)
        check_answer(await self.transport.post(destination.address, body, headers, self.timeout_s))
