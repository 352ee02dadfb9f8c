"""Benchmark: the pure core's single-core throughput on generated, realistic ticket lifecycles.

Measures, on one core and in one process:
* decode: bytes -> validated Event (orjson + pydantic), events/s;
* core: apply() per event plus advance() for every deadline that falls due (a heap of next deadlines, exactly what
  the simulator and the worker's timer index do), events/s, with both example policies in play (24x7 and
  Amsterdam office hours with holidays).

Usage: python bench/core_bench.py [--tickets N] [--out bench/results/core.json]
"""

from __future__ import annotations

import argparse
import heapq
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

from escalator.core import advance, apply, decode_record, load_policy_text, next_deadline  # noqa: E402
from escalator.synth import lifecycle_events  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "core.json"))
    args = parser.parse_args()

    policy = load_policy_text((ROOT / "examples" / "policy.yaml").read_text(), "examples/policy.yaml")
    raw = [orjson.dumps(e) for e in lifecycle_events(args.tickets, seed=11)]
    n = len(raw)

    decode_times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        events = [decode_record(r) for r in raw]
        decode_times.append(time.perf_counter() - t0)

    def run_core(in_place: bool) -> tuple[float, int]:
        """apply() per event + advance() for every deadline that falls due, with a heap re-armed on change."""
        table: dict[str, object] = {}
        armed: dict[str, int] = {}  # ticket -> deadline in the heap (re-armed only when it changes)
        heap: list[tuple[int, str]] = []
        outputs = 0
        t0 = time.perf_counter()
        for e in events:
            now = e.time_ms
            while heap and heap[0][0] < now:
                due, tid = heapq.heappop(heap)
                if armed.get(tid) != due:  # superseded entry
                    continue
                del armed[tid]
                st, cmds = advance(table[tid], due, policy, in_place=in_place)  # type: ignore[arg-type]
                table[tid] = st
                outputs += len(cmds)
                nd = next_deadline(st, policy)
                if nd is not None:
                    armed[tid] = nd
                    heapq.heappush(heap, (nd, tid))
            tid = e.ticket_id
            st, cmds = apply(table.get(tid), e, policy, in_place=in_place)  # type: ignore[arg-type]
            table[tid] = st
            outputs += len(cmds)
            nd = next_deadline(st, policy)
            if nd is not None and armed.get(tid) != nd:
                armed[tid] = nd
                heapq.heappush(heap, (nd, tid))
        return time.perf_counter() - t0, outputs

    core_times = []
    in_place_times = []
    commands = 0
    for _ in range(args.repeat):
        elapsed, commands = run_core(in_place=False)
        core_times.append(elapsed)
        in_place_times.append(run_core(in_place=True)[0])

    best_decode, best_core = min(decode_times), min(core_times)
    result = {
        "benchmark": "core",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "tickets": args.tickets,
        "events": n,
        "commands": commands,
        "decode_events_per_s": round(n / best_decode),
        "core_events_per_s": round(n / best_core),
        "core_in_place_events_per_s": round(n / min(in_place_times)),
        "decode_plus_core_events_per_s": round(n / (best_decode + best_core)),
        "core_seconds_runs": [round(t, 3) for t in core_times],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_core_events_per_s": 100_000,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(
        f"core: {result['core_events_per_s']:,} events/s copy-on-write, {result['core_in_place_events_per_s']:,} "
        f"in place ({n:,} events, {args.tickets:,} tickets, {commands:,} commands); decode: "
        f"{result['decode_events_per_s']:,} events/s; "
        f"peak RSS {result['peak_rss_mib']} MiB -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
