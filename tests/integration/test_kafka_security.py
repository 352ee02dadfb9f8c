"""SASL/SCRAM end to end against the embedded broker started with ``--authentication`` (Tansu 0.6.0 cannot create a
user then -- docs/security.md -- so every login is refused): each process really performs the SCRAM exchange with the
configured mechanism and user, fails, and says so without printing the password."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from escalator.broker.embedded import resolve_tansu_binary
from tests.integration.workers import TEST_POLICY, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.broker
PASSWORD = "scram-pw-3e1f77c2"


@pytest.fixture
def auth_broker(processes: Any) -> str:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc, log = processes.start(
        [resolve_tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--authentication"],
        name="tansu-auth",
    )
    wait_until(lambda: "ready in" in log.read_text(errors="replace") or proc.poll() is not None, 20, "tansu to start")
    assert proc.poll() is None, log.read_text()
    return f"127.0.0.1:{port}"


def scram_env(bootstrap: str, tmp_path: Path) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ESCALATOR_", "KAFKA_")) or k == "ESCALATOR_PURE_PYTHON"
    }
    env.update(
        ESCALATOR_BOOTSTRAP_SERVERS=bootstrap,
        ESCALATOR_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        ESCALATOR_SASL_MECHANISM="SCRAM-SHA-512",
        ESCALATOR_SASL_USERNAME="escalator",
        ESCALATOR_SASL_PASSWORD=PASSWORD,
        ESCALATOR_APP_ID="sec",
        ESCALATOR_STORE="memory",
        ESCALATOR_POLICY_FILE=str(TEST_POLICY),
        ESCALATOR_DATA_DIR=str(tmp_path / "data"),
        ESCALATOR_WEB_PORT=str(free_port()),
        ESCALATOR_GATEWAY_PORT=str(free_port()),
        ESCALATOR_NOTIFY_WEB_PORT=str(free_port()),
        ESCALATOR_LOG_LEVEL="DEBUG",
    )
    return env


def test_topics_create_performs_scram_and_fails_without_showing_the_password(
    auth_broker: str, processes: Any, tmp_path: Path
) -> None:
    proc, log = processes.start(
        [sys.executable, "-m", "escalator", "topics", "create"], env=scram_env(auth_broker, tmp_path), name="topics"
    )
    wait_until(lambda: proc.poll() is not None, 60, "topics create to give up")
    text = log.read_text(errors="replace")
    assert proc.returncode != 0, text
    assert "server_final" in text or "SCRAM" in text or "sasl" in text.lower(), text[-2000:]  # the exchange ran
    assert "SASL SCRAM-SHA-512 login refused" in text and "Traceback" not in text, text[-2000:]  # said, not crashed
    assert PASSWORD not in text


@pytest.mark.parametrize("command", ["worker", "gateway", "notify"])
def test_long_running_processes_log_the_refused_login_without_the_password(
    auth_broker: str, processes: Any, tmp_path: Path, command: str
) -> None:
    proc, log = processes.start(
        [sys.executable, "-m", "escalator", command], env=scram_env(auth_broker, tmp_path), name=command
    )

    def refused() -> bool:
        text = log.read_text(errors="replace")
        return proc.poll() is not None or "SASL" in text or "uthenticat" in text

    wait_until(refused, 60, f"{command} to report the refused SCRAM login")
    text = log.read_text(errors="replace")
    assert "SASL" in text or "uthenticat" in text, text[-2000:]
    assert PASSWORD not in text
