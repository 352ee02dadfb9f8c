"""The policy versions a worker holds: its policy file (in force since forever) plus every version published to
the policies topic (``escalator policy publish``), plus the edits of its policy file it noticed.

At start :meth:`PolicyFeed.load` reads the policies topic to its end, before any partition is processed; then a
daemon thread follows it and watches the file, and hands every new set of versions to the processor
(``Runtime.offer_versions``), which takes it at its next step. The switch itself is decided by the pure core at
each version's effective instant (``escalator.core.versions``), never when the record happened to be read.

A record that is not a usable version (not JSON, not the schema, a policy that does not validate, a version that
is not its text's hash) is counted in ``escalator_policy_records_rejected_total{reason}``, logged once, and
otherwise ignored: the worker keeps the versions it holds. An edited file that does not validate is treated the
same way (reason ``invalid_policy``), and the file's previous content stays in force.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..core import PolicyError, PolicySet, format_ms
from ..core.timefmt import format_ms_or_none
from ..core.versions import OPEN_TICKETS, PolicyVersion, PolicyVersions
from ..policy_file import load_policy_file
from ..policy_versions import PolicyRecordError, decode_policy_record
from ..stream.ports import ChangelogReader, Message

__all__ = ["FollowedTail", "PolicyFeed"]

log = logging.getLogger("escalator.policy")

#: Versions superseded (for every ticket) by a version for open tickets effective at least this long ago are
#: dropped: no ticket can use them any more (events arrive within the allowed lateness).
DROP_AFTER_MS = 3_600_000


class FollowedTail(Protocol):  # escalator.service.app.Tail
    def poll(self, timeout_s: float) -> list[Message]: ...
    def close(self) -> None: ...


class PolicyFeed:
    def __init__(
        self,
        base: PolicySet,
        *,
        now_ms: Callable[[], int],
        lateness_ms: int,
        on_change: Callable[[PolicyVersions], None] | None = None,
        on_reject: Callable[[str], None] | None = None,
        on_info: Callable[[list[str]], None] | None = None,
        file: Path | None = None,
        watch_s: float = 0.0,
    ) -> None:
        self.now_ms = now_ms
        self.lateness_ms = lateness_ms
        self.on_change = on_change
        self.on_reject = on_reject
        self.on_info = on_info
        self._info: list[str] = []
        self.file = file
        self.watch_s = watch_s
        self._seq = 0
        self._next_offset = 0  # records before it were taken (the tail reads the topic again from its beginning)
        self._keys: set[bytes] = set()  # versions taken (the same version published twice is one)
        self.versions = PolicyVersions(PolicyVersion(base, None, OPEN_TICKETS, 0, None, str(file or base.source)))
        self.rejected: Counter[str] = Counter()
        self._file_digest = _digest(file)
        self._file_stat = _stat(file)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tail: FollowedTail | None = None

    # -- records -------------------------------------------------------------------------------------------------
    def load(self, reader: ChangelogReader, topic: str) -> int:
        """Read the policies topic to its end (at start, before processing); returns the records read."""
        n = 0
        for batch, _end in reader.read((topic, 0), 0):
            self.take(batch)
            n += len(batch)
        return n

    def take(self, messages: Iterable[Message]) -> bool:
        """Take records of the policies topic; returns whether the versions changed (then handed on)."""
        added: list[PolicyVersion] = []
        for m in messages:
            offset = m.offset()
            if offset is not None:
                if offset < self._next_offset:
                    continue
                self._next_offset = offset + 1
            key = m.key() or b""
            if key and key in self._keys:
                continue
            self._seq += 1
            try:
                record, version = decode_policy_record(m.value(), self._seq)
            except PolicyRecordError as exc:
                self._reject(exc.reason, f"policies record at offset {m.offset()}: {exc.detail}")
                continue
            if key:
                self._keys.add(key)
            log.info(
                "policy version %s (%s) effective from %s for %s",
                record.version,
                record.file,
                record.effective_from,
                record.applies_to,
            )
            added.append(version)
        return self._add(added)

    def _reject(self, reason: str, detail: str) -> None:
        self.rejected[reason] += 1
        log.error("policy not used (%s): %s; the versions held stay in force", reason, detail)
        if self.on_reject is not None:
            self.on_reject(reason)

    def _add(self, added: list[PolicyVersion]) -> bool:
        if not added:
            return False
        versions = self.versions
        for v in added:
            versions = versions.adding(v)
        self.versions = self._pruned(versions)
        if self.on_change is not None:
            self.on_change(self.versions)
        return True

    def _pruned(self, versions: PolicyVersions) -> PolicyVersions:
        """Without the versions no ticket can use any more: those before a version for open tickets that took
        effect more than the allowed lateness plus an hour ago (it became the base: in force since forever)."""
        horizon = self.now_ms() - self.lateness_ms - DROP_AFTER_MS
        keep = versions.in_force(horizon)
        first = keep[0]
        if first is versions.base:
            return versions
        at = versions.entries.index(first)
        log.info("policy versions before %s dropped: every ticket has moved on", first.version)
        return PolicyVersions(first, versions.entries[at + 1 :])

    # -- the watched file -----------------------------------------------------------------------------------------
    def check_file(self) -> bool:
        """Take an edit of the policy file (effective from now, the instant it was read: wall clock); returns
        whether the versions changed."""
        if self.file is None:
            return False
        stat = _stat(self.file)
        if stat == self._file_stat:
            return False
        self._file_stat = stat
        digest = _digest(self.file)
        if digest == self._file_digest:
            return False
        self._file_digest = digest
        try:
            policies = load_policy_file(self.file)
        except PolicyError as exc:
            self._reject("invalid_policy", f"edited {self.file}: {'; '.join(str(i) for i in exc.issues[:3])}")
            return False
        now = self.now_ms()
        self._seq += 1
        label = f"{self.file} (edited, read at {format_ms(now)})"
        log.info(
            "policy file %s edited: version %s in force for open tickets from %s",
            self.file,
            policies.version,
            format_ms(now),
        )
        return self._add([PolicyVersion(policies, now, OPEN_TICKETS, self._seq, now, label)])

    # -- following ------------------------------------------------------------------------------------------------
    def refresh_info(self) -> None:
        """Hand the versions in force now to ``on_info`` when they changed (a version's instant passed)."""
        info = sorted({v.version for v in self.in_force()})
        if info != self._info:
            self._info = info
            if self.on_info is not None:
                self.on_info(info)

    def start(self, tail: FollowedTail | None) -> None:
        """Follow the policies topic (``tail``: from its beginning; ``None``: no topic) and watch the file."""
        self._tail = tail
        self._thread = threading.Thread(target=self._follow, name="escalator-policies", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        watch_ms = self.watch_s * 1000
        checked = self.now_ms()
        while not self._stop.is_set():
            try:
                if self._tail is not None:
                    self.take(self._tail.poll(0.5))
                else:
                    self._stop.wait(0.5)
                if watch_ms > 0 and self.now_ms() - checked >= watch_ms:
                    checked = self.now_ms()
                    self.check_file()
                self.refresh_info()
            except Exception:  # a broker hiccup or a bug must not end the worker: the versions held stay
                log.exception("following the policies")
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._tail is not None:
            self._tail.close()

    # -- views ----------------------------------------------------------------------------------------------------
    def in_force(self) -> list[PolicyVersion]:
        return self.versions.in_force(self.now_ms())

    def describe(self, open_by_version: Mapping[str, int]) -> dict[str, Any]:
        """``/policy``: the version new tickets get now (its file, as before), and every version held."""
        now = self.now_ms()
        versions = self.versions
        current = versions.for_new(now)
        in_force = {id(v) for v in versions.in_force(now)}
        rows = []
        for v in versions.entries:
            rows.append(
                {
                    "version": v.version,
                    "source": v.label,
                    "effective_from": format_ms_or_none(v.effective_ms),
                    "applies_to": v.applies_to,
                    "published_at": format_ms_or_none(v.published_ms),
                    "state": _state(v, id(v) in in_force, now),
                    "open_tickets": int(open_by_version.get(v.version, 0)),
                }
            )
        return {**current.describe(), "versions": rows, "rejected_records": dict(self.rejected)}


def _state(v: PolicyVersion, in_force: bool, now_ms: int) -> str:
    if in_force:
        return "in_force"
    if v.effective_ms is not None and v.effective_ms > now_ms:
        return "pending"
    return "superseded"


def _stat(file: Path | None) -> tuple[float, int] | None:
    if file is None:
        return None
    try:
        st = file.stat()
    except OSError:
        return None
    return st.st_mtime, st.st_size


def _digest(file: Path | None) -> str | None:
    if file is None:
        return None
    try:
        return hashlib.sha256(file.read_bytes()).hexdigest()
    except OSError:
        return None
