"""Benchmark: ``escalator simulate`` end to end on the full ServiceNow incident log, on one core.

1. Import the log (``escalator import servicenow`` in-process: CSV -> v1 events, time-ordered) into a temporary
   JSON Lines file; rows/s and events/s of the importer are reported too.
2. Run the simulation in a fresh child process per repetition, exactly what ``escalator simulate --policy P
   --events FILE`` does after argument parsing: read the file line by line, decode and validate every event
   (orjson + pydantic, the v1 contract), run the core in event time with the deadline heap and incident windows,
   build the summary. A second series also writes every emitted event (``--out``). The child reports wall time
   and its peak RSS (``ru_maxrss``), measured apart from the importer.

Data: "Incident management process enriched event log", UCI Machine Learning Repository (Amaral, Fantinato,
Reijers, Peres, 2018), CC BY 4.0; expected at ../shared/datasets/ (override with --log). Without it the benchmark
is skipped (exit status 0, nothing written).

Usage: python bench/simulate_bench.py [--log FILE] [--policy P.yaml] [--repeat N] [--out bench/results/simulate.json]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

DEFAULT_LOG = ROOT.parent / "shared" / "datasets" / "servicenow_incident_event_log.csv.gz"


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM; ``ru_maxrss`` would include the parent's, as Linux keeps it across
    fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(events: str, policy_path: str, write_out: bool) -> int:
    """One measured run (in its own process, so peak RSS belongs to the simulation alone)."""
    from escalator.policy_file import load_policy_file
    from escalator.replay.run import run_lines
    from escalator.replay.sources import LineSource

    policy = load_policy_file(policy_path)
    rss_before = peak_rss_mib()
    out = open(os.devnull, "wb", buffering=1 << 20) if write_out else None  # noqa: SIM115
    t0 = time.perf_counter()
    with LineSource(events) as source:
        result = run_lines(source, policy, out=out)
    summary = result.summary.to_dict()
    seconds = time.perf_counter() - t0
    if out is not None:
        out.close()
    print(
        orjson.dumps(
            {
                "seconds": seconds,
                "lines": summary["input"]["lines"],
                "events": summary["input"]["events"],
                "rejected": summary["input"]["rejected"],
                "tickets": summary["tickets"],
                "outputs": sum(summary["outputs"].values()),
                "outputs_written": result.outputs_written,
                "resolution_compliance_pct": summary["metrics"].get("resolution", {}).get("compliance_pct"),
                "rss_before_mib": rss_before,
                "peak_rss_mib": peak_rss_mib(),
            }
        ).decode()
    )
    return 0


def phases(events: str, policy_path: str) -> int:
    """Decode alone, then the simulator alone (on the decoded events): where the time goes."""
    from escalator.core import decode_record
    from escalator.policy_file import load_policy_file
    from escalator.replay.simulate import Simulator

    policy = load_policy_file(policy_path)
    with open(events, "rb") as fh:
        lines = fh.readlines()
    gc.set_threshold(50_000, 20, 10)  # as run_lines does
    t0 = time.perf_counter()
    decoded = [decode_record(line) for line in lines]
    t1 = time.perf_counter()
    sim = Simulator(policy)
    for e in decoded:
        sim.feed(e)
    sim.finish()
    t2 = time.perf_counter()
    print(orjson.dumps({"events": len(decoded), "decode_seconds": t1 - t0, "core_seconds": t2 - t1}).decode())
    return 0


def measure(events: str, policy: str, write_out: bool, repeat: int) -> list[dict[str, float]]:
    runs = []
    for _ in range(repeat):
        cmd = [sys.executable, __file__, "--child", events, policy] + (["--write-out"] if write_out else [])
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        runs.append(orjson.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--log", default=str(DEFAULT_LOG))
    parser.add_argument("--policy", default=str(ROOT / "examples" / "servicenow-policy.yaml"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "simulate.json"))
    parser.add_argument("--child", nargs=2, metavar=("EVENTS", "POLICY"), help=argparse.SUPPRESS)
    parser.add_argument("--write-out", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--phases", nargs=2, metavar=("EVENTS", "POLICY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], args.write_out)
    if args.phases:
        return phases(args.phases[0], args.phases[1])

    log = Path(args.log)
    if not log.exists():
        print(f"simulate bench skipped: {log} not found (the shared ServiceNow log; see docs/replay.md)")
        return 0
    from escalator.replay.importers.common import EventWriter
    from escalator.replay.importers.servicenow import import_servicenow

    with tempfile.TemporaryDirectory(prefix="escalator-bench-") as tmp:
        events = str(Path(tmp) / "servicenow.jsonl")
        t0 = time.perf_counter()
        with open(events, "wb", buffering=1 << 20) as fh:
            writer = EventWriter(fh)
            stats = import_servicenow(str(log), writer)
            writer.close()
        import_seconds = time.perf_counter() - t0
        plain = measure(events, args.policy, False, args.repeat)
        with_out = measure(events, args.policy, True, args.repeat)
        split = []
        for _ in range(args.repeat):
            done = subprocess.run(
                [sys.executable, __file__, "--phases", events, args.policy], check=True, capture_output=True, text=True
            )
            split.append(orjson.loads(done.stdout.strip().splitlines()[-1]))

    def rates(runs: list[dict[str, float]]) -> list[float]:
        return [r["events"] / r["seconds"] for r in runs]

    first = plain[0]
    result = {
        "benchmark": "simulate",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "data": "UCI Incident management process enriched event log (Amaral et al., 2018), CC BY 4.0",
        "policy": str(Path(args.policy).relative_to(ROOT)) if Path(args.policy).is_relative_to(ROOT) else args.policy,
        "csv_rows": stats.rows,
        "lines": first["lines"],
        "events": first["events"],
        "rejected": first["rejected"],
        "tickets": first["tickets"],
        "outputs": first["outputs"],
        "resolution_compliance_pct": first["resolution_compliance_pct"],
        "import_seconds": round(import_seconds, 3),
        "import_rows_per_s": round(stats.rows / import_seconds),
        "import_events_per_s": round(stats.events / import_seconds),
        "simulate_events_per_s_best": round(max(rates(plain))),
        "simulate_events_per_s_median": round(statistics.median(rates(plain))),
        "simulate_seconds_runs": [round(r["seconds"], 3) for r in plain],
        "simulate_with_out_events_per_s_best": round(max(rates(with_out))),
        "simulate_with_out_events_per_s_median": round(statistics.median(rates(with_out))),
        "decode_only_events_per_s_median": round(statistics.median(r["events"] / r["decode_seconds"] for r in split)),
        "simulator_only_events_per_s_median": round(statistics.median(r["events"] / r["core_seconds"] for r in split)),
        "peak_rss_mib": round(max(r["peak_rss_mib"] for r in plain), 1),
        "peak_rss_with_out_mib": round(max(r["peak_rss_mib"] for r in with_out), 1),
        "rss_before_run_mib": round(min(r["rss_before_mib"] for r in plain), 1),
        "target_events_per_s": 50_000,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    print(
        f"simulate (ServiceNow log, {result['events']:,} events, {result['tickets']:,} tickets, one core): "
        f"{result['simulate_events_per_s_median']:,} events/s median, {result['simulate_events_per_s_best']:,} best "
        f"(with --out: {result['simulate_with_out_events_per_s_median']:,} median); peak RSS "
        f"{result['peak_rss_mib']} MiB (of which {result['rss_before_run_mib']} MiB before the run); alone: decode "
        f"{result['decode_only_events_per_s_median']:,}/s, simulator "
        f"{result['simulator_only_events_per_s_median']:,}/s; import {result['import_rows_per_s']:,} rows/s -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
