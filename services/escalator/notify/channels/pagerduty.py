"""PagerDuty Events API v2: one ``trigger`` per escalation or incident, ``dedup_key`` = its id (a redelivered or
retried trigger updates the same alert). escalator publishes no "acknowledged" or "resolved" output event, so
the relay never sends ``acknowledge`` / ``resolve`` (see docs/notify.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import orjson

from ..routing import Destination, Notice
from . import HttpTransport, check_answer

__all__ = ["PagerDutyChannel", "pagerduty_payload"]

#: escalator's severities -> PagerDuty's (critical, error, warning, info).
PD_SEVERITY: Final[dict[str, str]] = {"info": "info", "warning": "warning", "high": "error", "critical": "critical"}


def pagerduty_payload(notice: Notice, routing_key: str) -> dict[str, Any]:
    """The event posted to the Events API."""
    ticket = notice.data.get("ticket") or {}
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": notice.escalation_id or notice.id,
        "client": "escalator",
        "payload": {
            "summary": notice.subject[:1024],
            "source": "escalator",
            "severity": PD_SEVERITY[notice.severity],
            "timestamp": notice.fired_at,
            "component": notice.ticket_id or "incident",
            "group": ticket.get("group") or "",
            "class": notice.kind,
            "custom_details": notice.data,
        },
    }


class PagerDutyChannel:
    def __init__(self, transport: HttpTransport, timeout_s: float, url: str) -> None:
        self.transport = transport
        self.timeout_s = timeout_s
        self.url = url

    async def send(self, destination: Destination, notices: Sequence[Notice], now_ms: int) -> None:
        for notice in notices:  # never a digest: each escalation is its own alert
            body = orjson.dumps(pagerduty_payload(notice, destination.address))
            check_answer(
                await self.transport.post(self.url, body, {"Content-Type": "application/json"}, self.timeout_s)
            )
