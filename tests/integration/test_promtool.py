"""promtool (Debian's `prometheus` package) on the rules, their unit tests and every dashboard query, and `make
observe` against a scrape target serving the worker's real catalogue. Skipped with a reason when promtool is not
installed -- except on CI (CI=true), where .ci/run installs it and a missing promtool fails."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from tools import dashboards

from escalator.gateway.metrics import GatewayMetrics
from escalator.notify.metrics import NotifyMetrics
from escalator.service.metrics import Metrics
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
#: Grafana's variables in panel queries, replaced by what they mean on a 30 s scrape before promtool parses them.
GRAFANA_VARIABLES = {"$__rate_interval": "2m"}


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is missing on CI: .ci/run installs Debian's `prometheus` package")
        pytest.skip(f"{name} not installed (Debian: apt-get install prometheus); CI runs these tests")
    return found


@pytest.fixture(scope="module")
def promtool() -> str:
    return _tool("promtool")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_rule_files_are_valid(promtool: str) -> None:
    result = _run(promtool, "check", "rules", str(PROMETHEUS / "rules.yml"), str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_of_every_rule_pass(promtool: str) -> None:
    tests = sorted(str(p) for p in (PROMETHEUS / "tests").glob("*_test.yml"))
    assert len(tests) == 2
    result = _run(promtool, "test", "rules", *tests)
    assert result.returncode == 0, result.stdout + result.stderr


def _panel_rules() -> dict[str, Any]:
    rules = []
    for number, (title, query) in enumerate(dashboards.expressions(), start=1):
        expr = query
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"panel {title!r}: a Grafana variable promtool cannot parse: {expr}"
        rules.append({"record": f"dashboard:panel_{number}:query", "expr": expr})
    return {"groups": [{"name": "dashboard", "rules": rules}]}


def test_every_dashboard_query_parses(promtool: str, tmp_path: Path) -> None:
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(_panel_rules()))
    result = _run(promtool, "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(dashboards.expressions())} rules found" in result.stdout


def test_the_catalogues_pass_promtool_check_metrics(promtool: str) -> None:
    """promtool's lint of the exposition (naming, units, help texts) on the worker's, gateway's and relay's."""
    worker, gateway, relay = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    metrics = Metrics(worker)
    metrics.add_state_collector(list, lambda: 0, lambda: {0: 3})
    metrics.sla_breaches.labels("resolution", "high", "vip").inc()
    metrics.timer_lateness.observe_ms([20.0])
    GatewayMetrics(gateway).request("zendesk", "accepted")
    NotifyMetrics(relay).delivered.labels("slack").inc()
    for registry in (worker, gateway, relay):
        result = subprocess.run(
            [promtool, "check", "metrics"],
            input=generate_latest(registry),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (result.stdout + result.stderr).decode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return json.loads(resp.read())["data"]
    except OSError:
        return None


@pytest.fixture
def observed(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    """tools/observe.py (make observe) scraping a loopback server that exposes a worker's catalogue."""
    _tool("prometheus")
    registry = CollectorRegistry()
    Metrics(registry).on_ready(True)
    web_port, prom_port = _free_port(), _free_port()
    server, thread = start_http_server(web_port, addr="127.0.0.1", registry=registry)
    command = [sys.executable, str(ROOT / "tools" / "observe.py"), "--port", str(prom_port), "--web-port"]
    proc = subprocess.Popen(
        [*command, str(web_port), "--run-dir", str(tmp_path), "--interval", "1s", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield prom_port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.shutdown()
        thread.join(timeout=5)


def test_make_observe_scrapes_the_worker_with_the_rules_loaded(
    observed: tuple[int, subprocess.Popen[str]], tmp_path: Path
) -> None:
    port, proc = observed
    groups = wait_until(lambda: _api(port, "/api/v1/rules"), timeout=60, what="prometheus' rules API")["groups"]
    assert {g["name"] for g in groups} >= {"escalator.recording", "escalator.slo", "escalator.availability"}

    def worker_up() -> bool:
        data = _api(port, "/api/v1/query?query=up%7Bjob%3D%22escalator%22%7D") or {"result": []}
        return [r["value"][1] for r in data["result"]] == ["1"]

    wait_until(worker_up, timeout=30, what="the worker target scraped")
    pid = int((tmp_path / "prometheus.pid").read_text())
    proc.terminate()  # the Ctrl-C path: observe stops the Prometheus it started, by PID
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"stopped prometheus (pid {pid})" in output
    assert not (tmp_path / "prometheus.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
