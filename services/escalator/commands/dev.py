"""Run everything for a first look (``make run``): broker, topics, worker, demo traffic and a live tail.

The broker comes from ESCALATOR_BOOTSTRAP_SERVERS / KAFKA_BOOTSTRAP_SERVERS when set; otherwise the embedded
development broker (Tansu) is started. Ctrl-C stops every process this command started, by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from ..broker.select import BrokerChoice

__all__ = ["PORT_ROLES", "busy_ports", "register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", default="examples/demo-policy.yaml", help="policy file for the worker")
    parser.add_argument(
        "--web-port",
        type=int,
        default=int(os.environ.get("ESCALATOR_WEB_PORT", "6066")),
        help="the worker's HTTP port; the next three serve the relay's metrics and its local HTTP and SMTP sinks "
        "(default 6066: 6066-6069, all on 127.0.0.1)",
    )
    parser.add_argument(
        "--duration", type=float, default=None, help="stop after this many seconds (default: run until Ctrl-C)"
    )
    parser.add_argument("--run-dir", default="var/run", help="where logs and worker state go (default var/run)")
    parser.add_argument("--no-demo", action="store_true", help="do not produce demo traffic")


def _wait_ready(port: int, worker: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{port}/readyz"
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"the worker exited with code {worker.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling interval
    raise RuntimeError(f"the worker was not ready within {timeout:.0f}s (see {log})")


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` (Linux) that has the child sent SIGTERM when this process dies, however it dies (SIGKILL,
    a broken pipe, a crash): children never outlive ``escalator dev``. A parent already gone by then (it died
    between the fork and the ``prctl``) is handled too. ``None`` elsewhere."""
    if not sys.platform.startswith("linux"):
        return None

    def preexec() -> None:  # pragma: no cover - runs in the child between fork and exec
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _child(command: list[str], env: dict[str, str], **streams: Any) -> subprocess.Popen[bytes]:
    """``escalator COMMAND`` in its own session and process group (a terminal's Ctrl-C reaches only this process,
    which stops it by PID), dying with this process."""
    return subprocess.Popen(
        [sys.executable, "-m", "escalator", *command],
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_die_with_parent(os.getpid()),  # noqa: PLW1509 - no threads run in this process
        **streams,
    )


def _spawn(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """``escalator COMMAND`` as a child (:func:`_child`), output appended to ``log_path``."""
    with log_path.open("ab") as log:
        return _child(command, env, stdout=log, stderr=subprocess.STDOUT)


def _say(text: str, stream: TextIO | None = None) -> None:
    """Print, unless the terminal or pipe is gone (``make run | tee`` after tee died): nothing printed may keep
    this process from stopping its children."""
    stream = stream or sys.stdout
    try:
        print(text, file=stream, flush=True)
    except (OSError, ValueError):
        _silence(stream)


def _silence(stream: TextIO) -> None:
    """Point a broken stream at /dev/null (what is still buffered would fail again at exit, as exit status 120)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _stop(proc: subprocess.Popen[bytes] | None, name: str, timeout: float = 20.0) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        _say(f"{name} did not stop in {timeout:.0f}s: killing it", sys.stderr)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


#: What each port of ``dev`` serves, by its offset from ``--web-port`` (see :func:`_spawn_relay`).
PORT_ROLES = (
    "the worker's HTTP endpoints",
    "the notify relay's metrics",
    "the relay's local HTTP sink (Slack, webhooks, PagerDuty)",
    "the relay's local SMTP sink",
)


def busy_ports(web_port: int, host: str = "127.0.0.1") -> list[str]:
    """The ports ``dev`` needs that something else holds now, each named with its role (empty: all free).
    Checked before anything starts, so that a taken port is one clear line instead of a child that exits."""
    import socket

    busy = []
    for offset, role in enumerate(PORT_ROLES):
        port = web_port + offset
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is free
            try:
                probe.bind((host, port))
            except OSError as exc:
                busy.append(f"{port} ({role}, --web-port + {offset}): {exc.strerror or exc}")
    return busy


def _ports_taken(web_port: int) -> bool:
    busy = busy_ports(web_port)
    if busy:
        print(
            "error: escalator dev needs four consecutive ports from --web-port on 127.0.0.1, and these are taken:\n  "
            + "\n  ".join(busy)
            + "\nchoose another --web-port (or ESCALATOR_WEB_PORT); nothing was started",
            file=sys.stderr,
        )
    return bool(busy)


def _spawn_relay(env: dict[str, str], run_dir: Path, web_port: int) -> subprocess.Popen[bytes]:
    """``escalator notify`` delivering to its local sink (HTTP on web_port + 2, SMTP on + 3), which prints one
    "delivered" line per delivery on this terminal; the relay's own log goes to ``notify.log``."""
    relay_env = {
        **env,
        "ESCALATOR_NOTIFY_WEB_PORT": str(web_port + 1),
        "ESCALATOR_NOTIFY_DATA_DIR": str(run_dir / "notify"),
    }
    with (run_dir / "notify.log").open("ab") as log:
        return _child(["notify", "--dev-sink", str(web_port + 2)], relay_env, stderr=log)


def run(args: argparse.Namespace) -> int:
    import asyncio
    import uuid

    from ..broker.select import resolve_broker
    from ..policy_file import load_policy_file
    from ..service.topics import create_topics, topic_specs
    from ..settings import Settings

    load_policy_file(args.policy)  # fail fast, naming file/line/field
    if _ports_taken(args.web_port):
        return 2
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    procs: list[tuple[str, subprocess.Popen[bytes]]] = []
    choice = resolve_broker(log_dir=run_dir)
    interrupted = failed = False

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)  # the terminal went away
    try:
        where = "embedded Tansu broker (development only)" if choice.source == "embedded" else choice.source
        print(f"broker   {choice.bootstrap}  [{where}]", flush=True)
        env = {
            **os.environ,
            **choice.env(),
            "ESCALATOR_WEB_PORT": str(args.web_port),
            "ESCALATOR_POLICY_FILE": args.policy,
            "ESCALATOR_DATA_DIR": str(run_dir / "state"),
            "ESCALATOR_APP_ID": os.environ.get("ESCALATOR_APP_ID", f"escalator-dev-{uuid.uuid4().hex[:6]}"),
        }
        settings = Settings(
            bootstrap_servers=choice.bootstrap, broker_flavour=choice.flavour, app_id=env["ESCALATOR_APP_ID"]
        )
        if asyncio.run(create_topics(settings, topic_specs(settings), verbose=False)) != 0:
            print("error: could not create the topics (see above)", file=sys.stderr)
            return 1
        print("topics   created", flush=True)
        worker_log = run_dir / "worker.log"
        worker = _spawn(["worker"], env, worker_log)
        procs.append(("worker", worker))
        print(f"worker   pid {worker.pid}, log {worker_log}; waiting for it to be ready ...", flush=True)
        started = time.monotonic()
        _wait_ready(args.web_port, worker, worker_log)
        print(f"worker   ready in {time.monotonic() - started:.1f}s", flush=True)
        base = f"http://127.0.0.1:{args.web_port}"
        print(
            f"\n  metrics   {base}/metrics\n  ticket    {base}/tickets/<ticket id>\n  policy    {base}/policy"
            f"\n  ready     {base}/readyz\n  relay     http://127.0.0.1:{args.web_port + 1}/metrics (escalator notify, "
            f"log {run_dir / 'notify.log'}; 'delivered' lines come from its local sink)\n\nEscalations and "
            "notifications as they happen (Ctrl-C stops everything):\n",
            flush=True,
        )
        tail = _child(["tail"], env)
        procs.append(("tail", tail))
        procs.append(("notify", _spawn_relay(env, run_dir, args.web_port)))
        if not args.no_demo:
            procs.append(("demo", _spawn(["demo", "--loop"], env, run_dir / "demo.log")))
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            for name, proc in procs:
                if proc.poll() is not None and name != "demo":
                    print(f"{name} exited with code {proc.returncode}", file=sys.stderr)
                    return 1
            time.sleep(0.2)  # supervising loop interval
    except KeyboardInterrupt:
        interrupted = True
    except BrokenPipeError:  # stdout is gone (``| tee`` and tee died): stop everything
        _silence(sys.stdout)
        failed = True
    finally:
        _stop_all(procs, choice)
    return 130 if interrupted else 1 if failed else 0


def _stop_all(procs: list[tuple[str, subprocess.Popen[bytes]]], choice: BrokerChoice) -> None:
    """Stop every child by PID, newest first, then the broker; a second Ctrl-C (or SIGTERM) while stopping does
    not cut it short (the children would die anyway with this process, by their parent-death signal)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _say("\nstopping ...", sys.stderr)
    for name, proc in reversed(procs):
        _stop(proc, name)
    choice.close()
    _say("stopped: " + ", ".join([n for n, _ in procs] + (["broker"] if choice.owned_process else [])), sys.stderr)
