"""The core stays pure: it imports no I/O, Kafka, metrics or clock modules, and never reads the clock."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "services" / "escalator" / "core"
FORBIDDEN = {
    "faust",
    "aiokafka",
    "confluent_kafka",
    "aiohttp",
    "prometheus_client",
    "os",
    "time",
    "socket",
    "asyncio",
    "subprocess",
    "random",
    "pathlib",
    "io",
    "threading",
    "logging",
    "mode",
    "rocksdict",
}
CORE_FILES = sorted(CORE.glob("*.py"))


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_never_reads_the_clock(path: Path) -> None:
    text = path.read_text()
    for banned in (
        r"datetime\.now",
        r"utcnow\(",
        r"date\.today",
        r"\.now\(",
        r"time\.time",
        r"(?<![\w.])open\(",
        r"\bprint\(",
    ):
        assert not re.search(banned, text), f"{path.name} uses {banned}"


def test_importing_the_core_loads_no_kafka_or_metrics() -> None:
    code = (
        "import sys, escalator.core; bad = [m for m in ('faust', 'aiokafka', 'prometheus_client', 'mode') "
        "if m in sys.modules]; print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
