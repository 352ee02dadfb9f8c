"""Hostile input at volume through a real worker (CI size; `make fuzz` runs 10,000+ records, bench/fuzz.py): every
bad record is dead-lettered with its reason and its bytes, the valid traffic around them gives exactly replay's
outputs, the worker's memory stays bounded and its log quotes no payload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.hostile import FAMILIES, run_campaign
from tests.integration.test_worker import oracle, scenario
from tests.integration.workers import Deployment

pytestmark = pytest.mark.broker

BAD = 1_000
MAX_BYTES = 16_384
RSS_BOUND_MIB = 400  # measured: ~110-130 MiB at this size and at 10,000 records (docs/benchmarks.md)
LOG_LINE_BOUND = 12_000  # escalator.service.logs bounds: message 2,000 + ids 4 x 200 + traceback 8,000


def test_hostile_records_at_volume_are_dead_lettered_while_valid_traffic_matches_replay(
    kafka: Any, tmp_path: Path
) -> None:
    dep = Deployment(kafka.bootstrap, kafka.flavour, tmp_path)
    dep.create_topics()
    fig = run_campaign(dep, bad_count=BAD, tickets=8, seed=13, max_bytes=MAX_BYTES, scenario=scenario, oracle=oracle)
    summary = dict(fig)
    print(summary)  # the figures, in the test log
    assert fig["producer_max_delay_s"] < 1.0, f"the machine is overloaded (live may differ from replay): {summary}"
    assert set(fig["families"]) == set(FAMILIES), summary
    assert fig["bad_sent"] == BAD and fig["bad_missing_from_dlq"] == 0, summary
    assert fig["dlq_records"] == BAD and fig["valid_in_dlq"] == 0, summary
    assert fig["dlq_wrong_reason"] == 0 and fig["dlq_value_altered"] == 0 and fig["dlq_without_detail"] == 0, summary
    assert not fig["outputs_missing"] and not fig["outputs_extra"] and not fig["outputs_differing"], summary
    assert fig["rss_peak_mib"] < RSS_BOUND_MIB, summary
    assert fig["log"]["longest_line_chars"] < LOG_LINE_BOUND and fig["log"]["lines_quoting_a_payload"] == 0, summary
    assert fig["log"]["forged_lines"] == 0 and fig["log"]["lines_with_control_chars"] == 0, summary
    assert fig["exit_code"] == 0, summary
