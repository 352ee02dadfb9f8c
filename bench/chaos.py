"""Chaos campaign (``make chaos``): sustained synthetic load through 2-3 workers while faults hit them on a seeded
schedule, then every output compared with replay (``escalator simulate``'s engine) on exactly the events produced.

One campaign:

1. A fresh embedded broker (Tansu; or the cluster in ``KAFKA_BOOTSTRAP_SERVERS``), fresh topics, two workers
   (``escalator worker``, memory store, the demo policy whose targets are in seconds).
2. **Load**: ``--tickets`` synthetic lifecycles (``escalator.synth``: arrivals, first responses, follow-ups,
   pending periods, re-assignments, solves, reopens, ratings) with their time line compressed 60x (a 20-minute
   first response takes 20 s), paced over ``--minutes`` of wall clock: each event is sent when its time comes and
   stamped with the instant it is sent, so deadlines fire live. One record in ``BAD_EVERY`` is a bad one
   (undecodable JSON, wrong specversion, unknown type, key/subject mismatch) that must end up in the DLQ.
3. **Faults**, on a schedule drawn from ``--seed`` before the run (``schedule`` in the result): SIGKILL and SIGTERM
   of a random worker (restarted after a random delay), SIGSTOP/SIGCONT of a worker for 2.5-5 session timeouts (a
   zombie when it wakes), SIGSTOP/SIGCONT of the broker for 10-30 s, a rolling restart of every worker, and a
   scale-out: a worker configured with another partition count (it must refuse to start) and then a third worker
   (the assignment goes from 2+2 to 2+1+1 partitions and back).
4. **Oracle**: the input topic is read back (duplicated retries included) and replayed with
   ``escalator.replay.simulate`` up to ``T_end`` (the end of the load + 20 s); the union of every output record
   stamped at or before ``T_end`` must have **0 missing ids, 0 ids whose content differs from replay (or from
   itself), 0 extra ids**; duplicates are counted (identical bytes only); every DLQ record is one of the injected
   bad records and every injected bad record is in the DLQ. Events that reached the broker later than the allowed
   lateness (the precondition of live = replay) are counted, and a discrepancy on a ticket that had one is
   reported apart.
5. **Lateness** of every output fired by a deadline = its record timestamp - its ``fired_at`` (the allowed
   lateness, 1 s, included), p50/p99/max per fault type (an output counts for the latest fault that began before it
   was produced and had not been recovered from for 10 s when it fired; ``steady`` otherwise).

Results go to ``bench/results/chaos.json``. A failing campaign keeps its work directory (worker and broker logs,
the produced events, the discrepancies) under ``var/chaos/<run>-seed<seed>`` and the command that reproduces it.

Usage: python bench/chaos.py [--seed 1] [--tickets 20000] [--minutes 6.5] [--campaigns 1] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import platform
import random
import shutil
import signal
import statistics
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))
sys.path.insert(0, str(ROOT))

from tests.integration.workers import Deployment, WorkerProcess  # noqa: E402
from tests.waiting import wait_until  # noqa: E402

from escalator.core import DecodeError, Emit, decode_record, encode_event, format_ms, parse_rfc3339_ms  # noqa: E402

PARTITIONS = 4
POLICY = ROOT / "examples" / "demo-policy.yaml"  # targets in seconds: deadlines fire within the campaign
COMPRESSION = 60  # synthetic time runs 60x faster than the wall clock
LATENESS_S = 1.0  # the worker's allowed lateness (its default)
TAIL_S = 20.0  # the oracle's horizon: the end of the load + this
BAD_EVERY = 400  # one bad record per this many events
RESULT = ROOT / "bench" / "results" / "chaos.json"
FAULT_KINDS = ("kill", "term", "pause-worker", "pause-broker", "rolling", "scale-out")


# --- the schedule ---------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    at_s: float  # planned start, seconds after the load started
    params: dict[str, Any]
    started_ms: int = 0
    recovered_ms: int = 0
    notes: list[str] = field(default_factory=list)


def plan(rng: random.Random, load_s: float, quick: bool, session_s: float, broker_local: bool) -> list[Fault]:
    """The faults of one campaign, with every random choice made here (the schedule is known before the run)."""
    kinds = list(FAULT_KINDS) if quick else ["kill", "kill", "term", "term", *FAULT_KINDS[2:]]
    if not broker_local:
        kinds.remove("pause-broker")  # a remote cluster's broker cannot be signalled from here
    rng.shuffle(kinds)
    first, last = 20.0, load_s - 35.0
    slot = (last - first) / len(kinds)
    faults = []
    for n, kind in enumerate(kinds):
        at = first + n * slot + rng.uniform(0, slot * 0.3)
        params: dict[str, Any] = {}
        if kind in ("kill", "term"):
            params = {"worker": rng.randrange(2), "down_s": round(rng.uniform(1.0, 8.0), 1)}
        elif kind == "pause-worker":
            params = {"worker": rng.randrange(2), "pause_s": round(rng.uniform(2.5, 5.0) * session_s, 1)}
        elif kind == "pause-broker":
            params = {"pause_s": round(rng.uniform(10.0, 12.0 if quick else 30.0), 1)}
        elif kind == "rolling":
            params = {"order": rng.sample([0, 1], 2)}
        elif kind == "scale-out":
            params = {"hold_s": round(rng.uniform(8.0, 12.0 if quick else 25.0), 1)}
        faults.append(Fault(kind, round(at, 1), params))
    return faults


# --- the load -------------------------------------------------------------------------------------------------------


def lifecycles(seed: int, tickets: int, load_s: float, t0: float, prefix: str) -> list[tuple[float, dict[str, Any]]]:
    """(wall instant to send, event) of ``tickets`` synthetic tickets arriving over the load (their time line
    compressed), every event due before the load ends."""
    from escalator.synth import lifecycle_events

    start = 1_795_000_000_000
    arrivals_s = load_s - 10.0
    per_hour = tickets / arrivals_s * 3600 / COMPRESSION  # tickets per synthetic hour
    out = []
    for doc in lifecycle_events(tickets, seed=seed, start_ms=start, per_hour=per_hour, prefix=prefix):
        at = t0 + (parse_rfc3339_ms(doc["time"]) - start) / 1000 / COMPRESSION
        if at > t0 + load_s:
            break  # time ordered: everything after is later too
        out.append((at, doc))
    return out


def bad_record(rng: random.Random, seq: int, doc: dict[str, Any]) -> tuple[bytes, bytes, str]:
    """A record the worker must dead-letter (key, value, kind); the value is unique (it carries ``seq``)."""
    kind = rng.choice(("json", "specversion", "type", "subject"))
    key = str(doc["subject"]).encode()
    bad = dict(doc, id=f"bad-{seq}")
    if kind == "json":
        return key, orjson.dumps(bad)[: -7 - seq % 5], kind
    if kind == "specversion":
        bad["specversion"] = "0.3"
    elif kind == "type":
        bad["type"] = "ticket.teleported"
    else:
        bad["subject"] = f"{doc['subject']}-other"
    return key, orjson.dumps(bad), kind


class Load(threading.Thread):
    """Sends each event when the wall clock reaches its instant, stamped with the instant it is sent (monotonic per
    run), a batch at a time, waiting for every delivery before the next batch (a stalled broker holds it up, and
    what comes after is stamped when it is really sent). Records every event's delivery delay."""

    def __init__(self, bootstrap: str, topic: str, schedule: list[tuple[float, dict[str, Any]]], seed: int) -> None:
        super().__init__(daemon=True, name="chaos-load")
        self.bootstrap, self.topic, self.schedule = bootstrap, topic, schedule
        self.rng = random.Random(seed * 7919)
        self.sent: dict[str, int] = {}  # event id -> send order
        self.late: dict[str, float] = {}  # event id -> seconds from its time stamp to its delivery, when > lateness
        self.delays: list[float] = []
        self.bad: dict[bytes, str] = {}  # value -> kind
        self.failed = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc
            traceback.print_exc()

    def _run(self) -> None:
        from confluent_kafka import Producer

        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "enable.idempotence": False,
                "acks": "all",
                "linger.ms": 5,
                "partitioner": "murmur2_random",  # Kafka's default partitioner, like the worker's /tickets routing
            }
        )
        last_ms = 0
        i = 0
        n = len(self.schedule)
        while i < n and not self.stopping.is_set():
            wait = self.schedule[i][0] - time.time()
            if wait > 0:
                self.stopping.wait(min(wait, 0.05))  # pacing
                continue
            now_ms = max(last_ms, int(time.time() * 1000))
            last_ms = now_ms
            stamp = format_ms(now_ms)
            while i < n and self.schedule[i][0] <= time.time():
                doc = self.schedule[i][1]
                doc["time"] = stamp
                self._send(producer, doc, now_ms)
                if len(self.sent) % BAD_EVERY == 0:
                    key, value, kind = bad_record(self.rng, len(self.sent), doc)
                    self.bad[value] = kind
                    producer.produce(self.topic, value, key, on_delivery=self._bad_delivered)
                i += 1
            while producer.flush(1.0) > 0:
                pass  # the broker is stalled: this batch waits, the next one is stamped when it is sent

    def _send(self, producer: Any, doc: dict[str, Any], stamped_ms: int) -> None:
        eid = str(doc["id"])
        self.sent[eid] = len(self.sent)

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                self.failed += 1
                return
            delay = time.time() - stamped_ms / 1000
            self.delays.append(delay)
            if delay > LATENESS_S:
                self.late[eid] = delay

        producer.produce(self.topic, orjson.dumps(doc), str(doc["subject"]).encode(), on_delivery=delivered)

    def _bad_delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failed += 1


# --- the deployment under faults ------------------------------------------------------------------------------------


class Cluster:
    """The workers of one campaign (by index; 0 and 1 always, 2 during a scale-out) and the broker's PID."""

    def __init__(self, dep: Deployment, broker_pid: int | None, session_s: float) -> None:
        self.dep = dep
        self.broker_pid = broker_pid
        self.session_s = session_s
        self.workers: dict[int, WorkerProcess] = {}
        self.exits: list[dict[str, Any]] = []  # every stop: worker, signal, exit code, seconds to exit
        self.unexpected: list[str] = []

    def env(self) -> dict[str, str]:
        return {
            "ESCALATOR_ALLOWED_LATENESS_SECONDS": str(LATENESS_S),
            "ESCALATOR_SESSION_TIMEOUT_SECONDS": str(self.session_s),
            "ESCALATOR_REBALANCE_TIMEOUT_SECONDS": str(self.session_s),
            "ESCALATOR_LOG_LEVEL": "INFO",
            "ESCALATOR_DEBUG_LOGGERS": "",
            "ESCALATOR_SHUTDOWN_GRACE_SECONDS": "10",
        }

    def start(self, i: int, **extra: str) -> WorkerProcess:
        w = self.dep.worker(i, **self.env(), **extra)
        self.workers[i] = w.start()
        return w

    def stop(self, i: int, sig: int, why: str) -> int | None:
        w = self.workers.pop(i)
        t = time.monotonic()
        code = w.stop(sig, timeout=30)
        self.exits.append(
            {"worker": i, "signal": signal.Signals(sig).name, "exit": code, "seconds": round(time.monotonic() - t, 2)}
        )
        if sig == signal.SIGTERM and code != 0:
            self.unexpected.append(f"worker {i} exited {code} on SIGTERM ({why})")
        return code

    def signal(self, i: int, sig: int) -> None:
        os.killpg(self.workers[i].pid, sig)

    def owned(self) -> dict[int, list[int]]:
        out = {}
        for i, w in self.workers.items():
            status, body = w.get("/readyz", timeout=2.0)
            out[i] = orjson.loads(body).get("partitions", []) if status == 200 and body else []
        return out

    def settled(self) -> bool:
        """Every worker ready with partitions and together owning each input partition once."""
        for i, w in self.workers.items():
            if not w.alive():
                raise AssertionError(f"worker {i} exited ({w.proc and w.proc.returncode}):\n{w.log_tail()}")
        owned = self.owned()
        return all(owned.values()) and sorted(p for ps in owned.values() for p in ps) == list(range(PARTITIONS))

    def wait_settled(self, timeout: float = 120.0) -> None:
        wait_until(self.settled, timeout, "every worker ready, owning every partition once", interval=0.2)

    def check_alive(self) -> None:
        for i, w in list(self.workers.items()):
            if not w.alive():
                self.unexpected.append(f"worker {i} died by itself with code {w.proc and w.proc.returncode}")
                self.workers.pop(i)
                self.start(i)


def pause(seconds: float) -> None:
    """Hold a fault for ``seconds`` (the fault's duration, not a synchronisation)."""
    end = time.monotonic() + seconds
    wait_until(lambda: time.monotonic() >= end, seconds + 5, "the fault's duration", interval=0.05)


def inject(cluster: Cluster, fault: Fault) -> None:
    p = fault.params
    if fault.kind in ("kill", "term"):
        sig = signal.SIGKILL if fault.kind == "kill" else signal.SIGTERM
        code = cluster.stop(p["worker"], sig, fault.kind)
        fault.notes.append(f"worker {p['worker']} exited {code}")
        pause(p["down_s"])
        cluster.start(p["worker"])
    elif fault.kind == "pause-worker":
        cluster.signal(p["worker"], signal.SIGSTOP)
        pause(p["pause_s"])
        cluster.signal(p["worker"], signal.SIGCONT)
    elif fault.kind == "pause-broker":
        assert cluster.broker_pid is not None
        os.kill(cluster.broker_pid, signal.SIGSTOP)
        try:
            pause(p["pause_s"])
        finally:
            os.kill(cluster.broker_pid, signal.SIGCONT)
    elif fault.kind == "rolling":
        for i in p["order"]:
            code = cluster.stop(i, signal.SIGTERM, "rolling restart")
            fault.notes.append(f"worker {i} exited {code}")
            cluster.start(i)
            cluster.wait_settled()
    elif fault.kind == "scale-out":
        scale_out(cluster, fault)


def scale_out(cluster: Cluster, fault: Fault) -> None:
    """A worker configured for another partition count must refuse to start; then a third worker joins (the
    assignment changes from 2+2 to 2+1+1 partitions), holds its share a while and leaves again."""
    wrong = cluster.start(2, ESCALATOR_PARTITIONS=str(PARTITIONS * 2))
    wait_until(lambda: not wrong.alive(), 60, "the misconfigured worker to refuse to start")
    cluster.workers.pop(2)
    fault.notes.append(
        f"worker with ESCALATOR_PARTITIONS={PARTITIONS * 2} exited {wrong.proc and wrong.proc.returncode}"
    )
    if wrong.proc is None or wrong.proc.returncode != 2:
        cluster.unexpected.append(f"a misconfigured worker exited {wrong.proc and wrong.proc.returncode}, not 2")
    cluster.start(2)
    cluster.wait_settled()
    fault.notes.append(f"3 workers own {cluster.owned()}")
    pause(fault.params["hold_s"])
    code = cluster.stop(2, signal.SIGTERM, "scale-in")
    fault.notes.append(f"worker 2 exited {code}")


def run_faults(cluster: Cluster, faults: list[Fault], t0: float) -> None:
    for fault in faults:
        at = t0 + fault.at_s
        wait_until(lambda at=at: time.time() >= at, max(1.0, at - time.time() + 5), "the fault's time", 0.1)
        cluster.check_alive()
        fault.started_ms = int(time.time() * 1000)
        print(f"  {fault.started_ms / 1000 - t0:6.1f}s  {fault.kind} {fault.params}", flush=True)
        inject(cluster, fault)
        cluster.wait_settled()
        fault.recovered_ms = int(time.time() * 1000)
        print(f"  {fault.recovered_ms / 1000 - t0:6.1f}s  recovered ({'; '.join(fault.notes)})", flush=True)


# --- reading back, the oracle ---------------------------------------------------------------------------------------


@dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int


def read_all(bootstrap: str, topics: list[str]) -> list[Rec]:
    """Every record of ``topics`` from the beginning to the end (assigned partitions, no group)."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "chaos-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        parts = []
        for t in topics:
            meta = c.list_topics(t, timeout=20).topics[t]
            parts += [TopicPartition(t, p, 0) for p in meta.partitions]
        c.assign(parts)
        left = {(tp.topic, tp.partition) for tp in parts}
        out: list[Rec] = []
        deadline = time.monotonic() + 300
        while left and time.monotonic() < deadline:
            for m in c.consume(num_messages=10_000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        left.discard((m.topic(), m.partition()))
                    continue
                out.append(Rec(m.topic(), m.partition(), m.offset(), m.key(), m.value(), m.timestamp()[1]))
        if left:
            raise AssertionError(f"could not read {sorted(left)} to the end")
        return out
    finally:
        c.close()


def oracle(
    inputs: list[Rec], sent: dict[str, int], t_end: int, policy_text: str
) -> tuple[dict[str, bytes], dict[str, str], int]:
    """Replay of the input topic as it is (a retried send shows up twice, as the worker saw it), in send order:
    (output id -> bytes up to ``t_end``, event id -> ticket, bad records found in the input)."""
    from escalator.core import load_policy_text
    from escalator.replay.simulate import simulate

    events = []
    bad = 0
    for r in inputs:
        try:
            events.append(decode_record(r.value, r.key))  # the key must be the subject, as the worker checks
        except DecodeError:
            bad += 1
    order = sent
    events.sort(key=lambda e: (order.get(e.id, len(order)), e.time_ms))
    tickets = {e.id: e.ticket_id for e in events}
    policy = load_policy_text(policy_text, "policy.yaml")
    expected = {c.id: encode_event(c.event) for c in simulate(events, policy, until_ms=t_end) if isinstance(c, Emit)}
    return expected, tickets, bad


@dataclass
class Evidence:
    """What a campaign's verdict is computed from (pickled in its work directory: ``--judge`` reads it again)."""

    records: list[Rec]
    topics: dict[str, str]
    sent: dict[str, int]  # event id -> send order
    late: dict[str, float]  # event id -> delivery delay, when over the allowed lateness
    delays: list[float]
    bad: dict[bytes, str]
    failed: int
    t_end: int
    faults: list[Fault]
    policy: str  # the text the workers ran with


def judge(ev: Evidence) -> dict[str, Any]:
    topics, records, t_end = ev.topics, ev.records, ev.t_end
    inputs = [r for r in records if r.topic == topics["input"]]
    expected, tickets, bad_in = oracle(inputs, ev.sent, t_end, ev.policy)
    live: dict[str, set[bytes]] = {}
    copies: dict[str, int] = {}
    lateness: list[tuple[int, int]] = []  # (fired_at, record timestamp - fired_at)
    for r in records:
        if r.topic not in (topics["escalations"], topics["notifications"]):
            continue
        doc = orjson.loads(r.value)
        if parse_rfc3339_ms(doc["time"]) > t_end:
            continue
        live.setdefault(doc["id"], set()).add(r.value)
        copies[doc["id"]] = copies.get(doc["id"], 0) + 1
        fired = doc.get("data", {}).get("fired_at")
        if fired:
            at = parse_rfc3339_ms(fired)
            lateness.append((at, r.timestamp_ms - at))
    missing = sorted(set(expected) - set(live))
    extra = sorted(set(live) - set(expected))
    differs = sorted(k for k, v in live.items() if k in expected and v != {expected[k]})
    late_tickets = {tickets[e] for e in ev.late if e in tickets}

    def explained(ids: list[str]) -> list[str]:
        """The ids among ``ids`` about a ticket that had an event later than the allowed lateness."""
        out = []
        for k in ids:
            value = expected.get(k) or next(iter(live[k]))
            if orjson.loads(value).get("subject") in late_tickets:
                out.append(k)
        return out

    dlq = [r for r in records if r.topic == topics["dlq"]]
    dlq_values = {r.value for r in dlq}
    problems = {"missing": missing, "extra": extra, "differs": differs}
    unexplained = {k: sorted(set(v) - set(explained(v))) for k, v in problems.items()}
    return {
        "events_in_input": len(inputs) - bad_in,
        "events_sent": len(ev.sent),
        "send_failures": ev.failed,
        "events_later_than_allowed_lateness": len(ev.late),
        "max_delivery_delay_s": round(max(ev.delays, default=0.0), 3),
        "expected_outputs": len(expected),
        "live_outputs": len(live),
        "output_records": sum(copies.values()),
        "ids_with_duplicates": sum(1 for n in copies.values() if n > 1),
        "duplicate_records": sum(n - 1 for n in copies.values()),
        "missing": len(missing),
        "extra": len(extra),
        "differs": len(differs),
        "unexplained_by_late_input": {k: len(v) for k, v in unexplained.items()},
        "examples": {k: v[:10] for k, v in problems.items()},
        "dlq_records": len(dlq),
        "bad_sent": len(ev.bad),
        "bad_in_input": bad_in,
        "bad_missing_from_dlq": sum(1 for v in ev.bad if v not in dlq_values),
        "dlq_unaccounted": sum(1 for r in dlq if r.value not in ev.bad),
        "lateness_ms": lateness_by_fault(lateness, ev.faults),
    }


def lateness_by_fault(lateness: list[tuple[int, int]], faults: list[Fault]) -> dict[str, dict[str, float]]:
    """p50/p99/max of (fired_at, lateness) pairs by the fault an output waited through: the latest fault that began
    before the output was produced and had not been recovered from for 10 s when it fired (``steady``: none)."""
    groups: dict[str, list[int]] = {}
    for fired, late in lateness:
        kind = "steady"
        for f in sorted(faults, key=lambda f: -f.started_ms):  # the latest fault while it waited to be produced
            if f.started_ms <= fired + late and fired <= f.recovered_ms + 10_000:
                kind = f.kind
                break
        groups.setdefault(kind, []).append(late)
    out = {}
    for kind, values in sorted(groups.items()):
        values.sort()
        out[kind] = {
            "outputs": len(values),
            "p50": values[len(values) // 2],
            "p99": values[min(len(values) - 1, int(0.99 * len(values)))],
            "max": values[-1],
        }
    return out


def passed(v: dict[str, Any]) -> bool:
    return (
        all(n == 0 for n in v["unexplained_by_late_input"].values())
        and v["bad_missing_from_dlq"] == 0
        and v["dlq_unaccounted"] == 0
        and v["send_failures"] == 0
    )


# --- one campaign ---------------------------------------------------------------------------------------------------


@dataclass
class Options:
    seed: int
    tickets: int
    load_s: float
    quick: bool
    work: Path


def campaign(opts: Options) -> dict[str, Any]:
    from escalator.broker.embedded import EmbeddedBroker

    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or os.environ.get("ESCALATOR_BOOTSTRAP_SERVERS")
    opts.work.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if servers:
            bootstrap, flavour, broker_pid = servers, os.environ.get("ESCALATOR_BROKER_FLAVOUR", "kafka"), None
        else:
            broker = stack.enter_context(EmbeddedBroker(log_dir=opts.work))
            bootstrap, flavour, broker_pid = broker.bootstrap, "tansu", broker.pid
        session_s = 2.0 if flavour == "tansu" else 6.0  # Kafka's group.min.session.timeout.ms is 6 s
        rng = random.Random(opts.seed)
        faults = plan(rng, opts.load_s, opts.quick, session_s, broker_pid is not None)
        policy = opts.work / "policy.yaml"  # a copy: the workers and the oracle read the same text
        shutil.copyfile(POLICY, policy)
        dep = Deployment(bootstrap, flavour, opts.work, partitions=PARTITIONS, policy_file=policy)
        dep.name = f"chaos{opts.seed}-{int(time.time()) % 100_000}"
        dep.create_topics()
        cluster = Cluster(dep, broker_pid, session_s)
        if servers:
            stack.callback(delete_topics, dep)
        stack.callback(stop_all, cluster)
        return run_campaign(opts, dep, cluster, faults, flavour)
    raise AssertionError("unreachable")


def delete_topics(dep: Deployment) -> None:
    """A real cluster keeps its topics: delete the campaign's."""
    from confluent_kafka.admin import AdminClient

    from escalator.service.topics import topic_specs

    names = [spec.name for spec in topic_specs(dep.settings())]
    for future in AdminClient({"bootstrap.servers": dep.bootstrap}).delete_topics(names).values():
        with contextlib.suppress(Exception):
            future.result(30)


def stop_all(cluster: Cluster) -> None:
    for i in list(cluster.workers):
        w = cluster.workers[i]
        if w.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(w.pid, signal.SIGCONT)
        cluster.stop(i, signal.SIGTERM, "the end of the campaign")
    if cluster.broker_pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(cluster.broker_pid, signal.SIGCONT)


def run_campaign(opts: Options, dep: Deployment, cluster: Cluster, faults: list[Fault], flavour: str) -> dict[str, Any]:
    cluster.start(0)
    cluster.start(1)
    cluster.wait_settled()
    schedule = lifecycles(opts.seed, opts.tickets, opts.load_s, 0.0, prefix=f"T{opts.seed}-")
    t0 = time.time() + 1.0  # the load starts now that every event is made
    schedule = [(t0 + at, doc) for at, doc in schedule]
    created = sum(1 for _at, d in schedule if d["type"] == "ticket.created")
    print(
        f"campaign seed {opts.seed}: {created:,} tickets, {len(schedule):,} events over {opts.load_s:.0f}s", flush=True
    )
    load = Load(dep.bootstrap, dep.topics["input"], schedule, opts.seed)
    load.start()
    try:
        run_faults(cluster, faults, t0)
    finally:
        load.join(timeout=opts.load_s + 300)
        load.stopping.set()
    if load.error is not None:
        raise load.error
    t_end = int((t0 + opts.load_s + TAIL_S) * 1000)
    wait_until(lambda: time.time() * 1000 > t_end + LATENESS_S * 1000 + 10_000, 600, "the oracle's horizon", 0.2)
    cluster.check_alive()
    cluster.wait_settled()
    records = read_all(dep.bootstrap, [dep.topics[k] for k in ("input", "escalations", "notifications", "dlq")])
    policy = dep.policy_file.read_text()
    evidence = Evidence(
        records, dep.topics, load.sent, load.late, load.delays, load.bad, load.failed, t_end, faults, policy
    )
    with (opts.work / "evidence.pickle").open("wb") as f:
        pickle.dump(evidence, f)  # python bench/chaos.py --judge <work dir>/evidence.pickle judges it again
    verdict = judge(evidence)
    stop_all(cluster)
    verdict["unexpected"] = cluster.unexpected
    ok = passed(verdict) and not cluster.unexpected
    return {
        "seed": opts.seed,
        "quick": opts.quick,
        "broker": flavour,
        "tickets": created,
        "load_seconds": opts.load_s,
        "events_per_s": round(len(schedule) / opts.load_s, 1),
        "schedule": [
            asdict(f)
            | {"started_s": round(f.started_ms / 1000 - t0, 1), "recovered_s": round(f.recovered_ms / 1000 - t0, 1)}
            for f in faults
        ],
        "exits": cluster.exits,
        "verdict": verdict,
        "passed": ok,
    }


# --- main -----------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1, help="the first campaign's seed (the next ones: +1, +2, ...)")
    parser.add_argument("--tickets", type=int, help="tickets per campaign (default 20,000; --quick 2,000)")
    parser.add_argument("--minutes", type=float, help="load duration per campaign (default 6.5; --quick 2.5)")
    parser.add_argument("--campaigns", type=int, default=1, help="run this many campaigns in a row")
    parser.add_argument("--quick", action="store_true", help="a short campaign with each fault once (a smoke run)")
    parser.add_argument("--result", default=str(RESULT))
    parser.add_argument("--keep", action="store_true", help="keep the work directory of campaigns that pass too")
    parser.add_argument("--judge", type=Path, help="only judge a kept campaign again (its evidence.pickle)")
    args = parser.parse_args()
    if args.judge:
        with args.judge.open("rb") as f:
            verdict = judge(pickle.load(f))
        print(json.dumps(verdict, indent=2))
        return 0 if passed(verdict) else 1
    tickets = args.tickets or (2_000 if args.quick else 20_000)
    load_s = 60 * (args.minutes or (2.5 if args.quick else 6.5))
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = []
    for n in range(args.campaigns):
        seed = args.seed + n
        work = ROOT / "var" / "chaos" / f"{run_id}-seed{seed}"
        opts = Options(seed, tickets, load_s, args.quick, work)
        started = time.monotonic()
        try:
            res = campaign(opts)
        except Exception as exc:
            traceback.print_exc()
            res = {"seed": seed, "quick": args.quick, "passed": False, "error": f"{type(exc).__name__}: {exc}"}
        res["seconds"] = round(time.monotonic() - started, 1)
        res["reproduce"] = reproduce_command(seed, tickets, load_s, args.quick)
        if res["passed"] and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            res["work_dir"] = str(work.relative_to(ROOT))
            (work / "result.json").write_text(json.dumps(res, indent=2) + "\n")
        results.append(res)
        print(summary_line(res), flush=True)
        # after every campaign: a streak cut short still leaves the campaigns it ran
        write_results(Path(args.result), results, run_id, args.campaigns)
    return 0 if all(r["passed"] for r in results) else 1


def reproduce_command(seed: int, tickets: int, load_s: float, quick: bool) -> str:
    return f"python bench/chaos.py --seed {seed} --tickets {tickets} --minutes {load_s / 60:g}" + (
        " --quick" if quick else ""
    )


def summary_line(res: dict[str, Any]) -> str:
    if "verdict" not in res:
        return f"campaign seed {res['seed']}: ERROR {res.get('error')} ({res['seconds']}s)"
    v = res["verdict"]
    late = ", ".join(f"{k} p99 {x['p99']} max {x['max']} ms" for k, x in v["lateness_ms"].items())
    return (
        f"campaign seed {res['seed']}: {'PASS' if res['passed'] else 'FAIL'} in {res['seconds']}s -- "
        f"{v['expected_outputs']:,} expected outputs, missing {v['missing']}, differs {v['differs']}, extra "
        f"{v['extra']} (unexplained by late input: {v['unexplained_by_late_input']}), duplicate records "
        f"{v['duplicate_records']}, DLQ {v['dlq_records']}/{v['bad_sent']} bad records; lateness: {late}"
    )


def write_results(path: Path, results: list[dict[str, Any]], run_id: str, planned: int) -> None:
    previous = json.loads(path.read_text()) if path.exists() else {}
    entry = {
        "run": run_id,
        "command": "python bench/chaos.py " + " ".join(sys.argv[1:]),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "planned": planned,
        "campaigns": results,
        "passed": sum(1 for r in results if r["passed"]),
        "seconds_median": statistics.median(r["seconds"] for r in results),
    }
    key = "quick" if results and results[0].get("quick") else "full"
    if planned > 1:
        key += "-streak"  # --campaigns N: kept beside the last single campaign of its kind
    previous.setdefault("runs", {})[key] = entry  # the last run of each kind
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
