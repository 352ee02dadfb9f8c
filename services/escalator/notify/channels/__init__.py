"""The delivery channels and the seams they send through: an HTTP transport (aiohttp for real, a fake in unit
tests) and an SMTP transport (aiosmtplib). Every channel builds its payload with a pure function (tested byte for
byte) and raises :class:`SendError` with a bounded ``reason`` when an attempt fails."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..routing import Destination, Notice

__all__ = [
    "AiohttpTransport",
    "ChannelSender",
    "HttpAnswer",
    "HttpTransport",
    "SendError",
    "check_answer",
    "message_id",
]


class SendError(Exception):
    """One failed attempt. ``reason`` is a bounded label (``timeout``, ``connection``, ``http_429``, ``http_4xx``,
    ``http_5xx``, ``smtp_4xx``, ``smtp_5xx``, ``circuit_open``); ``retryable`` false sends it to the dead-letter
    topic at once; ``retry_after_s`` is the receiver's own Retry-After."""

    def __init__(self, reason: str, detail: str, *, retryable: bool = True, retry_after_s: float | None = None):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    retry_after: str | None = None


class HttpTransport(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpAnswer:
        """POST ``body``; the answer, or :class:`SendError` (``timeout`` / ``connection``)."""
        ...


class ChannelSender(Protocol):
    async def send(self, destination: Destination, notices: Sequence[Notice], now_ms: int) -> None:
        """Deliver ``notices`` (one, or several as a digest) to ``destination``; raises :class:`SendError`."""
        ...


def message_id(notices: Sequence[Notice]) -> str:
    """The id of what one send carries: the notification's own id, or a digest id derived from the ids it lists
    (the same on every retry, so a receiver can de-duplicate)."""
    if len(notices) == 1:
        return notices[0].id
    return "digest-" + hashlib.sha256("\0".join(n.id for n in notices).encode()).hexdigest()[:24]


def check_answer(answer: HttpAnswer) -> None:
    """2xx passes; 429, 408 and 5xx are retried (Retry-After honoured); other 4xx are permanent."""
    status = answer.status
    if 200 <= status < 300:
        return
    retry_after = None
    if answer.retry_after is not None:
        try:
            retry_after = max(0.0, float(answer.retry_after))
        except ValueError:
            retry_after = None
    if status == 429:
        raise SendError("http_429", "too many requests", retry_after_s=retry_after)
    if status >= 500 or status == 408:
        raise SendError("http_5xx" if status >= 500 else "http_4xx", f"status {status}", retry_after_s=retry_after)
    raise SendError("http_4xx", f"status {status}", retryable=False)


class AiohttpTransport:
    """The real HTTP transport (one aiohttp session, opened on first use)."""

    def __init__(self) -> None:
        from aiohttp import ClientSession

        self._session: ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> HttpAnswer:
        import asyncio

        from aiohttp import ClientError, ClientSession, ClientTimeout

        if self._session is None:
            self._session = ClientSession()
        try:
            async with self._session.post(
                url, data=body, headers=dict(headers), timeout=ClientTimeout(total=timeout_s), allow_redirects=False
            ) as resp:
                await resp.read()
                return HttpAnswer(resp.status, resp.headers.get("Retry-After"))
        except TimeoutError:
            raise SendError("timeout", f"no answer within {timeout_s:g}s") from None
        except (ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise SendError("connection", type(exc).__name__) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
