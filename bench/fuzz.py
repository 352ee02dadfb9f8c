"""Hostile input at volume (``make fuzz``): 10,000+ generated bad records in 18 families interleaved with valid paced
traffic through a real worker on a fresh embedded broker (or KAFKA_BOOTSTRAP_SERVERS). Checks, and writes to
bench/results/fuzz.json: every bad record in the DLQ with its reason and bytes, outputs equal to replay of the valid
events, the worker's peak RSS, the longest log line and that no payload reached the log. The CI-sized run is
tests/integration/test_hostile_input.py; the generator and the judge are tests/integration/hostile.py.

    .venv/bin/python bench/fuzz.py [--bad 10000] [--tickets 100] [--seed 1] [--max-bytes 65536]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services"))
sys.path.insert(0, str(ROOT))

from tests.integration.hostile import run_campaign  # noqa: E402
from tests.integration.test_worker import oracle, scenario  # noqa: E402
from tests.integration.workers import Deployment  # noqa: E402

from escalator.broker.select import resolve_broker  # noqa: E402


def passed(fig: dict[str, object]) -> bool:
    log = fig["log"]
    assert isinstance(log, dict)
    return (
        fig["bad_missing_from_dlq"] == 0
        and fig["dlq_records"] == fig["bad_sent"] == fig["bad_records"]
        and fig["dlq_wrong_reason"] == fig["dlq_value_altered"] == fig["valid_in_dlq"] == 0
        and not fig["outputs_missing"]
        and not fig["outputs_extra"]
        and not fig["outputs_differing"]
        and log["lines_quoting_a_payload"] == log["forged_lines"] == log["lines_with_control_chars"] == 0
        and fig["exit_code"] == 0
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bad", type=int, default=10_000)
    ap.add_argument("--tickets", type=int, default=100)  # spreads the bad records over ~50 s of paced traffic
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-bytes", type=int, default=65_536)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "fuzz.json")
    args = ap.parse_args()
    import os

    with tempfile.TemporaryDirectory(prefix="escalator-fuzz-") as tmp:
        choice = resolve_broker(os.environ, log_dir=Path(tmp))
        try:
            if choice.flavour == "tansu":
                from escalator.broker import tansu_compat

                tansu_compat.install()
            dep = Deployment(choice.bootstrap, choice.flavour, Path(tmp))
            dep.create_topics()
            started = time.monotonic()
            fig = run_campaign(
                dep,
                bad_count=args.bad,
                tickets=args.tickets,
                seed=args.seed,
                max_bytes=args.max_bytes,
                scenario=scenario,
                oracle=oracle,
                timeout_s=600,
            )
        finally:
            choice.close()
            keep = ROOT / "var" / "fuzz"  # the worker's log, for reading after the run
            keep.mkdir(parents=True, exist_ok=True)
            for log in Path(tmp).glob("worker*.log"):
                shutil.copy(log, keep / log.name)
    fig["passed"] = passed(fig)
    fig["wall_seconds"] = round(time.monotonic() - started, 1)
    fig["when"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    fig["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    fig["broker"] = choice.source if hasattr(choice, "source") else choice.flavour
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(fig, indent=2, sort_keys=True) + "\n")
    print(json.dumps(fig, indent=2, sort_keys=True))
    print(f"{'PASS' if fig['passed'] else 'FAIL'}: results in {args.out}")
    return 0 if fig["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
