"""Incident windows of one incident-signal partition, fed in event-time order across all source partitions.

The ticket processor of each input partition sends an incident signal for every counted creation to the signal
partition of its ``(rule, group value)`` window, and -- after the signals -- *watermarks*: "every signal of source
partition ``p`` with an instant ``<= W`` has been sent". Source partitions progress at different speeds (a
takeover, a backlog, a slow worker), so signals reach a window out of time order. They are held here until every
source partition's watermark has passed them, then released in ``(time, ticket)`` order to
:func:`~escalator.core.observe` -- at one instant the resolve records first (ticket ""), then the creations by
ticket id, never in arrival order: which creation trips a detection depends on the order, and the simulator
releases the input of an instant in the same order once the instant is complete
(:class:`~escalator.replay.Simulator`). A signal at or before the watermark already (a late creation) goes out at
the next release. Held signals are not committed: the partition's committed offset stays at the oldest held
signal, so a restart re-reads them.

An input ``incident.resolved`` travels the same way (a *resolve record* under the incident's window key, sent by
the ticket partition that read it) and is released in time order like a signal. Windows of open incidents (rules
with a lifecycle) are *timed*: after each release, every timed window is settled up to the common watermark
(members announced, quiet incidents resolved) -- the instants the simulator settles them at, so live == replay.

Pure apart from the store.
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

import orjson

from ..core import (
    Command,
    IncidentResolve,
    IncidentSignal,
    IncidentWindow,
    PolicySet,
    next_due,
    observe,
    request_resolution,
    settle,
    window_key,
)
from ..core.versions import PolicyVersions
from .ports import Message, headers_get
from .store import Checkpoint, PartitionStore

__all__ = [
    "H_WATERMARK",
    "WATERMARK_KEY",
    "IncidentPartition",
    "resolve_record",
    "signal_record",
    "watermark_record",
]

log = logging.getLogger("escalator.incidents")

WATERMARK_KEY = b"\x00escalator:watermark"
H_WATERMARK = "escalator-watermark"


def signal_record(sig: IncidentSignal, source: int) -> tuple[bytes, bytes]:
    """(key, value) of an incident signal; the key is the window's, so every signal of a window shares a partition."""
    doc: dict[str, Any] = {
        "rule": sig.rule_id,
        "value": sig.group_value,
        "ticket": sig.ticket_id,
        "time_ms": sig.time_ms,
        "src": source,
    }
    if sig.member is not None:
        doc["m"] = sig.member
    return window_key(sig.rule_id, sig.group_value).encode(), orjson.dumps(doc)


def resolve_record(req: IncidentResolve, source: int) -> tuple[bytes, bytes]:
    """(key, value) of an input ``incident.resolved``, under its incident's window key."""
    doc = {
        "rule": req.rule_id,
        "value": req.group_value,
        "resolve": req.incident_id,
        "time_ms": req.time_ms,
        "by": req.by,
        "note": req.note,
        "event": req.event_id,
        "src": source,
    }
    return window_key(req.rule_id, req.group_value).encode(), orjson.dumps(doc)


def watermark_record(source: int, watermark_ms: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return WATERMARK_KEY, orjson.dumps({"src": source, "wm": watermark_ms}), [(H_WATERMARK, b"1")]


class IncidentPartition:
    def __init__(self, partition: int, store: PartitionStore, policy: PolicySet | PolicyVersions, sources: int) -> None:
        self.partition = partition
        self.store = store
        self.versions = policy if isinstance(policy, PolicyVersions) else PolicyVersions.of(policy)
        self.sources = sources
        # (time_ms, ticket, rule, group value, offset, record): ticket "" for a resolve record (record: its doc)
        self.held: list[tuple[int, str, str, str, int, dict[str, Any]]] = []
        self.watermarks: dict[int, int] = {}  # source partition -> watermark
        self._windows: dict[str, IncidentWindow | None] = {}  # the overlay of windows not stored yet
        self._dirty: set[str] = set()  # changed since the last snapshot
        self._snapshot_of: dict[str, int] = {}
        self._pending: list[tuple[int, list[tuple[str, bytes | None]]]] = []
        self._seq = 0
        self._timed: dict[str, int] = {}  # windows with something due (open incidents): when
        self._rebuild_timed()

    def _rebuild_timed(self) -> None:
        """After a recovery: the windows with an open incident (only rules with a lifecycle have them)."""
        latest = self.versions.entries[-1].policies
        if not any(r.lifecycle for v in self.versions.entries for r in v.policies.incidents):
            return
        for key, raw in self.store.items():
            if b'"incident"' in raw:
                due = next_due(IncidentWindow.from_dict(orjson.loads(raw)), latest)
                if due is not None:
                    self._timed[key] = due

    def add(self, msg: Message) -> None:
        """Take one record of the signal topic (a signal or a watermark)."""
        value = msg.value()
        try:
            doc = orjson.loads(value or b"")
            if headers_get(msg.headers(), H_WATERMARK) is not None:
                src, wm = int(doc["src"]), int(doc["wm"])
                if wm > self.watermarks.get(src, wm - 1):
                    self.watermarks[src] = wm
                return
            ticket = "" if "resolve" in doc else str(doc["ticket"])
            entry = (int(doc["time_ms"]), ticket, str(doc["rule"]), str(doc["value"]), msg.offset() or 0, doc)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("skipped a malformed incident signal at offset %s: %s", msg.offset(), exc)
            return
        heapq.heappush(self.held, entry)

    def watermark(self) -> int | None:
        """The instant every source partition has passed (``None`` until all of them reported)."""
        if len(self.watermarks) < self.sources:
            return None
        return min(self.watermarks.values())

    def release(self) -> list[Command]:
        """Observe every held signal at or before the common watermark, in (time, ticket) order, then settle the
        timed windows up to it."""
        wm = self.watermark()
        held = self.held
        if wm is None:
            return []
        out: list[Command] = []
        versions = self.versions
        while held and held[0][0] <= wm:
            time_ms, ticket, rule, value, _offset, doc = heapq.heappop(held)
            key = window_key(rule, value)
            window = self._load(key)
            new: IncidentWindow | None
            if ticket:
                policy = versions.for_new(time_ms)  # the rules in force for a ticket created then
                new, emits = observe(window, IncidentSignal(rule, value, ticket, time_ms, doc.get("m")), policy)
                out.extend(emits)
            else:
                req = IncidentResolve(rule, value, str(doc["resolve"]), time_ms, doc["by"], doc["note"], doc["event"])
                policy = versions.for_new(time_ms)
                new, cmds = request_resolution(window, req, policy)
                out.extend(cmds)
            if new is not window:
                self._windows[key] = new
                self._dirty.add(key)
            due = None if new is None else next_due(new, policy)
            if due is not None:
                self._timed[key] = due
            else:
                self._timed.pop(key, None)
        for key in sorted(k for k, due in self._timed.items() if due <= wm):
            window = self._load(key)
            if window is None:
                del self._timed[key]
                continue
            policy = versions.for_new(wm)
            new_window, emits = settle(window, wm, policy)
            if new_window is not window:
                self._windows[key] = new_window
                self._dirty.add(key)
                out.extend(emits)
            due = next_due(new_window, policy)
            if due is None:
                del self._timed[key]
            else:
                self._timed[key] = due
        return out

    def commit_offset(self, position: int) -> int:
        """The offset to commit: the oldest held signal's (it must be read again after a restart), else
        ``position``."""
        if not self.held:
            return position
        return min(e[4] for e in self.held)

    def _load(self, key: str) -> IncidentWindow | None:
        if key in self._windows:
            return self._windows[key]
        raw = self.store.get(key)
        window = None if raw is None else IncidentWindow.from_dict(orjson.loads(raw))
        self._windows[key] = window
        return window

    def snapshot(self) -> tuple[int, list[tuple[str, bytes | None]]]:
        """End a batch: the windows it changed as store values, under a new snapshot number."""
        self._seq += 1
        seq = self._seq
        out: list[tuple[str, bytes | None]] = []
        for key in self._dirty:
            window = self._windows[key]
            out.append((key, None if window is None else orjson.dumps(window.to_dict())))
            self._snapshot_of[key] = seq
        self._dirty = set()
        for key in [k for k in self._windows if k not in self._snapshot_of]:
            del self._windows[key]  # loaded, unchanged
        if out:
            self._pending.append((seq, out))
        return seq, out

    def stored(self, seq: int, checkpoint: Checkpoint) -> None:
        changes: list[tuple[str, bytes | None]] = []
        while self._pending and self._pending[0][0] <= seq:
            changes.extend(self._pending.pop(0)[1])
        self.store.write(changes, checkpoint)
        for key, _value in changes:
            if self._snapshot_of.get(key) == seq and key not in self._dirty:
                self._windows.pop(key, None)
                del self._snapshot_of[key]

    def discard(self) -> None:
        """Forget everything not stored (the runtime re-reads the uncommitted signals)."""
        self._windows = {}
        self._dirty = set()
        self._snapshot_of = {}
        self._pending = []
        self._timed = {}
