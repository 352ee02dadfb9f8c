"""A policy version published while a worker runs (issue 12), against a real broker (the embedded Tansu here: no
compaction, so the policies topic is read in full). ``escalator policy publish`` writes it; the running worker
switches every open ticket at its effective instant, and its outputs equal the replay's with the same change
(``simulate`` with the version); a malformed record on the policies topic is counted and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from escalator.core import Emit, decode_record, encode_event, load_policy_text
from escalator.core.timefmt import format_ms
from escalator.core.versions import OPEN_TICKETS, PolicyVersion, PolicyVersions
from escalator.replay.simulate import simulate
from tests.integration.test_worker import POLICY, Feeder, assert_matches_oracle, scenario
from tests.integration.workers import TEST_POLICY, Collector, Deployment, produce
from tests.waiting import wait_until

pytestmark = pytest.mark.broker

TIGHT_TEXT = TEST_POLICY.read_text().replace(
    "targets: {first_response: 4s, next_reply: 6s, resolution: 12s}",
    "targets: {first_response: 3s, next_reply: 6s, resolution: 7s}",
)


@pytest.fixture
def dep(kafka: Any, tmp_path: Path) -> Deployment:
    d = Deployment(kafka.bootstrap, kafka.flavour, tmp_path)
    d.create_topics()
    return d


def rejected(worker: Any, reason: str) -> float:
    for line in worker.get("/metrics")[1].decode().splitlines():
        if line.startswith(f'escalator_policy_records_rejected_total{{reason="{reason}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_a_published_version_switches_open_tickets_at_its_instant_live_equals_replay(
    dep: Deployment, tmp_path: Path
) -> None:
    tight_file = tmp_path / "tight.yaml"
    tight_file.write_text(TIGHT_TEXT)
    tight = load_policy_text(TIGHT_TEXT, str(tight_file))
    worker = dep.worker().start()
    try:
        worker.wait_ready()
        settings = dep.settings()
        # a malformed record: counted, logged, the worker keeps its version
        produce(dep.bootstrap, settings.topic_policies, [(b"junk", b"{not a policy", [])])
        wait_until(lambda: rejected(worker, "undecodable") == 1, 20, "the malformed record to be counted")
        t0 = int(time.time() * 1000) + 8000
        change_at = t0 + 2500  # while tickets are open
        command = [sys.executable, "-m", "escalator", "policy", "publish", str(tight_file)]
        published = subprocess.run(
            [*command, "--effective-from", format_ms(change_at)],
            check=False,
            env={k: v for k, v in {**os.environ, **dep.env()}.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert published.returncode == 0, published.stderr
        assert tight.version in published.stdout

        def held() -> bool:
            status, body = worker.get("/policy")
            return status == 200 and [v["version"] for v in orjson.loads(body)["versions"]] == [
                POLICY.version,
                tight.version,
            ]

        wait_until(held, 20, "the worker to hold the published version")
        listed = subprocess.run(
            [sys.executable, "-m", "escalator", "policy", "versions"],
            check=False,
            env={k: v for k, v in {**os.environ, **dep.env()}.items() if k != "KAFKA_BOOTSTRAP_SERVERS"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listed.returncode == 0, listed.stderr
        rows = listed.stdout.splitlines()[1:]
        assert len(rows) == 2 and "rejected: undecodable" in rows[0]
        assert rows[1].split("\t")[1:4] == [tight.version, format_ms(change_at), "open_tickets"]
        assert int(time.time() * 1000) < t0, "publishing took too long for the scenario"
        docs = scenario(t0, 8, "pv")
        events = [decode_record(orjson.dumps(d)) for d in docs]
        end = max(e.time_ms for e in events) + 60_000
        versions = PolicyVersions(PolicyVersion(POLICY), [PolicyVersion(tight, change_at, OPEN_TICKETS, 1)])
        expected = {
            c.id: encode_event(c.event) for c in simulate(events, versions, until_ms=end) if isinstance(c, Emit)
        }
        single = {c.id: encode_event(c.event) for c in simulate(events, POLICY, until_ms=end) if isinstance(c, Emit)}
        assert expected != single, "the change must make a difference"
        with Collector(dep.bootstrap, list(dep.topics.values())) as collector:
            feeder = Feeder(dep, docs)
            feeder.start()
            feeder.join(timeout=90)
            assert feeder.error is None and feeder.sent == len(docs)
            assert_matches_oracle(collector, dep, expected, timeout=30, feeder=feeder)
        view = orjson.loads(worker.get("/policy")[1])
        assert view["version"] == tight.version and view["rejected_records"] == {"undecodable": 1}
        assert [r["state"] for r in view["versions"]] == ["superseded", "in_force"]
        assert f'escalator_policy_info{{version="{tight.version}"}} 1.0' in worker.get("/metrics")[1].decode()
    finally:
        assert worker.stop() == 0, worker.log_tail()
