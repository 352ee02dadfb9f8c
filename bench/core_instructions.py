"""The core's work in instructions, for valgrind's callgrind: counts that stay the same however busy the machine is
(time-based figures on a shared machine swing by 30 % from run to run; instruction counts do not).

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.core \\
        --toggle-collect=CPyPy_engine___apply --toggle-collect=CPyPy_engine___advance \\
        --toggle-collect=CPyPy_engine___next_deadline python bench/core_instructions.py core 1000
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.decode \\
        --toggle-collect=CPyPy_events___decode_record python bench/core_instructions.py decode 1000

``core-copy`` runs the same loop copy-on-write (the worker's mode: ``apply``/``advance`` clone the state first).

(the ``CPyPy_*`` names are the compiled core's entry points: run it against the compiled build). The core run is
the simulator's loop -- apply per event, advance for every deadline that falls due, in place -- over
``escalator.synth`` lifecycles with examples/policy.yaml; callgrind counts only what runs inside those functions.
"""

from __future__ import annotations

import gc
import heapq
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

from escalator.core import advance, apply, decode_record, load_policy_text, next_deadline  # noqa: E402
from escalator.synth import lifecycle_events  # noqa: E402


def core(events: list[object], policy: object, in_place: bool = True) -> None:
    table: dict[str, object] = {}
    armed: dict[str, int] = {}
    heap: list[tuple[int, str]] = []
    for e in events:
        now = e.time_ms  # type: ignore[attr-defined]
        while heap and heap[0][0] < now:
            due, tid = heapq.heappop(heap)
            if armed.get(tid) != due:
                continue
            del armed[tid]
            st, _ = advance(table[tid], due, policy, in_place=in_place)  # type: ignore[arg-type]
            table[tid] = st
            nd = next_deadline(st, policy)  # type: ignore[arg-type]
            if nd is not None:
                armed[tid] = nd
                heapq.heappush(heap, (nd, tid))
        tid = e.ticket_id  # type: ignore[attr-defined]
        st, _ = apply(table.get(tid), e, policy, in_place=in_place)  # type: ignore[arg-type]
        table[tid] = st
        nd = next_deadline(st, policy)  # type: ignore[arg-type]
        if nd is not None and armed.get(tid) != nd:
            armed[tid] = nd
            heapq.heappush(heap, (nd, tid))


def main() -> int:
    what, tickets = sys.argv[1], int(sys.argv[2])
    gc.disable()
    policy = load_policy_text((ROOT / "examples" / "policy.yaml").read_text(), "examples/policy.yaml")
    raw = [orjson.dumps(e) for e in lifecycle_events(tickets, seed=11)]
    events = [decode_record(r) for r in raw]
    if what in ("core", "core-copy"):
        core(events, policy, in_place=what == "core")  # type: ignore[arg-type]
    print(f"{len(events)} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
