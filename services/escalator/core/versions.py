"""Policy versions in time: which policy file governs a ticket at an instant, and the switch from one to the next.

A :class:`PolicyVersions` is an ordered list of :class:`PolicyVersion` entries -- a compiled :class:`PolicySet`, the
instant it takes effect (``effective_ms``, event time) and whom it applies to (``open_tickets`` or
``new_tickets``). The first entry governs since forever (a worker's ``--policy`` file, the simulator's
``--policy``); the others are sorted by effective instant, ties in publication order (``seq``).

Which entry governs a ticket at instant ``t`` is a pure function of the ticket's creation instant and ``t``
(:meth:`PolicyVersions.governing`): the latest entry effective at or before its creation, then every later
``open_tickets`` entry effective at or before ``t``. A ``new_tickets`` entry therefore governs only the tickets
created at or after its instant.

A switch is a deadline of the ticket at the entry's effective instant ``T`` (:func:`next_deadline_versioned`), so
live (wall clock) and replay (event time) switch at the same logical instant whenever they happen to process it.
At ``T``: the thresholds due strictly before ``T`` fire under the old version; then the switch (every running clock
checkpointed at ``T`` and re-planned: elapsed time kept, fired thresholds stay fired, thresholds now overdue fall
due at ``T``); then, as always, an event at ``T`` before the thresholds at ``T``. A version whose effective instant
a ticket has already passed when the version becomes known (published late) is adopted at the ticket's watermark,
like a late event. Only tickets with a running clock are woken for a switch (and only they are switched by a
deadline); the others switch at the instant when their next event comes (they had nothing to re-plan).

With a single entry every function here is exactly the engine's (the same outputs, byte for byte).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .engine import advance, apply, next_deadline, replan_at, stamp_trace
from .events import Event
from .outputs import Command
from .plan import PolicySet
from .state import RUNNING, TicketState, has_text
from .vocabulary import APPLIES_TO

__all__ = [
    "NEW_TICKETS",
    "OPEN_TICKETS",
    "PolicyVersion",
    "PolicyVersions",
    "advance_versioned",
    "apply_versioned",
    "next_deadline_versioned",
    "policies_in_use",
]

OPEN_TICKETS: Final = APPLIES_TO[0]
NEW_TICKETS = APPLIES_TO[1]


class PolicyVersion:
    """One entry of the timeline: a policy file in force from ``effective_ms`` (``None``: since forever)."""

    __slots__ = ("applies_to", "effective_ms", "label", "policies", "published_ms", "seq")

    def __init__(
        self,
        policies: PolicySet,
        effective_ms: int | None = None,
        applies_to: str = OPEN_TICKETS,
        seq: int = 0,
        published_ms: int | None = None,
        label: str = "",
    ) -> None:
        if applies_to not in APPLIES_TO:
            raise ValueError(f"applies_to must be one of {', '.join(APPLIES_TO)}, not {applies_to!r}")
        self.policies = policies
        self.effective_ms = effective_ms
        self.applies_to = applies_to
        self.seq = seq  # publication order (ties of effective_ms: the later publication comes later)
        self.published_ms = published_ms
        self.label = label or policies.source

    @property
    def version(self) -> str:
        return self.policies.version

    def __repr__(self) -> str:
        return f"PolicyVersion({self.version}, effective_ms={self.effective_ms}, applies_to={self.applies_to})"


class PolicyVersions:
    """The policy versions a worker or a replay holds, in effective order (immutable; :meth:`adding` copies)."""

    __slots__ = ("_by_version", "entries", "single")

    def __init__(self, base: PolicyVersion, later: Iterable[PolicyVersion] = ()) -> None:
        rest = sorted(later, key=lambda v: (v.effective_ms if v.effective_ms is not None else -(2**62), v.seq))
        self.entries: tuple[PolicyVersion, ...] = (base, *rest)
        #: the one PolicySet when there is nothing but the base (the engine is then called unchanged)
        self.single: PolicySet | None = base.policies if not rest else None
        self._by_version: dict[str, PolicySet] = {v.version: v.policies for v in self.entries}

    @classmethod
    def of(cls, policies: PolicySet) -> PolicyVersions:
        return cls(PolicyVersion(policies))

    @property
    def base(self) -> PolicyVersion:
        return self.entries[0]

    def adding(self, version: PolicyVersion) -> PolicyVersions:
        """These versions and one more."""
        return PolicyVersions(self.entries[0], (*self.entries[1:], version))

    def policies(self, version: str) -> PolicySet | None:
        """The compiled file of a version (content hash), if held."""
        return self._by_version.get(version)

    def governing(self, created_ms: int, at_ms: int) -> PolicyVersion:
        """The entry that governs, at ``at_ms``, a ticket created at ``created_ms``."""
        found = self.entries[0]
        for v in self.entries[1:]:
            eff = v.effective_ms
            if eff is None or eff <= created_ms:
                found = v
            elif eff > at_ms:
                break
            elif v.applies_to == OPEN_TICKETS:
                found = v
        return found

    def for_new(self, at_ms: int) -> PolicySet:
        """The policy file a ticket created at ``at_ms`` starts with."""
        return self.governing(at_ms, at_ms).policies

    def next_switch(self, after_ms: int) -> PolicyVersion | None:
        """The first ``open_tickets`` entry effective strictly after ``after_ms``."""
        for v in self.entries[1:]:
            eff = v.effective_ms
            if eff is not None and eff > after_ms and v.applies_to == OPEN_TICKETS:
                return v
        return None

    def in_force(self, at_ms: int) -> list[PolicyVersion]:
        """The entries that may govern some ticket at ``at_ms``: the one for new tickets, and every earlier one
        that no ``open_tickets`` entry effective by ``at_ms`` has replaced (``new_tickets`` entries keep the
        versions before them in force for the tickets created under them)."""
        out: list[PolicyVersion] = []
        for v in self.entries:
            eff = v.effective_ms
            if eff is not None and eff > at_ms:
                break
            if v.applies_to == OPEN_TICKETS or v is self.entries[0]:
                out = [v]
            else:
                out.append(v)
        return out

    def pending(self, at_ms: int) -> list[PolicyVersion]:
        """The entries not effective yet at ``at_ms``."""
        return [v for v in self.entries[1:] if v.effective_ms is not None and v.effective_ms > at_ms]


def _catch_up(
    s: TicketState, upto_ms: int, versions: PolicyVersions, cmds: list[Command], *, only_running: bool
) -> PolicySet:
    """Bring an owned ticket state to the version that governs it at ``upto_ms`` (inclusive), switching at every
    effective instant on the way; returns the policy file it is on then. ``only_running`` (a deadline, not an
    event): a ticket without a running clock is not switched -- exactly when :func:`next_deadline_versioned` does
    not wake it for the switch, so that ticks never change outputs."""
    governing = versions.governing(s.created_ms, s.watermark_ms)
    if governing.version != s.policy_version:  # published after the ticket passed its instant: adopt it now
        replan_at(s, s.watermark_ms, versions.policies(s.policy_version), governing.policies, cmds)
    while True:
        nxt = versions.next_switch(s.watermark_ms)
        if nxt is None or nxt.effective_ms is None or nxt.effective_ms > upto_ms:
            break
        current = versions.policies(s.policy_version)
        if current is not None:  # the thresholds strictly before the switch, under the version they belong to
            s, more = advance(s, nxt.effective_ms - 1, current, in_place=True)
            cmds.extend(more)
        if only_running and not _running(s):
            break
        replan_at(s, nxt.effective_ms, current, nxt.policies, cmds)
    found = versions.policies(s.policy_version)
    assert found is not None
    return found


def apply_versioned(
    state: TicketState | None, event: Event, versions: PolicyVersions, *, in_place: bool = False
) -> tuple[TicketState, list[Command]]:
    """:func:`~escalator.core.engine.apply` under the version that governs the ticket at the event's instant."""
    single = versions.single
    if single is not None:
        return apply(state, event, single, in_place=in_place)
    if state is None:
        return apply(None, event, versions.for_new(event.time_ms))
    if has_text(state.seen, event.dedup_key):
        return apply(state, event, versions.base.policies)  # a duplicate: ignored, nothing moves
    s = state if in_place else state.clone()
    at = event.time_ms if event.time_ms > s.watermark_ms else s.watermark_ms
    cmds: list[Command] = []
    policies = _catch_up(s, at, versions, cmds, only_running=False)
    stamp_trace(s, cmds)  # before the event's own trace replaces the ticket's
    s, more = apply(s, event, policies, in_place=True)
    cmds.extend(more)
    return s, cmds


def advance_versioned(
    state: TicketState, now_ms: int, versions: PolicyVersions, *, in_place: bool = False
) -> tuple[TicketState, list[Command]]:
    """:func:`~escalator.core.engine.advance` with the switches effective at or before ``now_ms`` in between."""
    single = versions.single
    if single is not None:
        return advance(state, now_ms, single, in_place=in_place)
    s = state if in_place else state.clone()
    cmds: list[Command] = []
    policies = _catch_up(s, now_ms, versions, cmds, only_running=True)
    stamp_trace(s, cmds)
    s, more = advance(s, now_ms, policies, in_place=True)
    cmds.extend(more)
    return s, cmds


def _running(s: TicketState) -> bool:
    for c in s.clocks:
        if c.phase == RUNNING:
            return True
    for inst in s.agreements.values():
        for c in inst.clocks:
            if c.phase == RUNNING:
                return True
    return False


def next_deadline_versioned(state: TicketState, versions: PolicyVersions) -> int | None:
    """The ticket's next instant to act on: its next threshold, or the next switch of version when it has a running
    clock, whichever comes first."""
    single = versions.single
    if single is not None:
        return next_deadline(state, single)
    governing = versions.governing(state.created_ms, state.watermark_ms)
    if governing.version != state.policy_version:
        return state.watermark_ms  # a switch the ticket has passed already: due now
    nd = next_deadline(state, governing.policies)
    if _running(state):
        nxt = versions.next_switch(state.watermark_ms)
        if nxt is not None and nxt.effective_ms is not None and (nd is None or nxt.effective_ms < nd):
            return nxt.effective_ms
    return nd


def policies_in_use(state: TicketState, versions: PolicyVersions) -> PolicySet:
    """The policy file a ticket's state is read with (views, ``/tickets``): its own version if held, else the
    version that governs it now."""
    held = versions.policies(state.policy_version)
    if held is not None:
        return held
    return versions.governing(state.created_ms, state.watermark_ms).policies
