"""The newcomer's first run, end to end: `escalator dev` (what `make run` starts) on a fresh broker.

Within a minute its live tail must show warnings, breaches, a multi-level escalation, trigger escalations and an
incident; /metrics and /tickets answer while it runs; and when it stops, every process it started is gone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.workers import dev_web_port
from tests.waiting import wait_until

pytestmark = [pytest.mark.broker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return int(resp.status), bytes(resp.read())
    except OSError:
        return 0, b""


def test_first_minute_shows_every_kind_of_output(tmp_path: Path) -> None:
    port = dev_web_port()
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "ESCALATOR_BOOTSTRAP_SERVERS")}
    out_path = tmp_path / "dev.out"
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "escalator",
                "dev",
                "--web-port",
                str(port),
                "--run-dir",
                str(tmp_path / "run"),
                "--duration",
                "75",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        text = lambda: out_path.read_text(errors="replace")  # noqa: E731
        wait_until(lambda: "worker   ready" in text() or proc.poll() is not None, 90, "the worker to be ready")
        assert proc.poll() is None, text()
        ready_at = time.monotonic()
        wanted = [
            r"WARNING ",
            r"BREACH ",
            r"ESCALATION L1 ",
            r"ESCALATION L2 .*first_response",
            r"ESCALATION L3 ",
            r"trigger legal",
            r"trigger low-csat",
            r"trigger repeated-contact",
            r"manager-requested",
            r"INCIDENT .*product=mail",
            r"ESCALATION L1 .*member of incident:outage:mail:",  # its members escalated ...
            r"INCIDENT \+ .*product=mail .* joined",  # ... later ones joining ...
            r"INCIDENT OVER .*product=mail .*resolved by status-page",  # ... until the status page says it is over
            r"incident_resolved by status-page",
            r"delivered  (slack|email|webhook|pagerduty) ",  # escalator notify, to its local sink
        ]
        wait_until(
            lambda: all(re.search(w, text()) for w in wanted) or proc.poll() is not None,
            70,
            "every kind of output in the live tail",
        )
        missing = [w for w in wanted if not re.search(w, text())]
        assert not missing, f"not seen: {missing}\n{text()}"
        assert time.monotonic() - ready_at < 65, "the newcomer waited more than a minute"
        status, body = _get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200 and b"escalator_escalations_total" in body
        ticket = re.search(r"(T-\w+-ladder)", text())
        assert ticket is not None
        status, body = _get(f"http://127.0.0.1:{port}/tickets/{ticket.group(1)}")
        assert status == 200 and b'"first_response"' in body
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    final = out_path.read_text(errors="replace")
    assert code in (0, 130), final
    assert "stopped: worker, tail, notify, demo, broker" in final
    # nothing it started is left running: the web port is free again
    assert _get(f"http://127.0.0.1:{port}/healthz")[0] == 0
