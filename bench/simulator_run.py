"""One process of ``core_bench.py``'s simulator measure: the events of a JSON Lines file decoded, then fed to the
replay simulator (``Simulator.feed`` per event, ``finish`` at the end: the deadline heap, incident windows and the
core in place -- what ``escalator simulate`` runs), best of ``--repeat`` passes; prints one JSON object.

The escalator it measures is the one on ``PYTHONPATH`` (``core_bench.py`` points it at this tree or at the "today"
worktree), so it uses only what both have: ``decode_record``, ``load_policy_text`` and ``Simulator(policy)``.

Usage: PYTHONPATH=<tree>/services python bench/simulator_run.py EVENTS.jsonl POLICY.yaml [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time

import orjson


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("events")
    parser.add_argument("policy")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from escalator.core import decode_record, load_policy_text
    from escalator.replay.simulate import Simulator

    gc.set_threshold(50_000, 20, 10)  # as core_bench.measure, the simulator and the worker
    with open(args.policy, encoding="utf-8") as f:
        policy = load_policy_text(f.read(), args.policy)
    with open(args.events, "rb") as f:
        events = [decode_record(line) for line in f]
    times, outputs = [], 0
    for _ in range(args.repeat):
        sim = Simulator(policy)
        feed = sim.feed
        outputs = 0
        t0 = time.perf_counter()
        for e in events:
            outputs += len(feed(e))
        outputs += len(sim.finish())
        times.append(time.perf_counter() - t0)
    module = sys.modules[Simulator.__module__]
    print(
        orjson.dumps(
            {
                "events": len(events),
                "outputs": outputs,
                "simulator_events_per_s": round(len(events) / min(times)),
                "simulator_compiled": not (module.__file__ or "").endswith(".py"),
            }
        ).decode()
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
