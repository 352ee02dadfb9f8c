"""`make observe`: a real Prometheus (Debian's `prometheus` package) on loopback, with escalator's recording rules and
alerts loaded, scraping the processes of `make run` -- the worker on ESCALATOR_WEB_PORT (6066), the notification
relay on the next port (6067) and the gateway on ESCALATOR_GATEWAY_PORT (8088) when they run.

    .venv/bin/python tools/observe.py [--port 19090] [--web-port 6066] [--gateway-port 8088] [--duration SECONDS]

Runs in the foreground until Ctrl-C (or SIGTERM, or --duration), then stops the Prometheus it started by its PID
(also written to var/observe/prometheus.pid). Config, data and log live under var/observe/. The default port is
19090, not 9090: on a machine with systemd, Debian's package starts its own Prometheus service on 9090.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["config_text", "main", "start", "stop"]

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = (ROOT / "deploy" / "prometheus" / "rules.yml", ROOT / "deploy" / "prometheus" / "alerts.yml")


def config_text(web_port: int, gateway_port: int, interval: str = "5s") -> str:
    """The Prometheus configuration: the rule files of deploy/prometheus and one job per escalator process."""
    jobs = (("escalator", web_port), ("escalator-notify", web_port + 1), ("escalator-gateway", gateway_port))
    lines = [
        "# written by tools/observe.py (make observe); scrapes the processes of `make run` on loopback",
        "global:",
        f"  scrape_interval: {interval}",
        f"  evaluation_interval: {interval}",
        "rule_files:",
        *(f"  - {path}" for path in RULE_FILES),
        "scrape_configs:",
    ]
    for job, port in jobs:
        lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: ['127.0.0.1:{port}']"]
    return "\n".join(lines) + "\n"


def start(binary: str, config: Path, run_dir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start Prometheus in its own session (stopped by PID), its log appended to run_dir/prometheus.log."""
    with (run_dir / "prometheus.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={run_dir / 'data'}",
                "--storage.tsdb.retention.time=1d",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    (run_dir / "prometheus.pid").write_text(f"{proc.pid}\n")
    return proc


def stop(proc: subprocess.Popen[bytes], run_dir: Path, timeout: float = 20.0) -> None:
    """SIGTERM to the process group of ``proc`` (only what :func:`start` started), SIGKILL after ``timeout``."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=timeout)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    (run_dir / "prometheus.pid").unlink(missing_ok=True)


def _wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"prometheus exited with code {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling interval
    raise RuntimeError(f"prometheus was not ready within {timeout:.0f}s (see {log})")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Prometheus on loopback with escalator's rules (make observe)")
    parser.add_argument("--port", type=int, default=19090, help="Prometheus' port on 127.0.0.1 (default 19090)")
    parser.add_argument("--web-port", type=int, default=int(os.environ.get("ESCALATOR_WEB_PORT", "6066")))
    parser.add_argument("--gateway-port", type=int, default=int(os.environ.get("ESCALATOR_GATEWAY_PORT", "8088")))
    parser.add_argument("--run-dir", type=Path, default=ROOT / "var" / "observe")
    parser.add_argument("--interval", default="5s", help="scrape and rule evaluation interval (default 5s)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    binary = shutil.which("prometheus")
    if binary is None:
        print("error: no `prometheus` on PATH: install Debian's package (apt-get install prometheus)", file=sys.stderr)
        return 1
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / "prometheus.yml"
    config.write_text(config_text(args.web_port, args.gateway_port, args.interval))
    proc = start(binary, config, run_dir, args.port)

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        _wait_ready(proc, args.port, run_dir / "prometheus.log")
        base = f"http://127.0.0.1:{args.port}"
        print(
            f"prometheus pid {proc.pid} on {base} (log {run_dir / 'prometheus.log'}), Ctrl-C stops it\n"
            f"  alerts    {base}/alerts\n  rules     {base}/rules\n  targets   {base}/targets\n"
            f"  query     {base}/graph?g0.expr=job_type%3Aescalator_events_consumed%3Arate5m",
            flush=True,
        )
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while deadline is None or time.monotonic() < deadline:
            if proc.poll() is not None:
                print(f"prometheus exited with code {proc.returncode}", file=sys.stderr)
                return 1
            time.sleep(0.2)  # supervising loop interval
    except KeyboardInterrupt:
        pass
    finally:
        stop(proc, run_dir)
        print(f"stopped prometheus (pid {proc.pid})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
