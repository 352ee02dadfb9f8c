"""E-mail over SMTP with aiosmtplib (STARTTLS or implicit TLS, AUTH from settings; the password is a SecretStr).
Subject and body are built from the notification; a digest lists its notifications in one mail. The Message-ID is
derived from the notification (or digest) id, so a retried mail can be recognised by the receiving side."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from ..routing import Destination, Notice
from . import SendError, message_id

__all__ = ["AiosmtplibTransport", "EmailChannel", "SmtpOptions", "SmtpTransport", "email_message"]


def _details(n: Notice) -> str:
    rows = [("Kind", n.kind), ("Severity", n.severity), ("Ticket", n.ticket_id), ("Fired at", n.fired_at)]
    rows.append(("Notification", n.id))
    return "\n".join(f"{k}: {v}" for k, v in rows if v)


def email_message(notices: Sequence[Notice], to: str, sender: str, recipient: str, now_ms: int) -> EmailMessage:
    """The mail for ``notices`` (one, or a digest)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if len(notices) == 1:
        n = notices[0]
        msg["Subject"] = f"[escalator] {n.subject}"
        text = f"{n.body}\n\n{_details(n)}\n"
    else:
        msg["Subject"] = f"[escalator] {len(notices)} notifications for {recipient}"
        parts = [f"- [{n.severity}] {n.subject}\n  {n.body}\n  {n.fired_at}, {n.id}" for n in notices]
        text = f"{len(notices)} notifications for {recipient}:\n\n" + "\n\n".join(parts) + "\n"
    digest = hashlib.sha256(message_id(notices).encode()).hexdigest()[:32]
    msg["Message-ID"] = f"<{digest}@escalator>"
    msg["Date"] = format_datetime(datetime.fromtimestamp(now_ms / 1000, UTC))
    msg.set_content(text)
    return msg


class SmtpTransport(Protocol):
    async def send(self, message: EmailMessage) -> None:
        """Hand ``message`` to the SMTP server; raises :class:`SendError`."""
        ...


@dataclass(frozen=True)
class SmtpOptions:
    host: str
    port: int
    starttls: bool
    tls: bool
    username: str | None
    password: str | None
    timeout_s: float


class AiosmtplibTransport:
    """One connection per mail (notifications are few; no connection to keep alive or to lose)."""

    def __init__(self, options: SmtpOptions) -> None:
        self.options = options

    async def send(self, message: EmailMessage) -> None:
        import aiosmtplib

        o = self.options
        try:
            await aiosmtplib.send(
                message,
                hostname=o.host,
                port=o.port,
                username=o.username,
                password=o.password,
                use_tls=o.tls,
                start_tls=o.starttls and not o.tls,
                timeout=o.timeout_s,
            )
        except aiosmtplib.SMTPTimeoutError:
            raise SendError("timeout", "the SMTP server did not answer") from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            raise SendError("smtp_5xx", f"recipients refused {codes}", retryable=min(codes) < 500) from None
        except aiosmtplib.SMTPResponseException as exc:
            permanent = exc.code >= 500
            raise SendError(
                "smtp_5xx" if permanent else "smtp_4xx", f"code {exc.code}", retryable=not permanent
            ) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendError("connection", type(exc).__name__) from None


class EmailChannel:
    def __init__(self, transport: SmtpTransport, sender: str) -> None:
        self.transport = transport
        self.sender = sender

    async def send(self, destination: Destination, notices: Sequence[Notice], now_ms: int) -> None:
        await self.transport.send(
            email_message(notices, destination.address, self.sender, destination.recipient, now_ms)
        )
