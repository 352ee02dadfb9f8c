"""Published policy versions (issue 12): the record format, the worker's feed (read to the end at start, followed,
malformed records counted and ignored, the watched file), the stream runtime switching at a version's instant
(live == replay across a change, also for a version handed over while running), ``/policy`` and
``escalator_policy_info``, and ``escalator simulate --policy-change`` against a golden file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from escalator.cli import main
from escalator.core import Emit, decode_record, encode_event, load_policy_text
from escalator.core.timefmt import format_ms
from escalator.core.versions import NEW_TICKETS, OPEN_TICKETS, PolicyVersion, PolicyVersions
from escalator.policy_versions import PolicyRecordError, decode_policy_record, publish_record
from escalator.replay import simulate
from escalator.service.app import create_service
from escalator.service.openapi import POLICY_VERSION_ROW, POLICY_VIEW
from escalator.service.policies import PolicyFeed
from escalator.service.timesource import ManualTime
from escalator.service.topics import topic_specs
from escalator.settings import Settings
from escalator.stream.inmemory import MemoryBroker, MemoryPorts, MemoryReader, MemoryTail
from tests.stream_world import World, drive, oracle
from tests.support import EXAMPLE_POLICY, ROOT, example_policy, ms

PS = example_policy()
TEXT = EXAMPLE_POLICY.read_text()
TIGHT_TEXT = TEXT.replace("resolution: 4h}", "resolution: 1h}").replace("first_response: 15m,", "first_response: 5m,")
TIGHT = load_policy_text(TIGHT_TEXT, "tight.yaml")
T0 = ms("2026-11-20T10:00:00Z")
DATA = ROOT / "tests" / "data"


def synth_docs(tickets: int, seed: int) -> list[dict[str, Any]]:
    from escalator.synth import lifecycle_events

    return list(lifecycle_events(tickets, seed=seed, start_ms=T0, per_hour=600.0))


def versions_at(at: int, applies_to: str = OPEN_TICKETS) -> PolicyVersions:
    return PolicyVersions(PolicyVersion(PS), [PolicyVersion(TIGHT, at, applies_to, seq=1)])


# -- the record ---------------------------------------------------------------------------------------------------


def test_a_published_record_round_trips_and_bad_ones_say_why(tmp_path: Path) -> None:
    path = tmp_path / "tight.yaml"
    path.write_text(TIGHT_TEXT)
    key, value, record = publish_record(path, T0, "new_tickets", T0 - 5)
    assert key == f"{TIGHT.version}@2026-11-20T10:00:00Z/new_tickets".encode()
    got, version = decode_policy_record(value, 7)
    assert got == record and version.version == TIGHT.version and version.effective_ms == T0
    assert version.applies_to == NEW_TICKETS and version.seq == 7 and version.published_ms == T0 - 5
    doc = orjson.loads(value)
    bad = {
        "undecodable": b"{not json",
        "schema": orjson.dumps({**doc, "applies_to": "everyone"}),
        "invalid_policy": orjson.dumps({**doc, "text": TIGHT_TEXT.replace("1h}", "1x}")}),
        "version_mismatch": orjson.dumps({**doc, "version": PS.version}),
    }
    for reason, raw in bad.items():
        with pytest.raises(PolicyRecordError) as exc:
            decode_policy_record(raw, 1)
        assert exc.value.reason == reason
    # unknown fields are tolerated (additive changes of the format)
    assert decode_policy_record(orjson.dumps({**doc, "later": 1}), 1)[1].version == TIGHT.version


def test_publish_refuses_an_invalid_file_with_its_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(TEXT.replace("resolution: 4h}", "resolution: 4x}"))
    assert main(["policy", "publish", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:13:" in err and "invalid duration '4x'" in err and "nothing was published" in err


def test_publish_writes_the_record_and_versions_lists_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import escalator.stream.kafka as kafka

    path = tmp_path / "tight.yaml"
    path.write_text(TIGHT_TEXT)
    sent: list[tuple[str, bytes, bytes]] = []
    monkeypatch.setenv("ESCALATOR_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("ESCALATOR_APP_ID", "esc")
    monkeypatch.setattr(kafka, "produce_one", lambda _s, topic, key, value: sent.append((topic, key, value)))
    args = ["policy", "publish", str(path), "--effective-from", "2026-12-03T08:00:00+01:00"]
    assert main([*args, "--applies-to", "new_tickets"]) == 0
    assert f"version {TIGHT.version}, effective from 2026-12-03T07:00:00Z for new_tickets" in capsys.readouterr().out
    ((topic, key, value),) = sent
    assert topic == "esc-policies" and key == f"{TIGHT.version}@2026-12-03T07:00:00Z/new_tickets".encode()

    class Msg:
        def __init__(self, offset: int, value: bytes) -> None:
            self._offset, self._value = offset, value

        def offset(self) -> int:
            return self._offset

        def value(self) -> bytes:
            return self._value

    monkeypatch.setattr(kafka, "read_all", lambda _s, _topic: [Msg(0, b"junk"), Msg(1, value)])
    assert main(["policy", "versions"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("0\t-") and "rejected: undecodable" in lines[1]
    assert (
        lines[2] == f"1\t{TIGHT.version}\t2026-12-03T07:00:00Z\tnew_tickets\t{orjson.loads(value)['published_at']}"
        "\ttight.yaml"
    )
    assert main(["policy", "publish", str(path), "--effective-from", "soon"]) == 2
    assert main(["policy", "publish", str(path), "--effective-from", "2020-01-01T00:00:00Z"]) == 0
    assert "warning: the effective instant has passed" in capsys.readouterr().err


# -- the feed -----------------------------------------------------------------------------------------------------


def test_the_feed_reads_to_the_end_counts_bad_records_and_keeps_its_versions(tmp_path: Path) -> None:
    broker = MemoryBroker(lambda: T0)
    broker.create_topic("p", 1)
    path = tmp_path / "tight.yaml"
    path.write_text(TIGHT_TEXT)
    key, value, _ = publish_record(path, T0 + 3_600_000, "open_tickets", T0)
    broker.append("p", 0, b"junk", b"\x00 not a record")
    broker.append("p", 0, key, value)
    broker.append("p", 0, key, value)  # the same version published twice: one version
    rejected: list[str] = []
    offered: list[PolicyVersions] = []
    feed = PolicyFeed(PS, now_ms=lambda: T0, lateness_ms=0, on_reject=rejected.append)
    assert feed.load(MemoryReader(broker), "p") == 3
    assert [v.version for v in feed.versions.entries] == [PS.version, TIGHT.version]
    assert rejected == ["undecodable"] and feed.rejected == {"undecodable": 1}
    # following: the tail reads the topic again from its beginning; only what is new counts
    feed.on_change = offered.append
    tail = MemoryTail(broker, "p")
    assert feed.take(tail.poll(0)) is False and rejected == ["undecodable"]
    broker.append("p", 0, b"k2", orjson.dumps({**orjson.loads(value), "version": "0" * 12}))
    assert feed.take(tail.poll(0)) is False and rejected == ["undecodable", "version_mismatch"]
    assert [v.version for v in feed.versions.entries] == [PS.version, TIGHT.version]  # kept
    key2, value2, _ = publish_record(EXAMPLE_POLICY, T0 + 7_200_000, "open_tickets", T0)  # a roll back
    broker.append("p", 0, key2, value2)
    assert feed.take(tail.poll(0)) is True
    assert [v.version for v in offered[-1].entries] == [PS.version, TIGHT.version, PS.version]
    view = feed.describe({PS.version: 3})
    assert [(r["version"], r["state"], r["open_tickets"]) for r in view["versions"]] == [
        (PS.version, "in_force", 3),
        (TIGHT.version, "pending", 0),
        (PS.version, "pending", 3),
    ]
    assert view["version"] == PS.version and view["rejected_records"] == {"undecodable": 1, "version_mismatch": 1}


def test_versions_superseded_for_every_ticket_are_dropped() -> None:
    now = [T0]
    feed = PolicyFeed(PS, now_ms=lambda: now[0], lateness_ms=60_000)
    feed._add([PolicyVersion(TIGHT, T0 + 1000, NEW_TICKETS, 1)])
    feed._add([PolicyVersion(TIGHT, T0 + 2000, OPEN_TICKETS, 2)])
    assert len(feed.versions.entries) == 3
    now[0] = T0 + 2000 + 60_000 + 3_600_000  # the open_tickets version took effect long enough ago
    feed._add([PolicyVersion(PS, T0 + 10**9, OPEN_TICKETS, 3)])
    assert [(v.version, v.effective_ms) for v in feed.versions.entries] == [
        (TIGHT.version, T0 + 2000),
        (PS.version, T0 + 10**9),
    ]


def test_an_edited_policy_file_applies_from_the_instant_it_was_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(TEXT)
    now = [T0]
    rejected: list[str] = []
    feed = PolicyFeed(PS, now_ms=lambda: now[0], lateness_ms=0, file=path, watch_s=1, on_reject=rejected.append)
    assert feed.check_file() is False
    now[0] = T0 + 60_000
    path.write_text(TIGHT_TEXT + "\n# tightened\n")
    assert feed.check_file() is True
    (edit,) = feed.versions.entries[1:]
    assert edit.version == TIGHT.version and edit.effective_ms == T0 + 60_000 and edit.applies_to == OPEN_TICKETS
    path.write_text("version: 1\npolicies: [{id: x, targets: {resolution: 9q}}]\n")
    assert feed.check_file() is False and rejected == ["invalid_policy"]
    assert len(feed.versions.entries) == 2  # the file's previous content stays in force


# -- the stream runtime ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("applies_to", [OPEN_TICKETS, NEW_TICKETS])
def test_live_equals_replay_across_a_policy_change(applies_to: str) -> None:
    docs = synth_docs(60, seed=3)
    creations = [ms(str(d["time"])) for d in docs if d["type"] == "ticket.created"]
    change = creations[len(creations) // 2] + 1  # half the tickets are created after it
    versions = versions_at(change, applies_to)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(versions, T0, partitions=3)  # type: ignore[arg-type]
    a, b = world.worker(), world.worker()
    world.assign((a, [0, 2]), (b, [1]))
    until = drive(world, [a, b], docs, end, every_ms=600_000)
    expected = oracle(docs, versions, until)  # type: ignore[arg-type]
    assert expected != oracle(docs, PS, until), "the change must make a difference"
    got = world.output_ids()
    assert sorted(set(expected) - set(got)) == [] and sorted(set(got) - set(expected)) == []
    assert all(v == {expected[k]} for k, v in got.items())


def test_a_version_handed_over_while_running_switches_at_its_instant_not_when_read() -> None:
    docs = synth_docs(60, seed=4)
    half = len(docs) // 2
    change = ms(str(docs[half]["time"])) + 1
    versions = versions_at(change)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(PS, T0, partitions=2)
    a = world.worker()
    world.assign((a, [0, 1]))
    drive(world, [a], docs[:half], ms(str(docs[half - 1]["time"])), every_ms=600_000)
    a.runtime.offer_versions(versions)  # published, read before its instant
    a.runtime.step()
    parts = list(a.runtime.tickets.values())
    assert all(p.switches == [change] for p in parts)  # every open ticket will be looked at, at the instant
    assert sum(p.open_by_version[PS.version] for p in parts) > 0
    until = drive(world, [a], docs[half:], end, every_ms=600_000)
    assert all(p.switches == [] for p in parts)
    expected = oracle(docs, versions, until)  # type: ignore[arg-type]
    assert expected != oracle(docs, PS, until), "the change must make a difference"
    got = world.output_ids()
    assert set(got) == set(expected) and all(v == {expected[k]} for k, v in got.items())
    assert all(set(p.open_by_version) <= {TIGHT.version} for p in parts), "open tickets are on the new version"


# -- the service --------------------------------------------------------------------------------------------------


async def test_the_worker_loads_published_versions_and_shows_them(tmp_path: Path) -> None:
    from tests.unit.test_service_app import get, join

    settings = Settings(
        bootstrap_servers="127.0.0.1:1",
        store="memory",
        data_dir=tmp_path,
        app_id="unit",
        policy_file=EXAMPLE_POLICY,
        partitions=2,
        output_partitions=2,
    )
    clock = ManualTime(T0)
    broker = MemoryBroker(clock.now_ms)
    for spec in topic_specs(settings):
        broker.create_topic(spec.name, spec.partitions)
    path = tmp_path / "tight.yaml"
    path.write_text(TIGHT_TEXT)
    key, value, _ = publish_record(path, T0 + 3_600_000, "open_tickets", T0)
    broker.append(settings.topic_policies, 0, b"bad", b"[]")
    broker.append(settings.topic_policies, 0, key, value)
    registry = CollectorRegistry()
    service = create_service(
        settings, clock, registry, policy=PS, ports=MemoryPorts(broker, "unit"), monotonic=lambda: 0.0
    )
    assert [v.version for v in service.runtime.versions.entries] == [PS.version, TIGHT.version]
    assert registry.get_sample_value("escalator_policy_records_rejected_total", {"reason": "undecodable"}) == 1
    assert registry.get_sample_value("escalator_policy_info", {"version": PS.version}) == 1
    assert registry.get_sample_value("escalator_policy_info", {"version": TIGHT.version}) is None  # not yet
    service.runtime.consumer.subscribe([settings.topic_input, settings.topic_incident_signals], service.runtime)
    join(service, broker, [0, 1])
    from escalator.service.app import web_app

    status, view = await get(web_app(service), "/policy")
    assert status == 200 and view["version"] == PS.version and "plans" in view
    assert tuple(view) == POLICY_VIEW and all(tuple(r) == POLICY_VERSION_ROW for r in view["versions"])
    assert [(r["version"], r["state"]) for r in view["versions"]] == [
        (PS.version, "in_force"),
        (TIGHT.version, "pending"),
    ]
    clock.advance(3_600_000)
    service.policies.refresh_info()
    assert registry.get_sample_value("escalator_policy_info", {"version": TIGHT.version}) == 1
    assert registry.get_sample_value("escalator_policy_info", {"version": PS.version}) is None


# -- simulate --policy-change: a golden file --------------------------------------------------------------------

CHANGE_AT = "2016-04-01T00:00:00Z"
GOLDEN = DATA / "servicenow_sample.policy-change.outputs.jsonl"


def test_simulate_with_a_policy_change_matches_its_golden_file_and_the_core(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    strict = DATA / "servicenow-policy-strict.yaml"
    policy = ROOT / "examples" / "servicenow-policy.yaml"
    events = DATA / "servicenow_sample.events.jsonl"
    args = ["simulate", "--policy", str(policy), "--events", str(events), "--json", "--out", str(out)]
    assert main([*args, "--policy-change", f"{CHANGE_AT}={strict}"]) == 0
    if os.environ.get("ESCALATOR_UPDATE_GOLDEN"):
        GOLDEN.write_bytes(out.read_bytes())
    assert out.read_bytes() == GOLDEN.read_bytes()
    # the same as the core driven directly with the two versions
    base = load_policy_text(policy.read_text(), str(policy))
    later = load_policy_text(strict.read_text(), str(strict))
    versions = PolicyVersions(PolicyVersion(base), [PolicyVersion(later, ms(CHANGE_AT), OPEN_TICKETS, 1)])
    decoded = [decode_record(x) for x in events.read_bytes().splitlines()]
    emits = [c for c in simulate(decoded, versions) if isinstance(c, Emit)]
    assert b"".join(encode_event(e.event) + b"\n" for e in emits) == GOLDEN.read_bytes()
    # before the change: exactly the outputs of the single file; from it on: the strict file's
    single = (DATA / "servicenow_sample.outputs.jsonl").read_bytes().splitlines()
    changed = GOLDEN.read_bytes().splitlines()
    before = [x for x in single if orjson.loads(x)["time"] < CHANGE_AT]
    assert sorted(x for x in changed if orjson.loads(x)["time"] < CHANGE_AT) == sorted(before)
    after = [orjson.loads(x) for x in changed if orjson.loads(x)["time"] >= CHANGE_AT]
    assert after and {d["data"]["policy"]["version"] for d in after if "policy" in d["data"]} == {later.version}
    assert changed != single
    # a bad --policy-change says so
    assert main([*args, "--policy-change", "yesterday=x.yaml"]) == 2
    assert format_ms(ms(CHANGE_AT)) == CHANGE_AT


def test_a_worker_that_takes_over_after_a_switch_goes_on_as_replay_does() -> None:
    docs = synth_docs(40, seed=6)
    creations = [ms(str(d["time"])) for d in docs if d["type"] == "ticket.created"]
    change = creations[len(creations) // 2] + 1
    versions = versions_at(change)
    end = ms(str(docs[-1]["time"])) + 3_600_000
    world = World(versions, T0, partitions=2)  # type: ignore[arg-type]
    a = world.worker()
    world.assign((a, [0, 1]))
    cut = next(i for i, d in enumerate(docs) if ms(str(d["time"])) > change + 600_000)
    drive(world, [a], docs[:cut], ms(str(docs[cut - 1]["time"])), every_ms=300_000)
    # a crash after the switch: a new worker recovers the states from the changelog and goes on
    b = world.worker()
    world.assign((b, [0, 1]))
    b.runtime.step()
    until = drive(world, [b], docs[cut:], end, every_ms=300_000)
    expected = oracle(docs, versions, until)  # type: ignore[arg-type]
    got = world.output_ids()
    assert set(got) == set(expected) and all(v == {expected[k]} for k, v in got.items())
