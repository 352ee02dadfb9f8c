"""Hostile input at volume: generated bad records interleaved with valid paced traffic through a real worker.

``hostile_records`` makes records that are each rejected by the v1 contract, in 17 families (truncated JSON, invalid
UTF-8, NUL bytes, deep nesting, huge strings and arrays, numbers out of range, wrong types, duplicate keys, key/subject
mismatch, wrong specversion, values just over and far over the size limit, odd header encodings, ...). Every one is
checked against the decoder before it is sent, and its expected DLQ reason recorded; a candidate the contract accepts
is not sent, only counted (``accepted_candidates``: e.g. a wrong-typed optional field that happens to be valid).

``run_campaign`` feeds them with a valid scenario (tests/integration/test_worker.scenario, stamped on the wall clock so
deadlines fire live) through one worker, then checks: every bad record in the DLQ (matched by input partition and
offset) with its reason and its bytes; no valid record in the DLQ; the outputs equal replay (``simulate``) of the
valid events; the worker's peak RSS; the longest log line and that no payload reached the log. Used by
tests/integration/test_hostile_input.py (CI size) and bench/fuzz.py (``make fuzz``, 10,000+ records).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from escalator.core import parse_rfc3339_ms
from escalator.core.events import DecodeError, decode_record
from tests.integration.workers import Collector, Deployment, WorkerProcess, outputs_by_id

FILLER = "HOSTILEPAYLOAD"  # every generated padding repeats it: a log line holding 8 in a row quotes a payload
Rec = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def _base(i: int, rng: random.Random) -> dict[str, Any]:
    tid = f"bad-{i}"
    return {
        "specversion": "1.0",
        "id": f"bad-{i}-e",
        "source": "fuzz",
        "type": rng.choice(["ticket.created", "ticket.commented", "ticket.status_changed"]),
        "time": "2026-11-20T10:00:00Z",
        "subject": tid,
        "data": {"priority": "high", "requester": {"id": "r"}},
    }


def _valid_data(etype: str) -> dict[str, Any]:
    return {
        "ticket.created": {"priority": "high", "requester": {"id": "r"}},
        "ticket.commented": {"author": "agent"},
        "ticket.status_changed": {"status": "open"},
    }[etype]


def _doc(i: int, rng: random.Random) -> dict[str, Any]:
    d = _base(i, rng)
    d["data"] = _valid_data(d["type"])
    return d


def _key(d: dict[str, Any]) -> bytes:
    return str(d["subject"]).encode()


def _pad(n: int) -> str:
    return (FILLER * (n // len(FILLER) + 1))[:n]


def _sized(d: dict[str, Any], size: int) -> bytes:
    """``d`` with a data.fields value padded so that the record is exactly ``size`` bytes."""
    d = {**d, "type": "ticket.created", "data": {**_valid_data("ticket.created"), "fields": {"pad": ""}}}
    empty = len(orjson.dumps(d))
    d["data"]["fields"]["pad"] = _pad(max(0, size - empty))
    return orjson.dumps(d)


WRONG_VALUES: list[Any] = [12345, -1, 1.5, True, None, [], {}, ["x"], {"k": "v"}, "", "x" * 2000]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for j, v in enumerate(doc):
            out += _paths(v, (*prefix, j))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = _replace(copy[path[0]], path[1:], value)
    return copy


def _nested(depth: int) -> bytes:
    return b'{"specversion":"1.0","type":"ticket.created","data":{"fields":{"x":' + b"[" * depth + b"]" * depth + b"}}}"


def _family_records(family: str, i: int, rng: random.Random, max_bytes: int) -> Rec:
    d = _doc(i, rng)
    raw = orjson.dumps(d)
    key = _key(d)
    if family == "truncated_json":
        return key, raw[: rng.randint(1, len(raw) - 1)], []
    if family == "invalid_utf8":
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"])
        at = raw.index(b'"subject":"') + len(b'"subject":"')
        return key, raw[:at] + bad + raw[at:], []
    if family == "nul_bytes":
        at = rng.randint(0, len(raw))
        return key, raw[:at] + b"\x00" * rng.randint(1, 8) + raw[at:], []
    if family == "nul_in_fields":  # escaped NULs are legal JSON: the fields that carry them must still be refused
        d["id"] = rng.choice(["\x00", "x\nFORGED log line\r", "\u2028FORGED"])
        d["type"] = "ticket.\x00created"
        return key, orjson.dumps(d), []
    if family == "deeply_nested":
        return key, _nested(rng.choice([600, 1025, 5000, 20000])), []
    if family == "huge_string":
        field_name = rng.choice(["id", "source", "subject", "time"])
        d[field_name] = _pad(rng.randint(1025, max(1100, max_bytes - 500)))
        return key, orjson.dumps(d), []
    if family == "huge_array":
        d["type"] = "ticket.created"
        d["data"] = {**_valid_data("ticket.created"), "tags": [_pad(8)] * rng.randint(501, max(600, max_bytes // 12))}
        return key, orjson.dumps(d), []
    if family == "number_out_of_range":
        choice = rng.randrange(4)
        if choice == 0:
            return key, raw.replace(b'"data":{', b'"data":{"level":1e400,', 1), []
        if choice == 1:
            d["type"], d["data"] = "ticket.escalation_acknowledged", {"by": "x", "level": 10**30}
            return (
                key,
                orjson.dumps({**d, "data": {"by": "x", "level": 1}}).replace(b'"level":1', b'"level":' + b"9" * 40),
                [],
            )
        if choice == 2:
            d["time"] = rng.choice(["99999-01-01T00:00:00Z", "0000-00-00T00:00:00Z", "2026-13-45T25:61:61Z"])
            return key, orjson.dumps(d), []
        d["type"], d["data"] = "ticket.rated", {"score": -(2**63)}
        return key, orjson.dumps(d), []
    if family == "wrong_type":
        path = rng.choice(_paths(d))
        return key, orjson.dumps(_replace(d, path, rng.choice(WRONG_VALUES))), []
    if family == "duplicate_keys":
        bad_type = b'"type":"ticket.exploded"'
        if rng.random() < 0.5:
            return key, raw.replace(b'"type":', bad_type + b',"type":', 1).replace(b"}", b"," + bad_type + b"}", 1), []
        return key, raw[:-1] + b',"subject":"someone-else"}', []  # the key matches the first subject, not the last
    if family == "key_mismatch":
        return rng.choice([b"other", key + b" ", key.upper(), b"\xff\xfe", b""]), raw, []
    if family == "wrong_specversion":
        d["specversion"] = rng.choice(["0.3", "1.0 ", "1", 1.0, None, "", "2.0", ["1.0"]])
        if rng.random() < 0.2:
            del d["specversion"]
        return key, orjson.dumps(d), []
    if family == "just_over_limit":
        return key, _sized(d, max_bytes + rng.randint(1, 64)), []
    if family == "far_over_limit":
        return key, _sized(d, min(900_000, max_bytes * rng.randint(4, 14))), []
    if family == "odd_headers":
        headers = [
            ("ce_specversion", rng.choice([b"1.0", b"\xff1.0", b"1.0\x00"])),
            ("ce_type", rng.choice([b"ticket.created", b"\xfe\xffticket", "ticket.créé".encode("latin-1")])),
            ("ce_id", rng.choice([b"\xc3\x28", b"e-1", "é".encode("utf-16")])),
            ("ce_source", b"fuzz"),
            ("ce_subject", rng.choice([key, b"\x80\x81"])),
            ("ce_time", rng.choice([b"2026-11-20T10:00:00Z", b"\x00\x00"])),
            ("content-type", rng.choice([b"application/json", "application/jsön".encode("latin-1"), b"\xff"])),
        ]
        return key, orjson.dumps(_valid_data("ticket.created")), headers
    if family == "not_an_object":
        return key, rng.choice([b"[]", b'"ticket"', b"123", b"null", b"true", b"[" + raw + b"]"]), []
    if family == "empty":
        return key, rng.choice([b"", b" ", b"\n", None]), []
    if family == "unknown_type":
        d["type"] = rng.choice(["ticket.exploded", "TICKET.CREATED", "ticket.created ", "", "ticket.*"])
        return key, orjson.dumps(d), []
    raise ValueError(family)


FAMILIES = (
    "truncated_json",
    "invalid_utf8",
    "nul_bytes",
    "nul_in_fields",
    "deeply_nested",
    "huge_string",
    "huge_array",
    "number_out_of_range",
    "wrong_type",
    "duplicate_keys",
    "key_mismatch",
    "wrong_specversion",
    "just_over_limit",
    "far_over_limit",
    "odd_headers",
    "not_an_object",
    "empty",
    "unknown_type",
)
#: how often each family is drawn (big records are rarer: they cost broker memory, not more evidence)
WEIGHTS = {"far_over_limit": 0.1, "huge_string": 0.5, "huge_array": 0.3, "just_over_limit": 0.5}


@dataclass
class Bad:
    family: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: str


def rejection(rec: Rec, max_bytes: int) -> str | None:
    """The DLQ reason the worker's decoder gives ``rec``, or ``None`` if it accepts it."""
    key, value, headers = rec
    try:
        decode_record(value, key, dict(headers), max_bytes=max_bytes)
    except DecodeError as err:
        return err.reason
    return None


def hostile_records(count: int, seed: int, max_bytes: int) -> tuple[list[Bad], Counter[str]]:
    """``count`` records the contract rejects, and how many candidates of each family it accepted (not sent)."""
    rng = random.Random(seed)
    weights = [WEIGHTS.get(f, 1.0) for f in FAMILIES]
    out: list[Bad] = []
    accepted: Counter[str] = Counter()
    i = 0
    while len(out) < count:
        family = FAMILIES[i] if i < len(FAMILIES) else rng.choices(FAMILIES, weights)[0]  # each family at least once
        i += 1
        rec = _family_records(family, i, rng, max_bytes)
        reason = rejection(rec, max_bytes)
        if reason is None:
            accepted[family] += 1
            continue
        out.append(Bad(family, rec[0], rec[1], rec[2], reason))
    return out, accepted


# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Feed:
    """What the paced producer sent: bad records' positions and the valid events' worst delay."""

    bad: dict[tuple[int, int], Bad] = field(default_factory=dict)
    valid: set[tuple[int, int]] = field(default_factory=set)
    max_delay_s: float = 0.0
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


def feed(dep: Deployment, valid: list[dict[str, Any]], bad: list[Bad], result: Feed) -> None:
    """Send the valid events at their time stamps and the bad records spread evenly between (in one producer)."""

    async def go() -> None:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=dep.bootstrap, enable_idempotence=False, acks="all", max_request_size=4_000_000
        )
        await producer.start()
        try:
            times = [parse_rfc3339_ms(d["time"]) / 1000 for d in valid]
            start, end = min(times), max(times)
            step = (end - start) / max(1, len(bad))
            plan: list[tuple[float, int, Any]] = [(t, 0, d) for t, d in zip(times, valid, strict=True)]
            plan += [(start + j * step, 1, b) for j, b in enumerate(bad)]
            plan.sort(key=lambda x: (x[0], x[1]))
            pending: list[tuple[Any, Any]] = []
            for at, kind, item in plan:
                while time.time() < at:
                    await asyncio.sleep(min(0.01, at - time.time()))
                if kind == 0:
                    fut = await producer.send(dep.topics["input"], orjson.dumps(item), key=_key(item))
                    result.max_delay_s = max(result.max_delay_s, time.time() - at)
                else:
                    fut = await producer.send(dep.topics["input"], item.value, key=item.key, headers=item.headers)
                pending.append((fut, item))
                if len(pending) >= 500:
                    await _settle(pending, result)
            await _settle(pending, result)
        finally:
            await producer.stop()

    try:
        asyncio.run(go())
    except BaseException as exc:
        result.error = exc
    finally:
        result.done.set()


async def _settle(pending: list[tuple[Any, Any]], result: Feed) -> None:
    for fut, item in pending:
        md = await fut
        if isinstance(item, Bad):
            result.bad[(md.partition, md.offset)] = item
        else:
            result.valid.add((md.partition, md.offset))
    pending.clear()


class RssSampler(threading.Thread):
    """The worker's resident set size every 100 ms (/proc), and the kernel's peak (VmHWM) at the end."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[int] = []
        self.peak_kib = 0
        self._stop_event = threading.Event()

    def read(self, field_name: str) -> int:
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            self.samples.append(self.read("VmRSS"))

    def stop(self) -> None:
        self.peak_kib = self.read("VmHWM")
        self._stop_event.set()
        self.join(timeout=5)


def log_findings(text: str) -> dict[str, Any]:
    lines = text.splitlines()
    longest = max((len(line) for line in lines), default=0)
    quoting = [line[:200] for line in lines if FILLER * 8 in line]
    return {
        "lines": len(lines),
        "longest_line_chars": longest,
        "lines_quoting_a_payload": len(quoting),
        "examples": quoting[:3],
        "forged_lines": sum(1 for line in lines if line.startswith("FORGED")),
        "lines_with_control_chars": sum(1 for line in lines if any(ord(c) < 32 and c != "\t" for c in line)),
    }


def run_campaign(
    dep: Deployment,
    *,
    bad_count: int,
    tickets: int,
    seed: int,
    max_bytes: int,
    scenario: Callable[[int, int, str], list[dict[str, Any]]],
    oracle: Callable[[list[dict[str, Any]]], dict[str, bytes]],
    timeout_s: float = 120.0,
) -> dict[str, Any]:
    """One campaign; returns its figures (the caller asserts on them)."""
    bad, accepted = hostile_records(bad_count, seed, max_bytes)
    worker: WorkerProcess = dep.worker(ESCALATOR_MAX_EVENT_BYTES=str(max_bytes), ESCALATOR_LOG_LEVEL="INFO").start()
    figures: dict[str, Any] = {"bad_records": len(bad), "seed": seed, "max_event_bytes": max_bytes}
    try:
        worker.wait_ready()
        sampler = RssSampler(worker.pid)
        sampler.start()
        time.sleep(0.5)  # a sample or more of the idle worker (not a synchronisation)
        idle_kib = max(sampler.samples or [sampler.read("VmRSS")])
        valid = scenario(int(time.time() * 1000) + 1500, tickets, f"fz{seed}")
        expected = oracle(valid)
        result = Feed()
        started = time.monotonic()
        read = [dep.topics["dlq"], dep.topics["escalations"], dep.topics["notifications"]]  # not the input
        with Collector(dep.bootstrap, read) as collector:
            thread = threading.Thread(target=feed, args=(dep, valid, bad, result), daemon=True)
            thread.start()
            result.done.wait(timeout_s)
            assert result.done.is_set() and result.error is None, f"feeding failed: {result.error!r}"
            sent_s = time.monotonic() - started

            marks: dict[str, float] = {}

            def settled(records: list[Any]) -> bool:
                dlq = [r for r in records if r.topic == dep.topics["dlq"]]
                out = {r.id for r in records if r.topic in (dep.topics["escalations"], dep.topics["notifications"])}
                if len(dlq) >= len(bad):
                    marks.setdefault("dlq_complete_seconds", round(time.monotonic() - started, 1))
                if set(expected) <= out:
                    marks.setdefault("outputs_complete_seconds", round(time.monotonic() - started, 1))
                return len(marks) == 2

            with contextlib.suppress(AssertionError):  # the figures below say what is missing
                collector.wait_for(settled, timeout_s, "every bad record dead-lettered and every expected output")
            drained_s = time.monotonic() - started
            records = collector.snapshot()
        sampler.stop()
        figures.update(_judge(dep, records, result, bad, expected))
        figures.update(
            valid_events=len(valid),
            expected_outputs=len(expected),
            families=dict(Counter(b.family for b in bad)),
            reasons=dict(Counter(b.reason for b in bad)),
            accepted_candidates=dict(accepted),
            bad_bytes=sum(len(b.value or b"") for b in bad),
            feed_seconds=round(sent_s, 1),
            drained_seconds=round(drained_s, 1),
            producer_max_delay_s=round(result.max_delay_s, 3),
            rss_idle_mib=round(idle_kib / 1024, 1),
            rss_max_sampled_mib=round(max(sampler.samples or [0]) / 1024, 1),
            rss_peak_mib=round(sampler.peak_kib / 1024, 1),
            **marks,
        )
    finally:
        figures["exit_code"] = worker.stop()
        figures["log"] = log_findings(worker.log_text())
    return figures


def _judge(
    dep: Deployment, records: list[Any], result: Feed, bad: list[Bad], expected: dict[str, bytes]
) -> dict[str, Any]:
    dlq = [r for r in records if r.topic == dep.topics["dlq"]]
    seen: dict[tuple[int, int], Any] = {}
    for r in dlq:
        seen[(int(r.headers["escalator-dlq-partition"]), int(r.headers["escalator-dlq-offset"]))] = r
    missing = [pos for pos in result.bad if pos not in seen]
    wrong_reason = [
        (pos, b.reason, seen[pos].headers.get("escalator-dlq-reason"))
        for pos, b in result.bad.items()
        if pos in seen and seen[pos].headers.get("escalator-dlq-reason", b"").decode() != b.reason
    ]
    altered = [pos for pos, b in result.bad.items() if pos in seen and (seen[pos].value or b"") != (b.value or b"")]
    no_detail = [pos for pos, r in seen.items() if not r.headers.get("escalator-dlq-detail")]
    valid_in_dlq = [pos for pos in seen if pos in result.valid]
    got = outputs_by_id(r for r in records if r.topic in (dep.topics["escalations"], dep.topics["notifications"]))
    return {
        "dlq_records": len(dlq),
        "bad_sent": len(result.bad),
        "bad_missing_from_dlq": len(missing),
        "dlq_wrong_reason": len(wrong_reason),
        "dlq_wrong_reason_examples": [str(x) for x in wrong_reason[:5]],
        "dlq_value_altered": len(altered),
        "dlq_without_detail": len(no_detail),
        "valid_in_dlq": len(valid_in_dlq),
        "outputs_missing": sorted(set(expected) - set(got))[:20],
        "outputs_missing_count": len(set(expected) - set(got)),
        "outputs_extra": sorted(set(got) - set(expected))[:20],
        "outputs_differing": sorted(k for k in expected if k in got and got[k] != {expected[k]})[:20],
    }
