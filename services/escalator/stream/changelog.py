"""Changelogs with ownership markers: recovery that never applies a zombie's writes, and the contiguity check.

Every state change of a partition store is written to the store's changelog partition before the store itself
(``runtime``). A worker that comes back from a pause after its partitions moved (a *zombie*) can still have
records in flight that land after the new owner's writes; a naive recovery would apply them over newer state. So:

* **Ownership markers.** Before it processes a partition, its owner reads the changelog to the end and appends a
  *marker*: ``writer`` (a unique id of this ownership period), ``generation`` (the consumer-group generation of the
  assignment) and ``seen`` (the offset of the accepted marker it read last, -1 if none). A marker is *accepted* only
  if ``seen`` names the marker accepted before it -- its writer had read everything up to the claim it takes over
  from. A zombie's late marker names an older claim and is rejected: a compare-and-set expressed in log order, which
  needs no clock and survives a reset of the consumer group (generations then start again at 0).
* **Fenced data.** A data record carries its ``writer``; recovery applies it only when that writer holds the
  accepted marker at that point of the log. A zombie's late records (older writer) are skipped.
* **Contiguity.** An owner knows where its records must land: its marker at the end it read, each later record
  right after its previous one. When the delivered offsets are not contiguous, someone else wrote in between: the
  owner does not write its store for that batch, reads the gap (:func:`recover`) and learns whether its claim still
  holds. Store checkpoints therefore only ever advance over records read back or written contiguously.

Pure apart from the store and reader it is given.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from .ports import TP, ChangelogReader, Message, OffsetOutOfRange
from .store import Checkpoint, Marker, PartitionStore

__all__ = [
    "H_MARKER",
    "H_WRITER",
    "MARKER_KEY",
    "Lineage",
    "Recovery",
    "contiguous",
    "marker_record",
    "new_writer_id",
    "recover",
]

log = logging.getLogger("escalator.changelog")

MARKER_KEY = b"\x00escalator:owner"
H_WRITER = "escalator-writer"
H_MARKER = "escalator-marker"


def new_writer_id(partition: int, generation: int) -> str:
    """A writer id unique to one ownership period of one partition."""
    return f"g{generation}-p{partition}-{uuid.uuid4().hex[:12]}"


def marker_record(
    writer: str, generation: int, seen: int, owner_url: str
) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of a marker claiming ownership after the accepted marker at ``seen``."""
    value = orjson.dumps({"writer": writer, "generation": generation, "seen": seen, "url": owner_url})
    return MARKER_KEY, value, [(H_MARKER, b"1"), (H_WRITER, writer.encode())]


class Lineage:
    """The ownership history of a changelog partition as recovery reads it: which records are accepted."""

    __slots__ = ("_writer", "current", "rejected_markers")

    def __init__(self, current: Marker | None) -> None:
        self.current = current
        self._writer = None if current is None else current.writer.encode()
        self.rejected_markers = 0

    def marker(self, offset: int, value: bytes | None) -> bool:
        """Read a marker at ``offset``; True if it is accepted (it becomes the current claim)."""
        try:
            doc = orjson.loads(value or b"")
            claim = Marker(offset, str(doc["writer"]), int(doc["generation"]), int(doc["seen"]))
        except (ValueError, KeyError, TypeError):
            self.rejected_markers += 1
            return False
        expected = -1 if self.current is None else self.current.offset
        if claim.seen != expected:
            self.rejected_markers += 1
            return False
        self.current = claim
        self._writer = claim.writer.encode()
        return True

    def accepts(self, writer: bytes | None) -> bool:
        """Whether a data record written by ``writer`` is part of the accepted history."""
        return writer is not None and writer == self._writer


@dataclass(frozen=True, slots=True)
class Recovery:
    """What :func:`recover` read: the checkpoint reached, records applied and ignored, markers rejected."""

    checkpoint: Checkpoint
    applied: int
    ignored: int
    rejected_markers: int


def recover(store: PartitionStore, reader: ChangelogReader, tp: TP) -> Recovery:
    """Bring ``store`` up to the end of its changelog partition ``tp``, from the store's checkpoint, applying only
    accepted records. Each fetched batch is written with its checkpoint atomically, so an interrupted recovery
    resumes where it stopped."""
    try:
        return _recover(store, reader, tp)
    except OffsetOutOfRange:
        log.warning("%s[%d]: the local state is ahead of the changelog; rebuilding it from the beginning", *tp)
        store.wipe()
        return _recover(store, reader, tp)


def _recover(store: PartitionStore, reader: ChangelogReader, tp: TP) -> Recovery:
    start = store.checkpoint()
    lineage = Lineage(start.marker)
    applied = ignored = 0
    checkpoint = start
    for batch, next_offset in reader.read(tp, start.offset):
        changes: list[tuple[str, bytes | None]] = []
        for m in batch:
            headers = m.headers()
            writer = marker = None
            if headers:
                for k, v in headers:
                    if k == H_WRITER:
                        writer = v
                    elif k == H_MARKER:
                        marker = v
            if marker is not None:
                lineage.marker(_offset(m), m.value())
                continue
            if lineage.accepts(writer):
                key = m.key()
                if key is None:
                    ignored += 1
                    continue
                changes.append((key.decode(), m.value()))
                applied += 1
            else:
                ignored += 1
        checkpoint = Checkpoint(next_offset, lineage.current)
        if changes or checkpoint != store.checkpoint():
            store.write(changes, checkpoint)
    return Recovery(checkpoint, applied, ignored, lineage.rejected_markers)


def contiguous(expected: int, offsets: Sequence[int]) -> bool:
    """Whether the delivered ``offsets`` (any order) are exactly ``expected, expected + 1, ...``: nobody else wrote
    between them."""
    if not offsets:
        return True
    ordered = sorted(offsets)
    return ordered[0] == expected and ordered[-1] == expected + len(ordered) - 1 and len(set(ordered)) == len(ordered)


def _offset(m: Message) -> int:
    offset = m.offset()
    if offset is None:
        raise ValueError("a consumed changelog record without an offset")
    return offset
