"""Structured logs: JSON lines (or text) carrying ticket and event ids; settings never print secrets."""

from __future__ import annotations

import logging

import orjson
import pytest

from escalator.service.logs import JsonFormatter, TextFormatter, configure_logging
from escalator.settings import Settings


def record(**extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("escalator.worker", logging.WARNING, __file__, 1, "rejected %s", ("x",), None)
    for k, v in extra.items():
        setattr(rec, k, v)
    return rec


def test_json_lines_carry_ids() -> None:
    line = JsonFormatter().format(record(ticket_id="T-1", event_id="e-9", reason="schema_violation"))
    doc = orjson.loads(line)
    assert doc["message"] == "rejected x" and doc["level"] == "warning" and doc["logger"] == "escalator.worker"
    assert (doc["ticket_id"], doc["event_id"], doc["reason"]) == ("T-1", "e-9", "schema_violation")
    assert doc["ts"].endswith("Z")


def test_text_lines_append_ids() -> None:
    line = TextFormatter().format(record(ticket_id="T-1"))
    assert line.endswith("rejected x [ticket_id=T-1]")


def test_configure_logging_installs_one_handler() -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        handler = configure_logging("json", "DEBUG")
        assert root.handlers == [handler] and isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_secrets_never_appear_in_settings_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESCALATOR_SASL_PASSWORD", "s3cr3t-pw")
    monkeypatch.setenv("ESCALATOR_SSL_KEY_PASSWORD", "k3y-pw")
    s = Settings()
    text = repr(s) + str(s.model_dump()) + s.model_dump_json()
    assert "s3cr3t-pw" not in text and "k3y-pw" not in text
    assert s.sasl_password is not None and s.sasl_password.get_secret_value() == "s3cr3t-pw"


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()])
def test_lines_are_bounded_whatever_a_record_quotes(formatter: logging.Formatter) -> None:
    """A rejected record's type, key or id may be a megabyte long: the line stays short and says what it left out."""
    from escalator.service.logs import MAX_EXC_CHARS, MAX_FIELD_CHARS, MAX_MESSAGE_CHARS

    huge = "A" * 1_000_000
    rec = logging.LogRecord("escalator.worker", logging.WARNING, __file__, 1, "rejected %s", (huge,), None)
    rec.event_id = huge
    rec.ticket_id = huge
    try:
        raise ValueError(huge)
    except ValueError:
        import sys

        rec.exc_info = sys.exc_info()
    line = formatter.format(rec)
    assert len(line) < MAX_MESSAGE_CHARS + 4 * MAX_FIELD_CHARS + MAX_EXC_CHARS + 500
    assert "more chars]" in line
    if isinstance(formatter, JsonFormatter):
        doc = orjson.loads(line)
        assert len(doc["event_id"]) < MAX_FIELD_CHARS + 40 and doc["message"].startswith("rejected AAAA")


def test_input_quoted_in_a_line_cannot_forge_lines_or_carry_nuls() -> None:
    from escalator.service.logs import quote_input

    assert quote_input("x\nFORGED 2026-01-01 ERROR\r\x00\u2028") == "x\\x0aFORGED 2026-01-01 ERROR\\x0d\\x00\\u2028"
    assert quote_input("A" * 500, 100) == "A" * 100 + "...[400 more chars]"
    assert quote_input(None) is None
    line = TextFormatter().format(record(event_id="e\nFORGED"))
    assert "\n" not in line and "e\\x0aFORGED" in line
