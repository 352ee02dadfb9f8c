"""Per-ticket SLA verdicts recorded by the source system (e.g. ServiceNow's ``made_sla``), for comparison.

A labels file is CSV (optionally gzipped) with a header naming at least ``ticket_id`` and ``made_sla``
(``true``/``false``); other columns are ignored. ``escalator import servicenow --labels FILE`` writes one.
"""

from __future__ import annotations

import csv
import io

from .sources import open_binary

__all__ = ["load_labels"]

_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def load_labels(path: str) -> dict[str, bool]:
    """``ticket_id -> made_sla``. Raises ``ValueError`` naming the line of a malformed row."""
    reader_bin, raw = open_binary(path)
    try:
        text = io.TextIOWrapper(reader_bin, encoding="utf-8", newline="")
        rows = csv.reader(text)
        header = next(rows, None)
        if header is None or "ticket_id" not in header or "made_sla" not in header:
            raise ValueError(f"{path}: the header must name the columns ticket_id and made_sla")
        ti, mi = header.index("ticket_id"), header.index("made_sla")
        out: dict[str, bool] = {}
        for row in rows:
            if not row:
                continue
            try:
                tid, value = row[ti], row[mi].strip().lower()
            except IndexError:
                raise ValueError(f"{path}:{rows.line_num}: expected {len(header)} columns") from None
            if value in _TRUE:
                out[tid] = True
            elif value in _FALSE:
                out[tid] = False
            else:
                raise ValueError(f"{path}:{rows.line_num}: made_sla must be true or false, got {row[mi]!r}")
        return out
    finally:
        reader_bin.close()
        if raw is not reader_bin:
            raw.close()
