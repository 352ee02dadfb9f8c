"""Logging: text or JSON lines, with ticket and event ids when a record carries them. Never logs credentials.

Every part of a line is bounded (:data:`MAX_MESSAGE_CHARS`, :data:`MAX_FIELD_CHARS`, :data:`MAX_EXC_CHARS`): a
message or an id may quote input (a rejected record's type, key or id), and a hostile record must not turn the log
into a copy of its payload. Whatever is cut is marked with how much was left out."""

from __future__ import annotations

import logging
from typing import Any

import orjson

__all__ = [
    "MAX_EXC_CHARS",
    "MAX_FIELD_CHARS",
    "MAX_MESSAGE_CHARS",
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
    "quote_input",
]

_EXTRA_KEYS = ("ticket_id", "event_id", "output_id", "reason")
#: Longest message, id field and traceback written (characters); a line is at most about their sum.
MAX_MESSAGE_CHARS = 2_000
MAX_FIELD_CHARS = 200
MAX_EXC_CHARS = 8_000


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...[{len(text) - limit} more chars]"


_CONTROL = {c: f"\\x{c:02x}" for c in [*range(32), 127]} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def quote_input(text: str | None, limit: int = 100) -> str | None:
    """Input-derived text (a record's id, key or the decoder's detail) as a log line may carry it: control characters
    escaped (no forged lines, no NULs), at most ``limit`` characters -- enough to recognise, never a payload."""
    if text is None:
        return None
    return _cut(text, limit).translate(_CONTROL)


def _field(record: logging.LogRecord, key: str) -> str | None:
    value = getattr(record, key, None)
    return None if value is None else _cut(str(value), MAX_FIELD_CHARS).translate(_CONTROL)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _cut(record.getMessage(), MAX_MESSAGE_CHARS),
        }
        for key in _EXTRA_KEYS:
            value = _field(record, key)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = _cut(self.formatException(record.exc_info), MAX_EXC_CHARS)
        return orjson.dumps(doc).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _cut(record.message, MAX_MESSAGE_CHARS)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _cut(super().formatException(ei), MAX_EXC_CHARS)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{k}={v}" for k in _EXTRA_KEYS if (v := _field(record, k)) is not None]
        return f"{text} [{' '.join(ids)}]" if ids else text


def configure_logging(fmt: str, level: str, debug_loggers: str = "") -> logging.Handler:
    import time

    handler = logging.StreamHandler()
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for name in (n.strip() for n in debug_loggers.split(",")):
        if name:
            logging.getLogger(name).setLevel(logging.DEBUG)
    return handler
