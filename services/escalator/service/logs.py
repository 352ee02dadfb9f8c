"""Logging: text or JSON lines, with ticket and event ids when a record carries them. Never logs credentials."""

from __future__ import annotations

import logging
from typing import Any

import orjson

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "configure_logging",
]

_EXTRA_KEYS = ("ticket_id", "event_id", "output_id", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = [f"{k}={getattr(record, k)}" for k in _EXTRA_KEYS if getattr(record, k, None) is not None]
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
