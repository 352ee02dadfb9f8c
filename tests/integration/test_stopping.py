"""Stopping is part of reliability (issue 13, 1b).

* The children of ``escalator dev`` (worker, tail, notification relay, demo) die with it however it dies: SIGKILL
  (a parent-death signal), and Ctrl-C after its stdout/stderr pipe broke (``make run | tee`` with tee gone).
* A worker whose broker is gone -- killed, or frozen so that every request hangs -- exits within
  ``ESCALATOR_SHUTDOWN_GRACE_SECONDS`` of a SIGTERM; a clean stop exits 0.

Every process is started and stopped by PID; waits are conditions with deadlines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escalator.broker.embedded import EmbeddedBroker
from tests.integration.workers import ROOT, Deployment, dev_web_port, event_record, produce
from tests.waiting import wait_until

pytestmark = pytest.mark.broker

GRACE_S = 4.0


def children_of(pid: int) -> list[int]:
    """PIDs whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(stat.parent.name))
    return out


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def kill_left_over(pids: list[int]) -> None:
    for pid in pids:
        if running(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each child leads its own process group


def dev_command(tmp_path: Path, web_port: int) -> list[str]:
    return [sys.executable, "-m", "escalator", "dev", "--run-dir", str(tmp_path / "run"), "--web-port", str(web_port)]


@contextlib.contextmanager
def dev(kafka: Any, tmp_path: Path, **streams: Any) -> Iterator[subprocess.Popen[bytes]]:
    """``escalator dev`` on the test broker, its children listed and stopped by PID at the end whatever happened."""
    env = {**os.environ, **kafka.env(), "ESCALATOR_APP_ID": f"dev{time.monotonic_ns() % 10**9}"}
    proc = subprocess.Popen(
        dev_command(tmp_path, dev_web_port()),
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        **streams,
    )
    seen: set[int] = set()
    try:
        yield proc
    finally:
        seen.update(children_of(proc.pid))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        kill_left_over(sorted(seen))


def wait_for_children(proc: subprocess.Popen[bytes], count: int) -> list[int]:
    def started() -> list[int]:
        assert proc.poll() is None, f"escalator dev exited with {proc.returncode}"
        kids = children_of(proc.pid)
        return kids if len(kids) >= count else []

    return wait_until(started, 120, f"escalator dev to start {count} children", interval=0.2)


def test_dev_names_a_taken_port_and_starts_nothing(kafka: Any, tmp_path: Path) -> None:
    """dev serves four consecutive ports; one taken (here the relay's SMTP sink, --web-port + 3) is one clear error
    before any process starts -- not a relay that dies a minute in and takes the demo down with it."""
    first = dev_web_port()
    env = {**os.environ, **kafka.env()}
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", first + 3))
        holder.listen()
        done = subprocess.run(
            dev_command(tmp_path, first),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{first + 3} (the relay's local SMTP sink, --web-port + 3)" in done.stderr, done.stderr
    assert "nothing was started" in done.stderr and f"{first} (" not in done.stderr, done.stderr
    assert "broker" not in done.stdout and not (tmp_path / "run" / "worker.log").exists(), done.stdout


def test_the_children_of_dev_die_when_it_is_killed(kafka: Any, tmp_path: Path) -> None:
    with dev(kafka, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        kids = wait_for_children(proc, 4)  # worker, tail, relay, demo
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        try:
            wait_until(
                lambda: not [p for p in kids if running(p)], GRACE_S + 20, "every child of the killed escalator dev"
            )
        finally:
            kill_left_over(kids)


def test_dev_stops_its_children_when_its_output_pipe_is_broken(kafka: Any, tmp_path: Path) -> None:
    """``make run | tee run.log``, then Ctrl-C: tee dies first, escalator dev gets SIGINT with nowhere to write."""
    read_end, write_end = os.pipe()
    try:
        with dev(kafka, tmp_path, stdout=write_end, stderr=write_end) as proc:
            os.close(write_end)
            write_end = -1
            kids = wait_for_children(proc, 4)
            # Ctrl-C reaches tee and escalator dev together; tee is gone at once. (SIGINT first: closing the pipe
            # first lets a child die of it before the signal lands, and dev then stops everything with exit 1.)
            os.kill(proc.pid, signal.SIGINT)
            os.close(read_end)
            read_end = -1
            try:
                wait_until(lambda: proc.poll() is not None, 60, "escalator dev to stop")
                wait_until(lambda: not [p for p in kids if running(p)], 30, "every child of escalator dev")
            finally:
                kill_left_over(kids)
            assert proc.returncode == 130
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)


@pytest.mark.parametrize("how", ["killed", "frozen"])
def test_a_worker_whose_broker_is_gone_stops_within_its_grace_period(how: str, tmp_path: Path) -> None:
    """The broker dies (or hangs: SIGSTOP, every request waits) under a worker that has batches behind it; SIGTERM
    ends the worker within ESCALATOR_SHUTDOWN_GRACE_SECONDS (exit 0 if it had nothing left to deliver, 4 if it had
    to give up on it -- never hanging until a supervisor's SIGKILL)."""
    with EmbeddedBroker(log_dir=tmp_path) as broker:
        assert broker.pid is not None
        dep = Deployment(broker.bootstrap, "tansu", tmp_path)
        dep.create_topics()
        worker = dep.worker(0, ESCALATOR_SHUTDOWN_GRACE_SECONDS=str(GRACE_S)).start()
        try:
            worker.wait_ready()
            now = int(time.time() * 1000)
            docs = [created(f"g{i}", now) for i in range(50)]
            produce(broker.bootstrap, dep.topics["input"], [event_record(d) for d in docs])
            wait_until(lambda: b"escalator_events_consumed_total" in worker.get("/metrics")[1], 30, "events consumed")
            os.kill(broker.pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
            wait_until(lambda: worker.get("/readyz")[0] in (200, 503), 10, "the worker to answer")
            started = time.monotonic()
            os.killpg(worker.pid, signal.SIGTERM)
            assert worker.proc is not None
            code = worker.proc.wait(timeout=GRACE_S + 30)
            took = time.monotonic() - started
            assert took <= GRACE_S + 1.0, f"took {took:.1f}s to stop (grace {GRACE_S}s):\n{worker.log_tail()}"
            assert code in (0, 4), worker.log_tail()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(broker.pid, signal.SIGCONT)
            worker.stop(signal.SIGKILL)


def test_a_clean_stop_exits_zero_well_within_the_grace_period(kafka: Any, tmp_path: Path) -> None:
    dep = Deployment(kafka.bootstrap, kafka.flavour, tmp_path)
    dep.create_topics()
    worker = dep.worker(0, ESCALATOR_SHUTDOWN_GRACE_SECONDS=str(GRACE_S)).start()
    try:
        worker.wait_ready()
        produce(kafka.bootstrap, dep.topics["input"], [event_record(created("c0", int(time.time() * 1000)))])
        started = time.monotonic()
        assert worker.stop(signal.SIGTERM) == 0, worker.log_tail()
        assert time.monotonic() - started < GRACE_S
        assert "Traceback" not in worker.log_text()
    finally:
        worker.stop(signal.SIGKILL)


def created(ticket: str, at_ms: int) -> dict[str, Any]:
    from escalator.core import format_ms

    return {
        "specversion": "1.0",
        "id": f"{ticket}-0",
        "source": "it",
        "type": "ticket.created",
        "time": format_ms(at_ms),
        "subject": ticket,
        "data": {"priority": "high", "requester": {"id": "r"}},
    }
