"""Shared plumbing of the importers: CSV rows with line numbers, v1 event building, time-ordered output.

Importers turn a real ticket log into v1 ``ticket.*`` CloudEvents. They stream: rows are read one at a time and the
rows of one ticket (which the logs keep together) are diffed in memory, so memory is bounded by the largest ticket.
The output is in *time order* by default -- the order a live service would have received the events -- using an
external merge sort: events are buffered up to ``chunk`` at a time, sorted, spilled to temporary files when there
is more than one chunk, and merged. Ties keep the input order, so a ticket's events never swap. ``order="input"``
skips the sort and writes each ticket's events as soon as its rows are read.
"""

from __future__ import annotations

import csv
import heapq
import io
import struct
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Generic, TypeVar
from zoneinfo import ZoneInfo

import orjson

from ...core.timefmt import format_ms
from ..sources import open_binary

__all__ = [
    "BadRow",
    "EventWriter",
    "ImportStats",
    "LocalTime",
    "TicketRows",
    "read_csv",
    "ticket_event_line",
]

R = TypeVar("R")
DEFAULT_CHUNK = 100_000
_RECORD = struct.Struct(">qQI")  # time (offset to sort unsigned), sequence, payload length
_TIME_OFFSET = 1 << 62


@dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str


@dataclass(slots=True)
class ImportStats:
    rows: int = 0
    tickets: int = 0
    events: int = 0
    bad_rows: int = 0
    events_by_type: Counter[str] = field(default_factory=Counter)
    bad_by_reason: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)  # rows that produced no event, by why

    def reporter(self, on_bad: Callable[[BadRow], None] | None) -> Callable[[int, str], None]:
        """``bad(line, reason)`` for an importer: counts the row (by the reason's text before any ':') and passes
        it to ``on_bad``."""

        def bad(line: int, reason: str) -> None:
            self.bad_rows += 1
            self.bad_by_reason[reason.split(":", maxsplit=1)[0]] += 1
            if on_bad is not None:
                on_bad(BadRow(line, reason))

        return bad

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "tickets": self.tickets,
            "events": self.events,
            "bad_rows": self.bad_rows,
            "events_by_type": dict(sorted(self.events_by_type.items())),
            "bad_by_reason": dict(sorted(self.bad_by_reason.items())),
            "notes": dict(sorted(self.notes.items())),
        }


def read_csv(path: str) -> tuple[list[str], Iterator[tuple[int, list[str]]], Callable[[], None]]:
    """Open a CSV file (gzip recognised by content, ``-`` is stdin): (header, rows with the line number they start
    on, close)."""
    reader_bin, raw = open_binary(path)
    text = io.TextIOWrapper(reader_bin, encoding="utf-8", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    if header is None:
        raise ValueError(f"{path}: empty file (expected a CSV header)")
    header = [h.strip().lstrip("\ufeff") for h in header]

    def rows() -> Iterator[tuple[int, list[str]]]:
        start = reader.line_num + 1
        for row in reader:
            yield start, row
            start = reader.line_num + 1

    def close() -> None:
        if path != "-":
            text.close()
            raw.close()

    return header, rows(), close


class TicketRows(Generic[R]):
    """Reads a log whose rows are grouped by ticket: checks the header and each row's width, and collects a
    ticket's rows until the next ticket starts, then hands them to ``emit(ticket, rows)``. A row of a ticket whose
    group has already ended is reported and skipped (the logs keep a ticket's rows together; a stray row would
    otherwise be diffed against the wrong snapshot).

    ``for line, cells, key in log.rows(key_index)`` yields only rows whose key starts or continues the current
    ticket; the importer converts them and calls :meth:`add`."""

    def __init__(
        self,
        path: str,
        required: tuple[str, ...],
        kind: str,
        stats: ImportStats,
        on_bad: Callable[[BadRow], None] | None,
        emit: Callable[[str, list[R]], None],
        *,
        stray_label: str = "",
    ) -> None:
        header, self._rows, self.close = read_csv(path)
        missing = [c for c in required if c not in header]
        if missing:
            self.close()
            raise ValueError(f"{path}: not a {kind}: missing column(s) {', '.join(missing)}")
        self.col = {name: i for i, name in enumerate(header)}
        self.width = len(header)
        self.stats = stats
        self.bad = stats.reporter(on_bad)
        self._emit = emit
        self._stray_label = stray_label
        self._seen: set[str] = set()
        self._current: str | None = None
        self._group: list[R] = []

    def rows(self, key_index: int, missing_key: str, blank: tuple[str, ...] = ("",)) -> Iterator[tuple[int, list[str]]]:
        """The rows to convert (bad widths, missing keys and stray rows are reported and skipped); the last
        ticket is emitted when the rows end."""
        for line, cells in self._rows:
            self.stats.rows += 1
            if len(cells) != self.width:
                self.bad(line, f"wrong number of columns: {len(cells)} instead of {self.width}")
                continue
            key = cells[key_index].strip()
            if key in blank:
                self.bad(line, missing_key)
                continue
            if key != self._current:
                if key in self._seen:
                    self.bad(
                        line,
                        f"rows of {self._stray_label}{key} are not contiguous: a stray row after its group, skipped",
                    )
                    continue
                self._flush()
                self._seen.add(key)
                self._current, self._group = key, []
            yield line, cells
        self._flush()

    def add(self, row: R) -> None:
        self._group.append(row)

    def instant(self, line: int, parse: Callable[[str], int], text: str, column: str = "") -> int | None:
        """``parse(text)``, or ``None`` after reporting a bad timestamp (``column`` names it in the reason)."""
        try:
            return parse(text)
        except (ValueError, IndexError):
            self.bad(line, f"bad timestamp: {column + ' ' if column else ''}{text!r}")
            return None

    def _flush(self) -> None:
        if self._current is None or not self._group:
            return
        self.stats.tickets += 1
        self._emit(self._current, self._group)


class LocalTime:
    """Naive wall-clock timestamps of a log, read in one time zone (UTC by default), as epoch milliseconds."""

    def __init__(self, timezone: str = "UTC") -> None:
        self.tz = None if timezone.upper() == "UTC" else ZoneInfo(timezone)
        self._days: dict[tuple[int, int, int], int] = {}

    def ms(self, year: int, month: int, day: int, hour: int, minute: int, second: int = 0, milli: int = 0) -> int:
        """Raises ``ValueError`` for an impossible date or time."""
        if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60 and 0 <= milli < 1000):
            raise ValueError("time of day out of range")
        if self.tz is None:
            key = (year, month, day)
            base = self._days.get(key)
            if base is None:
                base = int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1000
                if len(self._days) > 50_000:
                    self._days.clear()
                self._days[key] = base
            return base + ((hour * 60 + minute) * 60 + second) * 1000 + milli
        local = datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=self.tz)
        return int(local.timestamp() * 1000)


def ticket_event_line(event_id: str, source: str, etype: str, ticket: str, time_ms: int, data: dict[str, Any]) -> bytes:
    """One v1 ticket event as a JSON line (without the newline)."""
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": etype,
            "subject": ticket,
            "time": format_ms(time_ms),
            "datacontenttype": "application/json",
            "data": data,
        }
    )


class EventWriter:
    """Collects events and writes them as JSON Lines, in time order (external merge sort) or as they come."""

    def __init__(self, out: BinaryIO, *, order: str = "time", chunk: int = DEFAULT_CHUNK) -> None:
        if order not in ("time", "input"):
            raise ValueError("order must be 'time' or 'input'")
        self.out = out
        self.order = order
        self.chunk = max(1, chunk)
        self._buffer: list[tuple[int, int, bytes]] = []
        self._spills: list[BinaryIO] = []
        self._seq = 0
        self.written = 0

    def add(self, time_ms: int, line: bytes) -> None:
        if self.order == "input":
            self.out.write(line)
            self.out.write(b"\n")
            self.written += 1
            return
        self._seq += 1
        # A compact copy: orjson's output keeps its whole working buffer (4 KiB here), which held by the hundred
        # thousand would cost ten times the text itself.
        self._buffer.append((time_ms, self._seq, bytes(memoryview(line))))
        if len(self._buffer) >= self.chunk:
            self._spill()

    def _spill(self) -> None:
        self._buffer.sort()
        f: BinaryIO = tempfile.TemporaryFile(prefix="escalator-import-", buffering=1 << 20)  # type: ignore[assignment]  # noqa: SIM115
        pack = _RECORD.pack
        for t, seq, line in self._buffer:
            f.write(pack(t + _TIME_OFFSET, seq, len(line)))
            f.write(line)
        f.seek(0)
        self._spills.append(f)
        self._buffer = []

    def close(self) -> None:
        """Write everything still buffered (merging the spilled chunks) and flush."""
        if self.order == "time":
            if not self._spills:
                self._buffer.sort()
                for _, _, line in self._buffer:
                    self.out.write(line)
                    self.out.write(b"\n")
                self.written += len(self._buffer)
                self._buffer = []
            else:
                if self._buffer:
                    self._spill()
                for _, _, line in heapq.merge(*(_read_spill(f) for f in self._spills)):
                    self.out.write(line)
                    self.out.write(b"\n")
                    self.written += 1
                for f in self._spills:
                    f.close()
                self._spills = []
        self.out.flush()


def _read_spill(f: BinaryIO) -> Iterator[tuple[int, int, bytes]]:
    size = _RECORD.size
    unpack = _RECORD.unpack
    read = f.read
    while True:
        head = read(size)
        if len(head) < size:
            return
        t, seq, n = unpack(head)
        yield t - _TIME_OFFSET, seq, read(n)
