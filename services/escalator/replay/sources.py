"""Reading recorded events: JSON Lines from a file, a gzip file or stdin, with line numbers and read progress.

:class:`LineSource` yields ``(line_number, raw_line)`` pairs (1-based, the raw bytes including the newline, which
JSON decoders accept as whitespace). Gzip is recognised by its magic bytes, not the file name, so ``-`` may carry
a compressed stream too. :meth:`LineSource.progress` reports how far through the *file* (compressed bytes for
gzip) the reader is, for the progress bar's ETA; it is ``None`` for pipes and stdin.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
from collections.abc import Iterator
from typing import BinaryIO, TextIO

__all__ = ["BadLineReport", "LineSource", "open_binary", "open_output"]

_GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: str) -> tuple[BinaryIO, BinaryIO]:
    """Open ``path`` (``-`` is stdin) for reading, transparently gunzipping. Returns (reader, underlying file)."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
    else:
        raw = open(path, "rb")  # noqa: SIM115 -- closed by the caller via LineSource.close()
    buffered: BinaryIO = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
    head = buffered.peek(2)[:2]  # type: ignore[attr-defined]
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb"), raw  # type: ignore[return-value]
    return buffered, raw


def open_output(path: str) -> BinaryIO:
    """A buffered file to write (gzip-compressed when the name ends in ``.gz``); the caller closes it."""
    if path.endswith(".gz"):
        return io.BufferedWriter(gzip.GzipFile(path, "wb", compresslevel=6), 1 << 20)
    return open(path, "wb", buffering=1 << 20)


class LineSource:
    """Iterate the lines of a JSON Lines file (``.jsonl``, ``.jsonl.gz`` or ``-`` for stdin) with their numbers."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._reader, self._raw = open_binary(path)
        self._size: int | None = None
        if path != "-":
            try:
                st = os.fstat(self._raw.fileno())
                self._size = st.st_size if st.st_size > 0 else None
            except (OSError, ValueError):
                self._size = None

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        yield from enumerate(self._reader, 1)

    def progress(self) -> tuple[int, int] | None:
        """(bytes consumed, total bytes) of the underlying file, or ``None`` when unknown (stdin, pipes)."""
        if self._size is None:
            return None
        try:
            return self._raw.tell(), self._size
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if self.path != "-":
            self._reader.close()
            self._raw.close()

    def __enter__(self) -> LineSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BadLineReport:
    """Prints the first ``limit`` bad lines of an input as ``name:line: text`` and counts the rest, so a long run
    with many bad lines stays readable while nothing goes unreported."""

    def __init__(self, name: str, limit: int, stream: TextIO) -> None:
        self.name, self.limit, self.stream = name, limit, stream
        self.count = 0

    def __call__(self, line: int, text: str) -> None:
        if self.count < self.limit:
            print(f"{self.name}:{line}: {text}", file=self.stream)
        self.count += 1

    def finish(self, what: str) -> None:
        """One closing line for the bad lines that were counted but not printed (``what``: e.g. "bad rows")."""
        if self.count > self.limit:
            print(f"{self.name}: ... and {self.count - self.limit:,} more {what}", file=self.stream)
