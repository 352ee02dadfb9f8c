"""Byte formats of the stream processor's own records: state store values and changelog headers. Pure.

A ticket's store value (the same bytes go to the changelog) is a fixed 19-byte header followed by the state's
positional JSON row (:meth:`~escalator.core.TicketState.to_row`)::

    version (u8) | flags (u8: 1 = open) | priority (i8, index in PRIORITIES, -1 unknown)
    | wake_ms (i64, -1 none) | deadline_ms (i64, -1 none) | row (JSON)

The header carries everything the deadline index and the gauges need, so rebuilding the index after a recovery,
checking whether a heap entry is current and keeping gauges up to date never decode a whole state.
"""

from __future__ import annotations

import struct
from typing import Final

import orjson

from ..core import TicketState
from ..core.vocabulary import DONE_STATUSES, PRIORITIES

__all__ = [
    "NO_INSTANT",
    "VALUE_FORMAT",
    "TicketHeader",
    "decode_ticket",
    "encode_ticket",
    "ticket_header",
]

VALUE_FORMAT: Final = 1
NO_INSTANT: Final = -1
_PRIORITY_INDEX: Final = {p: i for i, p in enumerate(PRIORITIES)}
_HEADER: Final = struct.Struct("<BBbqq")
HEADER_SIZE: Final = _HEADER.size
_OPEN: Final = 1


class TicketHeader:
    """The decoded header of a ticket store value."""

    __slots__ = ("deadline_ms", "is_open", "priority", "wake_ms")

    def __init__(self, is_open: bool, priority: int, wake_ms: int, deadline_ms: int) -> None:
        self.is_open = is_open
        self.priority = priority  # index in PRIORITIES, -1 unknown
        self.wake_ms = wake_ms  # NO_INSTANT: nothing to do
        self.deadline_ms = deadline_ms  # the next SLA threshold (without lateness), NO_INSTANT: none


def encode_ticket(state: TicketState, wake_ms: int | None, deadline_ms: int | None) -> bytes:
    """A state with its next wake instant (when the deadline index must look at it) and next SLA threshold."""
    header = _HEADER.pack(
        VALUE_FORMAT,
        _OPEN if state.status not in DONE_STATUSES else 0,
        _PRIORITY_INDEX.get(state.priority, -1),
        NO_INSTANT if wake_ms is None else wake_ms,
        NO_INSTANT if deadline_ms is None else deadline_ms,
    )
    return header + orjson.dumps(state.to_row())


def decode_ticket(value: bytes) -> TicketState:
    if not value or value[0] != VALUE_FORMAT:
        raise ValueError(f"unsupported ticket value format {value[:1]!r}")
    return TicketState.from_row(orjson.loads(memoryview(value)[HEADER_SIZE:]))


def ticket_header(value: bytes) -> TicketHeader:
    version, flags, priority, wake, deadline = _HEADER.unpack_from(value)
    if version != VALUE_FORMAT:
        raise ValueError(f"unsupported ticket value format {version!r}")
    return TicketHeader(bool(flags & _OPEN), priority, wake, deadline)
