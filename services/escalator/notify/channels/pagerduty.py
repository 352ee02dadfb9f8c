"""PagerDuty Events API v2: one ``trigger`` per escalation or incident, ``dedup_key`` = its id (a redelivered or
retried trigger updates the same alert), and one ``resolve`` with the same ``dedup_key`` and routing key when
escalator reports it over: ``escalation.resolved`` (published for policies with ``resolve_events: true``) or
``incident.resolved`` (incident rules with a lifecycle). The relay sends a resolve only to the services the
trigger was delivered to, and only after that trigger settled (relay.py; the routes are kept in the delivery log).

No ``acknowledge``: escalator publishes no "escalation acknowledged" *output* event -- an acknowledgement is an
input (``ticket.escalation_acknowledged`` on the ticket-events topic), carried later as ``acknowledged_by`` /
``acknowledged_at`` of the resolution -- and the relay does not read inputs (see docs/notify.md)."""

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
    """The event posted to the Events API: a ``trigger`` with the alert's details, or a ``resolve`` (routing key,
    action and ``dedup_key`` are all the API reads of one)."""
    if notice.action == "resolve":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": notice.alert_key}
    ticket = notice.data.get("ticket") or {}
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": notice.alert_key,
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
