"""Table state across a faust worker restart on the embedded broker (Tansu), with and without tansu_compat.

Scenario (one run): start a faust worker (subprocess; memory store; one table with a changelog), write N table
updates (N distinct keys, one input record each), wait until the worker holds all of them and has committed its
input offsets (so the restarted worker has nothing to re-process), stop it by PID (SIGTERM), start a new worker
with the same application id, and ask it -- once it is ready -- which updates it recovered from the changelog.
``lost`` is the number of updates missing after the restart.

The two modes differ only in ``tansu_compat.install()`` inside the worker processes; the faust configuration
(``tansu_compat.faust_overrides()``: session timeout, at-least-once) is the same in both.

    python bench/tansu_recovery_loop.py --runs 10            # both modes, 10 runs each, prints loss counts
    python bench/tansu_recovery_loop.py --runs 5 --modes patched --updates 500
    python bench/tansu_recovery_loop.py worker ...            # (internal) one worker process

Results are printed and written to var/bench/tansu_recovery_loop.json (--out). Uses ESCALATOR_BOOTSTRAP_SERVERS /
--bootstrap when given (it must be a Tansu broker for the comparison to mean anything); otherwise starts the
embedded broker and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))

PARTITIONS = 4
READY_RE = re.compile(rb"\[\^Worker\]: Ready")
#: mode -> the tansu_compat workarounds installed in the worker processes
MODES = {
    "unpatched": "none",
    "patched": "all",
    "no-end-offsets": "fetch_wait,leave_group",
    "no-fetch-wait": "end_offsets,leave_group",
    "no-leave-group": "end_offsets,fetch_wait",
}
ASKS = 10  # control round trips timed after the restart


# --- the worker process ---------------------------------------------------------------------------------------


def worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="tansu_recovery_loop.py worker")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--compat", default="all", help="none, all, or a comma list of tansu_compat.WORKAROUNDS")
    parser.add_argument("--session-timeout", type=float, default=None)
    args = parser.parse_args(argv)

    import faust

    from escalator.broker import tansu_compat
    from escalator.settings import Settings

    settings = Settings(broker_flavour="tansu")
    if args.compat != "none":
        only = None if args.compat == "all" else [p for p in args.compat.split(",") if p]
        tansu_compat.install(settings, only=only)
    conf = {
        "broker": f"kafka://{args.bootstrap}",
        "store": "memory://",
        "topic_partitions": PARTITIONS,
        "table_standby_replicas": 0,
        "broker_commit_interval": 0.2,
        "autodiscover": False,
        "web_enabled": False,
        "web_host": "127.0.0.1",
        "web_bind": "127.0.0.1",
        **tansu_compat.faust_overrides(settings),
    }
    if args.session_timeout is not None:  # measurement only: bypasses the cap in faust_overrides
        conf["broker_session_timeout"] = args.session_timeout
        conf["broker_rebalance_timeout"] = args.session_timeout
        conf["broker_request_timeout"] = max(90.0, args.session_timeout * 2)
    app = faust.App(args.app_id, **conf)
    updates = app.topic(f"{args.app_id}-updates", key_type=str, value_type=int, partitions=PARTITIONS)
    control = app.topic(f"{args.app_id}-ctl", value_type=bytes, value_serializer="raw", partitions=1)
    replies = app.topic(f"{args.app_id}-reply", value_type=bytes, value_serializer="raw", partitions=1)
    table = app.Table("state", default=None, key_type=str, value_type=int, partitions=PARTITIONS)
    processed = {"n": 0}

    @app.agent(updates)
    async def apply_updates(stream: Any) -> None:
        async for key, value in stream.items():
            table[key] = value
            processed["n"] += 1

    @app.agent(control)
    async def answer(stream: Any) -> None:
        async for raw in stream:
            request = json.loads(raw)
            expected = int(request["expect"])
            missing = [i for i in range(expected) if table.get(key_of(i)) != i]
            reply = {
                "nonce": request["nonce"],
                "pid": os.getpid(),
                "missing": missing,
                "processed_since_start": processed["n"],
            }
            await replies.send(value=json.dumps(reply).encode())

    worker = faust.Worker(app, loglevel="INFO", quiet=True)
    worker.execute_from_commandline()
    return 0


def key_of(i: int) -> str:
    return f"k{i:06d}"


# --- the driver -----------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    mode: str
    updates: int
    lost: int
    missing_sample: list[int]
    first_ready_s: float
    restart_ready_s: float
    stop_s: float
    processed_after_restart: int
    rtt_ms_median: float
    app_id: str


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    started_at: float
    ready_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def is_ready(self) -> bool:
        if self.ready_at is None and READY_RE.search(self.log_path.read_bytes()):
            self.ready_at = time.monotonic()
        return self.ready_at is not None

    def stop(self, timeout: float = 20.0) -> float:
        """SIGTERM by PID, SIGKILL after ``timeout``; returns the seconds it took."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        return time.monotonic() - t0


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def start_worker(
    bootstrap: str, app_id: str, compat: str, log_dir: Path, tag: str, session_timeout: float | None = None
) -> WorkerProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{app_id}-{tag}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "worker", "--bootstrap", bootstrap, "--app-id", app_id]
    cmd += ["--compat", compat]
    if session_timeout is not None:
        cmd += ["--session-timeout", str(session_timeout)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESCALATOR_", "KAFKA_"))}
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=str(ROOT),
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
        )
    return WorkerProcess(proc=proc, log_path=log_path, started_at=time.monotonic())


async def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.05, alive: WorkerProcess | None = None
) -> Any:
    """Poll ``condition`` (sync or async) until truthy; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if alive is not None and alive.proc.poll() is not None:
            raise RuntimeError(f"worker exited with {alive.proc.returncode} while waiting for {what}; {alive.log_path}")
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


class Driver:
    """Producer for updates and control requests, and a reader of the replies (one topic partition, from 0)."""

    def __init__(self, bootstrap: str, app_id: str) -> None:
        self.bootstrap = bootstrap
        self.app_id = app_id
        self.replies: dict[str, dict[str, Any]] = {}

    async def __aenter__(self) -> Driver:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [
                    NewTopic(f"{self.app_id}-updates", PARTITIONS, 1),
                    NewTopic(f"{self.app_id}-ctl", 1, 1),
                    NewTopic(f"{self.app_id}-reply", 1, 1),
                ]
            )
        finally:
            await admin.close()
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=5)
        await self.producer.start()
        self.reply_tp = TopicPartition(f"{self.app_id}-reply", 0)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, fetch_max_wait_ms=50)
        await self.consumer.start()
        self.consumer.assign([self.reply_tp])
        self.consumer.seek(self.reply_tp, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.consumer.stop()

    async def write_updates(self, n: int) -> None:
        futures = [
            await self.producer.send(f"{self.app_id}-updates", key=key_of(i).encode(), value=b"%d" % i)
            for i in range(n)
        ]
        await asyncio.gather(*futures)

    async def ask(self, expect: int, timeout: float, alive: WorkerProcess | None = None) -> dict[str, Any]:
        """Send a control request and wait for the worker's answer (it answers only once it is ready)."""
        nonce = uuid.uuid4().hex
        await self.producer.send_and_wait(f"{self.app_id}-ctl", json.dumps({"nonce": nonce, "expect": expect}).encode())

        async def answered() -> dict[str, Any] | None:
            batch = await self.consumer.getmany(self.reply_tp, timeout_ms=100)
            for records in batch.values():
                for record in records:
                    reply = json.loads(record.value)
                    self.replies[reply["nonce"]] = reply
            return self.replies.get(nonce)

        result: dict[str, Any] = await wait_for(answered, timeout, f"an answer to {nonce}", interval=0, alive=alive)
        return result

    async def committed_to_end(self, group: str) -> bool:
        """True when the group's committed offsets on the updates topic equal the number of records written."""
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.structs import TopicPartition

        tps = [TopicPartition(f"{self.app_id}-updates", p) for p in range(PARTITIONS)]
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)  # name the partitions
        finally:
            await admin.close()
        total = sum(max(meta.offset, 0) for meta in committed.values())
        return total >= self.expected_total

    expected_total = 0

    async def delete_topics(self) -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            names = [f"{self.app_id}-{s}" for s in ("updates", "ctl", "reply", "state-changelog")]
            with contextlib.suppress(Exception):
                await admin.delete_topics(names)
        finally:
            await admin.close()


async def run_once(
    bootstrap: str,
    mode: str,
    *,
    updates: int,
    log_dir: Path,
    timeout: float = 60.0,
    compat: str | None = None,
    session_timeout: float | None = None,
) -> RunResult:
    """One restart scenario; ``mode`` is ``unpatched`` or ``patched`` (or any label when ``compat`` is given)."""
    compat = compat if compat is not None else MODES[mode]
    app_id = f"recovery-{mode}-{uuid.uuid4().hex[:8]}"
    workers: list[WorkerProcess] = []
    async with Driver(bootstrap, app_id) as driver:
        try:
            first = start_worker(bootstrap, app_id, compat, log_dir, "first", session_timeout)
            workers.append(first)
            await wait_for(first.is_ready, timeout, "the first worker to be ready", alive=first)
            first_ready = (first.ready_at or 0) - first.started_at
            await driver.write_updates(updates)
            driver.expected_total = updates

            async def all_applied() -> bool:
                reply = await driver.ask(updates, timeout, alive=first)
                return not reply["missing"]

            await wait_for(all_applied, timeout, "the first worker to hold every update", alive=first)
            await wait_for(
                lambda: driver.committed_to_end(app_id), timeout, "input offsets to be committed", alive=first
            )
            stop_s = first.stop()
            second = start_worker(bootstrap, app_id, compat, log_dir, "second", session_timeout)
            workers.append(second)
            await wait_for(second.is_ready, timeout, "the restarted worker to be ready", alive=second)
            restart_ready = (second.ready_at or 0) - second.started_at
            reply = await driver.ask(updates, timeout, alive=second)
            rtts = []
            for _ in range(ASKS):  # control topic -> worker -> reply topic -> driver
                t0 = time.monotonic()
                await driver.ask(0, timeout, alive=second)
                rtts.append((time.monotonic() - t0) * 1000)
            return RunResult(
                mode=mode,
                updates=updates,
                lost=len(reply["missing"]),
                missing_sample=reply["missing"][:10],
                first_ready_s=round(first_ready, 2),
                restart_ready_s=round(restart_ready, 2),
                stop_s=round(stop_s, 2),
                processed_after_restart=int(reply["processed_since_start"]),
                rtt_ms_median=round(statistics.median(rtts), 1),
                app_id=app_id,
            )
        finally:
            for worker in workers:
                worker.stop()
            await driver.delete_topics()


def summarize(results: list[RunResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in dict.fromkeys(r.mode for r in results):
        rs = [r for r in results if r.mode == mode]
        out[mode] = {
            "runs": len(rs),
            "runs_with_loss": sum(1 for r in rs if r.lost),
            "lost_per_run": [r.lost for r in rs],
            "updates_per_run": rs[0].updates,
            "first_ready_s_median": round(statistics.median(r.first_ready_s for r in rs), 2),
            "restart_ready_s_median": round(statistics.median(r.restart_ready_s for r in rs), 2),
            "restart_ready_s_max": max(r.restart_ready_s for r in rs),
            "stop_s_median": round(statistics.median(r.stop_s for r in rs), 2),
            "rtt_ms_median": round(statistics.median(r.rtt_ms_median for r in rs), 1),
            "processed_after_restart": [r.processed_after_restart for r in rs],
        }
    return out


async def loop(
    bootstrap: str, modes: Sequence[str], runs: int, updates: int, log_dir: Path, session_timeout: float | None
) -> list[RunResult]:
    results: list[RunResult] = []
    for i in range(runs):
        for mode in modes:  # interleaved, so both modes see the same machine load
            result = await run_once(bootstrap, mode, updates=updates, log_dir=log_dir, session_timeout=session_timeout)
            results.append(result)
            print(
                f"run {i + 1}/{runs} {mode:9s} lost={result.lost:4d}/{updates} "
                f"ready={result.first_ready_s:.2f}s restart_ready={result.restart_ready_s:.2f}s "
                f"stop={result.stop_s:.2f}s rtt={result.rtt_ms_median:.0f}ms missing={result.missing_sample}",
                flush=True,
            )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["worker"]:
        return worker_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--updates", type=int, default=200)
    parser.add_argument("--modes", default="unpatched,patched")
    parser.add_argument(
        "--session-timeout", type=float, default=None, help="override the capped session timeout (measurement only)"
    )
    parser.add_argument("--bootstrap", default=os.environ.get("ESCALATOR_BOOTSTRAP_SERVERS"))
    parser.add_argument("--log-dir", type=Path, default=ROOT / "var" / "bench" / "tansu_recovery_loop")
    parser.add_argument("--out", type=Path, default=ROOT / "var" / "bench" / "tansu_recovery_loop.json")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}; choose from {list(MODES)}")

    from escalator.broker.embedded import EmbeddedBroker

    broker: EmbeddedBroker | None = None
    bootstrap = args.bootstrap
    if not bootstrap:
        broker = EmbeddedBroker(log_dir=args.log_dir).start()
        bootstrap = broker.bootstrap
        print(f"embedded broker pid={broker.pid} on {bootstrap}", flush=True)
    try:
        t0 = time.monotonic()
        results = asyncio.run(loop(bootstrap, modes, args.runs, args.updates, args.log_dir, args.session_timeout))
        summary = summarize(results)
    finally:
        if broker is not None:
            broker.stop()
    report = {
        "scenario": "write N distinct table updates, stop the worker (SIGTERM), restart it, count missing updates",
        "updates": args.updates,
        "session_timeout_override": args.session_timeout,
        "modes": {m: MODES[m] for m in modes},
        "partitions": PARTITIONS,
        "elapsed_s": round(time.monotonic() - t0, 1),
        "summary": summary,
        "runs": [asdict(r) for r in results],
    }
    print(json.dumps({"summary": summary}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
