"""Benchmark: the pure core's single-core throughput on generated, realistic ticket lifecycles, both builds, against
the wire.

In one run:
* for the compiled core and for the plain Python one (``ESCALATOR_PURE_PYTHON=1``), each in its own process:
  - decode: bytes -> validated Event (orjson + pydantic), events/s;
  - core: apply() per event plus advance() for every deadline that falls due (a heap of next deadlines, exactly what
    the simulator and the worker do), events/s, copy-on-write and in place, with both example policies in play
    (24x7 and Amsterdam office hours with holidays);
* the raw aiokafka consume -> produce loop of ``bench/service_bench.py`` on an embedded broker (or
  KAFKA_BOOTSTRAP_SERVERS), the same number of events: what decode + core have to keep up with.

* "today": the core as it was when issue 14 was filed (the last commit before the compiled core, plain Python, with
  its own benchmark script, checked out in a temporary git worktree), so "N x today" is measured in the same
  sitting (``--today ''`` skips it, e.g. outside a git clone).

Usage: python bench/core_bench.py [--tickets N] [--no-wire] [--today REV] [--out bench/results/core.json]
"""

from __future__ import annotations

import argparse
import heapq
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

from escalator.core import advance, apply, decode_record, load_policy_text, next_deadline  # noqa: E402
from escalator.synth import lifecycle_events  # noqa: E402


def measure(tickets: int, repeat: int) -> dict[str, object]:
    """Decode and core throughput of the core this process runs (with the collector thresholds the simulator and
    the worker use: a young-generation collection every 50,000 allocations)."""
    import gc

    from escalator.build_info import core_build

    gc.set_threshold(50_000, 20, 10)

    policy = load_policy_text((ROOT / "examples" / "policy.yaml").read_text(), "examples/policy.yaml")
    raw = [orjson.dumps(e) for e in lifecycle_events(tickets, seed=11)]
    n = len(raw)

    decode_times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        events = [decode_record(r) for r in raw]
        decode_times.append(time.perf_counter() - t0)

    def run_core(in_place: bool, policy: object = policy) -> tuple[float, int]:
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

    # the SLA model v2 example: SLA + an OLA per group + a regulatory clock, catch-up, a step before the target
    v2 = load_policy_text((ROOT / "examples" / "ola-policy.yaml").read_text(), "examples/ola-policy.yaml")
    core_times = []
    in_place_times = []
    v2_times = []
    commands = 0
    for _ in range(repeat):
        elapsed, commands = run_core(in_place=False)
        core_times.append(elapsed)
        in_place_times.append(run_core(in_place=True)[0])
        v2_times.append(run_core(in_place=True, policy=v2)[0])

    best_decode, best_core = min(decode_times), min(core_times)
    return {
        "build": core_build(),
        "tickets": tickets,
        "events": n,
        "commands": commands,
        "decode_events_per_s": round(n / best_decode),
        "core_events_per_s": round(n / best_core),
        "core_in_place_events_per_s": round(n / min(in_place_times)),
        "core_in_place_agreements_events_per_s": round(n / min(v2_times)),
        "decode_plus_core_events_per_s": round(n / (best_decode + best_core)),
        "core_seconds_runs": [round(t, 3) for t in core_times],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def child(build: str, tickets: int, repeat: int) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "ESCALATOR_PURE_PYTHON"}
    if build == "pure-python":
        env["ESCALATOR_PURE_PYTHON"] = "1"
    cmd = [sys.executable, __file__, "--child", "--tickets", str(tickets), "--repeat", str(repeat)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=1800)
    return dict(orjson.loads(done.stdout.strip().splitlines()[-1]))


#: The last commit before the compiled core (issue 14 was filed against this core).
TODAY_REV = "dd57097^"


def today(rev: str, tickets: int, repeat: int) -> dict[str, object] | None:
    """The issue's "today": ``rev``'s own core benchmark in a temporary worktree (plain Python), or ``None`` when
    this is not a git clone with that commit."""
    with tempfile.TemporaryDirectory(prefix="core-bench-today-") as tmp:
        tree = Path(tmp) / "tree"
        added = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
            check=False,
            capture_output=True,
            text=True,
        )
        if added.returncode != 0:
            print(f"(no 'today' baseline: {added.stderr.strip() or 'git worktree failed'})")
            return None
        try:
            env = {**os.environ, "PYTHONPATH": str(tree / "services")}
            out = Path(tmp) / "today.json"
            cmd = [sys.executable, str(tree / "bench" / "core_bench.py"), "--tickets", str(tickets)]
            subprocess.run([*cmd, "--repeat", str(repeat), "--out", str(out)], env=env, check=True, timeout=1800)
            return dict(orjson.loads(out.read_bytes()))
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False, capture_output=True
            )


def raw_loop(events: int, tickets: int) -> float:
    """The raw aiokafka consume -> produce loop on the same number of records (events/s, best of 3)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import uuid

    import service_bench as sb

    from escalator.broker.select import resolve_broker

    records = sb.synth_records(tickets)[:events]
    rates = []
    with tempfile.TemporaryDirectory(prefix="core-bench-") as tmp, resolve_broker(log_dir=tmp) as broker:
        for _ in range(3):
            topic, out = f"cb-{uuid.uuid4().hex[:8]}", f"cbo-{uuid.uuid4().hex[:8]}"
            sb.create_topics(broker.bootstrap, [topic, out])
            try:
                sb.produce(broker.bootstrap, topic, records)
                res = sb.run_child("raw-aiokafka", broker.bootstrap, topic, out, len(records))
                rates.append(res["events"] / res["seconds"])
            finally:
                sb.delete_topics(broker.bootstrap, [topic, out])
    return max(rates)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-wire", action="store_true", help="skip the raw aiokafka loop (no broker)")
    parser.add_argument("--today", default=TODAY_REV, help="the baseline commit ('' to skip)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "core.json"))
    args = parser.parse_args()
    if args.child:
        print(orjson.dumps(measure(args.tickets, args.repeat)).decode(), flush=True)
        return 0
    builds = {b: child(b, args.tickets, args.repeat) for b in ("pure-python", "compiled")}
    compiled, plain = builds["compiled"], builds["pure-python"]
    result: dict[str, object] = {
        "benchmark": "core",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "builds": builds,
        "compiled_over_pure": {
            k: round(int(compiled[k]) / int(plain[k]), 2)  # type: ignore[call-overload]
            for k in ("decode_events_per_s", "core_events_per_s", "core_in_place_events_per_s")
        },
    }
    for b, r in builds.items():
        print(
            f"{b:12s} core {r['core_events_per_s']:,} events/s copy-on-write, {r['core_in_place_events_per_s']:,} in "
            f"place ({r['core_in_place_agreements_events_per_s']:,} with examples/ola-policy.yaml); decode "
            f"{r['decode_events_per_s']:,}; decode+core {r['decode_plus_core_events_per_s']:,} "
            f"({r['events']:,} events, {r['tickets']:,} tickets)"
        )
    if compiled["build"] != "compiled":
        print("(no compiled core is installed: both runs used the plain modules)")
    base = today(args.today, args.tickets, args.repeat) if args.today else None
    if base is not None:
        result["today"] = {"rev": args.today, **base}
        result["compiled_over_today"] = {
            k: round(int(compiled[k]) / int(base[k]), 2)  # type: ignore[call-overload]
            for k in ("decode_events_per_s", "core_events_per_s", "core_in_place_events_per_s")
        }
        print(
            f"today ({args.today}, plain): core {base['core_in_place_events_per_s']:,} in place; compiled now: "
            f"{result['compiled_over_today']}"
        )
    if not args.no_wire:
        raw = raw_loop(int(compiled["events"]), args.tickets)  # type: ignore[call-overload]
        result["raw_aiokafka_events_per_s"] = round(raw)
        result["decode_plus_core_over_raw"] = round(int(compiled["decode_plus_core_events_per_s"]) / raw, 2)  # type: ignore[call-overload]
        ratio = result["decode_plus_core_over_raw"]
        print(f"raw aiokafka consume->produce loop: {raw:,.0f} events/s; decode+core / raw: {ratio}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
