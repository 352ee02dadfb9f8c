"""One simulate run over a JSON Lines source: decode, simulate, summarise, write outputs (the CLI's engine room).

Everything the ``escalator simulate`` command does apart from argument parsing and printing lives here, so it can
be driven from Python (tests, notebooks, the benchmark). With a second policy the same decoded events feed two
simulators in lock step: the input is read and decoded once, which also works for stdin.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

from ..core import DecodeError, Emit, PolicySet, decode_record, encode_event
from ..core.versions import PolicyVersions
from .simulate import Reject, Simulator, undecodable
from .summary import Summary

__all__ = ["Progress", "RunResult", "run_lines"]

PROGRESS_EVERY = 4096


@dataclass(slots=True)
class RunResult:
    summary: Summary
    other: Summary | None
    outputs_written: int
    seconds: float


class Progress:
    """A one-line progress bar on a terminal: events, events/s, percentage and ETA when the size is known."""

    def __init__(
        self,
        stream: TextIO,
        total: Callable[[], tuple[int, int] | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.total = total
        self.clock = clock
        self.start = clock()
        self.last_draw = -1.0

    def update(self, events: int, *, final: bool = False) -> None:
        now = self.clock()
        if not final and now - self.last_draw < 0.2:
            return
        self.last_draw = now
        elapsed = max(now - self.start, 1e-9)
        rate = events / elapsed
        text = f"{events:,} events  {rate:,.0f} events/s"
        pos = self.total()
        if pos is not None and pos[1] > 0:
            frac = min(1.0, pos[0] / pos[1])
            width = 30
            filled = int(frac * width)
            eta = (elapsed / frac - elapsed) if frac > 0 else 0.0
            bar = "#" * filled + "." * (width - filled)
            text = f"[{bar}] {frac * 100:5.1f}%  {text}  ETA {int(eta) // 60}:{int(eta) % 60:02d}"
        self.stream.write("\r" + text + ("\n" if final else ""))
        self.stream.flush()


def _write_emits(cmds: list[Any], write: Callable[[bytes], object]) -> int:
    """Write every published event among ``cmds`` as one JSON line (``encode_event``); returns how many."""
    n = 0
    for c in cmds:
        if type(c) is Emit:
            write(encode_event(c.event))
            write(b"\n")
            n += 1
    return n


def run_lines(
    lines: Iterable[tuple[int, bytes]],
    policy: PolicySet | PolicyVersions,
    *,
    until_ms: int | None = None,
    other_policy: PolicySet | None = None,
    out: BinaryIO | None = None,
    on_reject: Callable[[Reject], None] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Simulate every line; rejected lines are counted (and passed to ``on_reject``), never fatal. ``out`` receives
    every emitted CloudEvent as one JSON line (``encode_event``), exactly what the live service publishes."""
    # The run allocates many short-lived objects while the ticket table (long-lived) grows: collect the young
    # generation less often (the default, every 700 allocations, costs ~10% here). Restored on the way out.
    thresholds = gc.get_threshold()
    gc.set_threshold(50_000, 20, 10)
    try:
        return _run(lines, policy, until_ms, other_policy, out, on_reject, progress)
    finally:
        gc.set_threshold(*thresholds)


def _run(
    lines: Iterable[tuple[int, bytes]],
    policy: PolicySet | PolicyVersions,
    until_ms: int | None,
    other_policy: PolicySet | None,
    out: BinaryIO | None,
    on_reject: Callable[[Reject], None] | None,
    progress: Progress | None,
) -> RunResult:
    sim = Simulator(policy, until_ms)
    summary = Summary(sim.policy)  # with policy changes: the base file (what it reports per policy id)
    other_sim = Simulator(other_policy, until_ms) if other_policy is not None else None
    other = Summary(other_policy) if other_policy is not None else None
    written = 0
    count = 0
    started = time.perf_counter()
    feed = sim.feed
    observe_event = summary.event
    observe_commands = summary.commands
    write = out.write if out is not None else None
    read = 0
    for number, raw in lines:
        read += 1
        try:
            event = decode_record(raw)
        except Exception as exc:  # a bad line never aborts the run, even one the decoder trips over
            reject = (
                Reject(number, exc.reason, exc.detail, exc.event_id)
                if isinstance(exc, DecodeError)
                else undecodable(number, exc)
            )
            summary.reject(reject)
            if other is not None:
                other.reject(reject)
            if on_reject is not None:
                on_reject(reject)
            continue
        if until_ms is not None and event.time_ms > until_ms:
            feed(event)  # not applied; counted by the simulator (events_after_until)
            if other_sim is not None:
                other_sim.feed(event)
            continue
        observe_event(event)
        cmds = feed(event)
        if cmds:
            observe_commands(cmds)
            if write is not None:
                written += _write_emits(cmds, write)
        if other_sim is not None and other is not None:
            other.event(event)
            other.commands(other_sim.feed(event))
        count += 1
        if progress is not None and count % PROGRESS_EVERY == 0:
            progress.update(count)
    cmds = sim.finish()
    observe_commands(cmds)
    if write is not None:
        written += _write_emits(cmds, write)
    summary.close(sim, read)
    if other_sim is not None and other is not None:
        other.commands(other_sim.finish())
        other.close(other_sim, read)
    if progress is not None:
        progress.update(count, final=True)
    return RunResult(summary, other, written, time.perf_counter() - started)
