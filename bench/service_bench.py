"""Benchmark: the live service on a broker, measured against what the broker and client libraries carry.

One run, one broker (the embedded Tansu unless KAFKA_BOOTSTRAP_SERVERS is set), the same records for everyone:

1. **Throughput**, each contender in its own process on fresh topics, interleaved, ``--repeat`` times (medians):
   * ``raw-aiokafka`` -- a consume -> produce loop with aiokafka (``getmany``, ``send`` per record, flush and commit
     per batch);
   * ``raw-confluent`` -- the same loop with confluent-kafka (``consume(5000)``, ``produce`` per record);
   * ``faust`` -- a plain faust agent, one table write and one send per event (the peer escalator replaced; needs
     the ``bench`` extra, skipped otherwise);
   * ``escalator-memory`` / ``escalator-rocksdb`` -- ``escalator worker`` with each store, the records as a backlog
     (decoded, applied, deadlines fired, outputs and state changes produced, offsets committed).
   Events/s is counted from a contender's first consumed record to its last flushed one (group joins excluded).
2. **Timers at scale** (``--timer-tickets``, default 100,000): tickets whose first deadline falls due spread over a
   minute, while a paced producer feeds other tickets at half the worker's measured capacity. Lateness of every
   output = its record timestamp - its ``fired_at`` - the allowed lateness (p50 / p99 / max); worker RSS per
   tracked ticket (memory store).
3. **Recovery** (``--recovery-tickets``, default 1,000,000): a worker (memory store) ingests that many tickets, is
   killed (SIGKILL) and restarted; time to ready and to the first output of a deadline that fell due while it was
   down; RSS per tracked ticket at that scale.

Writes ``bench/results/service.json``; docs/benchmarks.md quotes it.

Usage: python bench/service_bench.py [--events-tickets 10000] [--repeat 3] [--timer-tickets N] [--recovery-tickets N]
       [--only throughput,timers,recovery]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "services"))
sys.path.insert(0, str(ROOT))

from tests.waiting import wait_until  # noqa: E402

from escalator.core import format_ms, parse_rfc3339_ms  # noqa: E402

PARTITIONS = 4
TIMER_POLICY = ROOT / "bench" / "timer-policy.yaml"


# --- broker and topics -------------------------------------------------------------------------------------------


_ADMINS: dict[str, Any] = {}


def admin(bootstrap: str) -> Any:
    """One admin client per broker, kept alive (its futures fail if it is collected before they resolve)."""
    from confluent_kafka.admin import AdminClient

    if bootstrap not in _ADMINS:
        _ADMINS[bootstrap] = AdminClient({"bootstrap.servers": bootstrap})
    return _ADMINS[bootstrap]


def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    from confluent_kafka.admin import NewTopic

    futures = admin(bootstrap).create_topics([NewTopic(n, partitions, 1) for n in names])
    for f in futures.values():
        f.result()


def delete_topics(bootstrap: str, names: list[str]) -> None:
    try:
        for f in admin(bootstrap).delete_topics(names).values():
            f.result()
    except Exception as exc:  # frees broker memory; not part of any result
        print(f"  (could not delete topics: {exc})", file=sys.stderr)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": False,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
        }
    )
    for key, value in records:
        while True:
            try:
                p.produce(topic, value, key)
                break
            except BufferError:
                p.poll(0.1)
    assert p.flush(120) == 0


def synth_records(tickets: int, seed: int = 11) -> list[tuple[bytes, bytes]]:
    from escalator.synth import lifecycle_events

    return [(e["subject"].encode(), orjson.dumps(e)) for e in lifecycle_events(tickets, seed=seed)]


def group_committed(bootstrap: str, group: str, topic: str) -> int:
    """The sum of a group's committed offsets on ``topic`` (its partitions named: Tansu needs them)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in range(PARTITIONS)])
    try:
        (future,) = admin(bootstrap).list_consumer_group_offsets([request]).values()
        return sum(max(0, tp.offset) for tp in future.result(timeout=10).topic_partitions)
    except Exception:
        return 0


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --- throughput contenders (children) --------------------------------------------------------------------------------


def child_raw_confluent(bootstrap: str, topic: str, out: str, n: int) -> dict[str, float]:
    from confluent_kafka import Consumer, Producer

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 3000,
        }
    )
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "linger.ms": 5})
    c.subscribe([topic])
    seen = 0
    first = None
    while seen < n:
        msgs = c.consume(num_messages=5000, timeout=0.1)
        if not msgs:
            continue
        if first is None:
            first = time.perf_counter()
        for m in msgs:
            p.produce(out, m.value(), m.key())
        p.poll(0)
        seen += len(msgs)
        c.commit(asynchronous=True)
    p.flush(60)
    assert first is not None
    seconds = time.perf_counter() - first
    c.close()
    return {"events": seen, "seconds": seconds}


def child_raw_aiokafka(bootstrap: str, topic: str, out: str, n: int) -> dict[str, float]:
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> dict[str, float]:
        c = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"raw-{uuid.uuid4().hex[:8]}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=3000,
            heartbeat_interval_ms=500,
        )
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False, linger_ms=5)
        await c.start()
        await p.start()
        seen = 0
        first = None
        try:
            while seen < n:
                batch = await c.getmany(timeout_ms=100, max_records=5000)
                for msgs in batch.values():
                    if first is None and msgs:
                        first = time.perf_counter()
                    for m in msgs:
                        await p.send(out, m.value, key=m.key)
                    seen += len(msgs)
                if batch:
                    await p.flush()
                    await c.commit()
            assert first is not None
            return {"events": seen, "seconds": time.perf_counter() - first}
        finally:
            await p.stop()
            await c.stop()

    return asyncio.run(run())


def child_faust(bootstrap: str, topic: str, out: str, n: int) -> dict[str, float]:
    import faust

    app = faust.App(
        f"faustpeer-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        web_enabled=False,
        autodiscover=False,
        topic_partitions=PARTITIONS,
        broker_session_timeout=3,
        broker_heartbeat_interval=0.5,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
    )
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(topic, **raw)
    sink = app.topic(out, **raw)
    table = app.Table("state", partitions=PARTITIONS, key_type=bytes, value_type=bytes)
    result: dict[str, float] = {}
    state = {"seen": 0, "first": 0.0}

    @app.agent(source)
    async def process(stream: Any) -> None:
        async for event in stream.events():
            if state["seen"] == 0:
                state["first"] = time.perf_counter()
            table[event.key] = event.value[:64]
            await sink.send(key=event.key, value=event.value)
            state["seen"] += 1
            if state["seen"] >= n:
                await app.producer.flush()
                result.update(events=state["seen"], seconds=time.perf_counter() - state["first"])
                print(json.dumps(result), flush=True)
                os._exit(0)

    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return result


def run_child(kind: str, bootstrap: str, topic: str, out: str, n: int, timeout: float = 900) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--bootstrap",
        bootstrap,
        "--topic",
        topic,
        "--out",
        out,
        "-n",
        str(n),
    ]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    for line in reversed(proc.stdout.splitlines()):
        if "{" in line:  # faust may print terminal control codes before it
            return dict(json.loads(line[line.index("{") :]))
    raise RuntimeError(f"{kind} child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


# --- the escalator worker -------------------------------------------------------------------------------------------


class Worker:
    """``escalator worker`` as a subprocess with its own app id and topics (stopped by PID)."""

    def __init__(self, bootstrap: str, flavour: str, tmp: Path, *, store: str, policy: Path, app_id: str) -> None:
        from escalator.broker.embedded import free_loopback_port

        self.port = free_loopback_port()
        self.app_id = app_id
        self.env = {
            **os.environ,
            "ESCALATOR_BOOTSTRAP_SERVERS": bootstrap,
            "ESCALATOR_BROKER_FLAVOUR": flavour,
            "ESCALATOR_APP_ID": app_id,
            "ESCALATOR_TOPIC_INPUT": f"{app_id}-events",
            "ESCALATOR_TOPIC_ESCALATIONS": f"{app_id}-escalations",
            "ESCALATOR_TOPIC_NOTIFICATIONS": f"{app_id}-notifications",
            "ESCALATOR_TOPIC_DLQ": f"{app_id}-dlq",
            "ESCALATOR_PARTITIONS": str(PARTITIONS),
            "ESCALATOR_STORE": store,
            "ESCALATOR_DATA_DIR": str(tmp / app_id),
            "ESCALATOR_POLICY_FILE": str(policy),
            "ESCALATOR_WEB_PORT": str(self.port),
            "ESCALATOR_WEB_HOST": "127.0.0.1",
            "ESCALATOR_LOG_LEVEL": "WARNING",
        }
        self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        self.log = tmp / f"{app_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def topics(self) -> dict[str, str]:
        e = self.env
        return {
            "input": e["ESCALATOR_TOPIC_INPUT"],
            "escalations": e["ESCALATOR_TOPIC_ESCALATIONS"],
            "notifications": e["ESCALATOR_TOPIC_NOTIFICATIONS"],
        }

    def create_topics(self) -> list[str]:
        from escalator.service.topics import topic_specs
        from escalator.settings import Settings

        settings = Settings(
            **{k[len("ESCALATOR_") :].lower(): v for k, v in self.env.items() if k.startswith("ESCALATOR_")}
        )  # type: ignore[arg-type]
        names = []
        from confluent_kafka.admin import NewTopic

        new = [NewTopic(s.name, s.partitions, 1, config=s.configs) for s in topic_specs(settings)]
        for f in admin(self.env["ESCALATOR_BOOTSTRAP_SERVERS"]).create_topics(new).values():
            f.result()
        names = [t.topic for t in new]
        return names

    def start(self) -> Worker:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "escalator", "worker"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                start_new_session=True,
            )
        return self

    def get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
                return bytes(resp.read())
        except OSError:
            return None

    def wait_ready(self, timeout: float = 300) -> float:
        started = time.monotonic()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}); see {self.log}")
            body = self.get("/readyz")
            return bool(body and orjson.loads(body).get("ready"))

        wait_until(ready, timeout, f"the worker to be ready (see {self.log})", interval=0.02)
        return time.monotonic() - started

    def metric(self, name: str) -> float:
        body = self.get("/metrics")
        if body is None:
            return 0.0
        total = 0.0
        for line in body.decode().splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)


def measure_worker(
    bootstrap: str, flavour: str, tmp: Path, store: str, records: list[tuple[bytes, bytes]]
) -> dict[str, float]:
    w = Worker(
        bootstrap,
        flavour,
        tmp,
        store=store,
        policy=ROOT / "examples" / "policy.yaml",
        app_id=f"bw-{uuid.uuid4().hex[:8]}",
    )
    names = w.create_topics()
    try:
        produce(bootstrap, w.topics["input"], records)
        w.start()
        w.wait_ready()
        n = len(records)
        first: float | None = None

        def finished() -> float | None:  # committed offsets, asked of the broker: no load on the worker
            nonlocal first
            committed = group_committed(bootstrap, w.app_id, w.topics["input"])
            now = time.perf_counter()
            if first is None and committed > 0:
                first = now
            return now if committed >= n else None

        done = wait_until(finished, 900, f"the worker to commit every input offset (see {w.log})", interval=0.02)
        assert first is not None
        outputs = w.metric("escalator_notifications_total{") + w.metric("escalator_escalations_total{")
        assert w.proc is not None
        cpu = _cpu_seconds(w.proc.pid)
        return {"events": n, "seconds": done - first, "outputs": outputs, "cpu_seconds": cpu}
    finally:
        w.stop()
        delete_topics(bootstrap, names)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(
    bootstrap: str, flavour: str, tmp: Path, tickets: int, repeat: int, only: list[str] | None = None
) -> dict[str, Any]:
    records = synth_records(tickets)
    n = len(records)
    print(f"throughput: {n:,} events ({tickets:,} tickets), {repeat} interleaved rounds", flush=True)
    try:
        import faust  # noqa: F401

        kinds = ["raw-aiokafka", "raw-confluent", "faust", "escalator-memory", "escalator-rocksdb"]
    except ImportError:
        print("  faust is not installed (pip install -e '.[bench]'): the faust peer is skipped", flush=True)
        kinds = ["raw-aiokafka", "raw-confluent", "escalator-memory", "escalator-rocksdb"]
    if only:
        kinds = [k for k in kinds if k in only]
    runs: dict[str, list[float]] = {k: [] for k in kinds}
    details: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}
    for r in range(repeat):
        for kind in kinds:
            if kind.startswith("escalator-"):
                res = measure_worker(bootstrap, flavour, tmp, kind.split("-", 1)[1], records)
            else:
                topic, out = f"bt-{uuid.uuid4().hex[:8]}", f"bto-{uuid.uuid4().hex[:8]}"
                create_topics(bootstrap, [topic, out])
                try:
                    produce(bootstrap, topic, records)
                    res = run_child(kind, bootstrap, topic, out, n)
                finally:
                    delete_topics(bootstrap, [topic, out])
            rate = res["events"] / res["seconds"]
            runs[kind].append(rate)
            details[kind].append(res)
            print(f"  round {r + 1} {kind:18s} {rate:10,.0f} events/s", flush=True)
    med = {k: statistics.median(v) for k, v in runs.items()}
    out: dict[str, Any] = {"events": n, "tickets": tickets, "events_per_s": med, "runs": runs, "details": details}
    ratios: dict[str, float] = {}
    for store in ("memory", "rocksdb"):
        svc = med.get(f"escalator-{store}")
        for peer in ("raw-aiokafka", "raw-confluent", "faust"):
            if svc is not None and peer in med:
                ratios[f"{store}/{peer}"] = svc / med[peer]
    out["ratios"] = ratios
    return out


# --- timers at scale ----------------------------------------------------------------------------------------------


def created_event(ticket: str, at_ms: int, n: int = 0) -> tuple[bytes, bytes]:
    doc = {
        "specversion": "1.0",
        "id": f"{ticket}-c{n}",
        "source": "bench",
        "type": "ticket.created",
        "time": format_ms(at_ms),
        "subject": ticket,
        "data": {"priority": "normal", "requester": {"id": "r"}},
    }
    return ticket.encode(), orjson.dumps(doc)


class OutputCollector:
    """Reads an output topic from the beginning in a thread: (record timestamp ms, fired_at ms) of each output."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        import threading

        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"col-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        # assigned, not subscribed: a group join on Tansu waits half the session timeout (22 s by default)
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self.items: list[tuple[int, int, str]] = []
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop:
            for m in self.consumer.consume(num_messages=5000, timeout=0.2):
                if m.error() is not None:
                    continue
                doc = orjson.loads(m.value())
                fired = doc["data"].get("fired_at")
                if fired:
                    self.items.append((m.timestamp()[1], parse_rfc3339_ms(fired), doc["subject"]))

    def close(self) -> None:
        self.stop = True
        self.thread.join(10)
        self.consumer.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timers(bootstrap: str, flavour: str, tmp: Path, tickets: int, capacity: float) -> dict[str, Any]:
    """``tickets`` tickets whose first deadline (a 50 % warning of a 2 min target) falls due spread over a minute,
    plus a paced load of synthetic lifecycles at half the worker's capacity (``capacity``: events/s)."""
    print(f"timers: {tickets:,} tickets due over one minute, background load {capacity / 2:,.0f} events/s", flush=True)
    w = Worker(bootstrap, flavour, tmp, store="memory", policy=TIMER_POLICY, app_id=f"bt-{uuid.uuid4().hex[:8]}")
    names = w.create_topics()
    collector = None
    try:
        w.start()
        w.wait_ready()
        assert w.proc is not None
        time.sleep(1.0)  # let the idle worker settle before its baseline RSS
        rss0 = rss_mib(w.proc.pid)
        collector = OutputCollector(bootstrap, w.topics["notifications"])
        t0 = int(time.time() * 1000)
        first_due = t0 + 45_000  # warnings at created + 60 s: created from t0 - 15 s on
        spacing = 60_000 / tickets
        records = [created_event(f"D{i:07d}", first_due - 60_000 + int(i * spacing)) for i in range(tickets)]
        produce(bootstrap, w.topics["input"], records)
        # wait until every ticket is applied, then measure the RSS of the tracked tickets
        wait_until(lambda: w.metric("escalator_events_consumed_total{") >= tickets, 600, "every ticket applied", 0.1)
        rss1 = rss_mib(w.proc.pid)
        scrape = []
        for _ in range(5):
            t = time.perf_counter()
            assert w.get("/metrics")
            scrape.append(time.perf_counter() - t)
        # background load: synthetic lifecycles (the throughput phase's mix) re-timed to the moment they are sent, at
        # half the worker's measured capacity, until the window ends
        from confluent_kafka import Producer

        from escalator.synth import lifecycle_events

        rate = capacity / 2
        end = first_due + 60_000 + 5_000
        background = lifecycle_events(10**9, seed=5, prefix="B")
        p = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": False,
                "linger.ms": 25,
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        sent = 0
        started = time.time()
        cpu0 = _cpu_seconds(w.proc.pid)
        while time.time() * 1000 < end:
            due = int((time.time() - started) * rate)
            now_text = format_ms(int(time.time() * 1000))
            while sent < due:
                doc = next(background)
                doc["time"] = now_text
                while True:
                    try:
                        p.produce(w.topics["input"], orjson.dumps(doc), doc["subject"].encode())
                        break
                    except BufferError:  # the broker is behind: wait for deliveries
                        p.poll(0.01)
                sent += 1
            p.poll(0)
            time.sleep(0.005)  # pacing
        p.flush(60)
        worker_cpu = (_cpu_seconds(w.proc.pid) - cpu0) / (time.time() - started)
        try:
            wait_until(
                lambda: len({s for _ts, _f, s in collector.items if s.startswith("D")}) >= tickets,
                120,
                "every warning",
                0.2,
            )
        except AssertionError as exc:  # reported below as missing warnings
            print(f"timers: {exc}", flush=True)
        scraped = (w.get("/metrics") or b"").decode().splitlines()

        def cumulative(name: str) -> dict[str, float]:
            return {
                line.split('le="')[1].split('"')[0]: float(line.rsplit(" ", 1)[1])
                for line in scraped
                if line.startswith(f"{name}_bucket")
            }

        batches = cumulative("escalator_batch_duration_seconds")
        event_lag = cumulative("escalator_event_lag_seconds")
        warnings = [(ts, f) for ts, f, s in collector.items if s.startswith("D")]
        (tmp / "timer-outputs.json").write_bytes(orjson.dumps(collector.items))
        lateness = [max(0.0, (ts - f - 1000)) for ts, f in warnings]
        return {
            "tickets": tickets,
            "warnings_received": len({s for _t, _f, s in collector.items if s.startswith("D")}),
            "background_events": sent,
            "background_events_per_s": rate,
            "worker_cpu_share": worker_cpu,
            "lateness_ms": {
                "p50": percentile(lateness, 0.5),
                "p99": percentile(lateness, 0.99),
                "max": max(lateness),
            },
            "rss_idle_mib": rss0,
            "rss_tracked_mib": rss1,
            "bytes_per_ticket": (rss1 - rss0) * 1024 * 1024 / tickets,
            "metrics_scrape_ms_median": statistics.median(scrape) * 1000,
            "batch_duration_cumulative": batches,
            "event_lag_cumulative": event_lag,
        }
    finally:
        if collector is not None:
            collector.close()
        w.stop()
        delete_topics(bootstrap, names)


# --- recovery ---------------------------------------------------------------------------------------------------------


def recovery(bootstrap: str, flavour: str, tmp: Path, tickets: int, store: str = "memory") -> dict[str, Any]:
    """``tickets`` tickets ingested, SIGKILL, restart: with the memory store the whole changelog is read back; with
    RocksDB on the same data directory only what came after the store's checkpoint."""
    print(f"recovery: {tickets:,} tickets, SIGKILL, restart ({store} store)", flush=True)
    app_id = f"br-{uuid.uuid4().hex[:8]}"
    w = Worker(bootstrap, flavour, tmp, store=store, policy=TIMER_POLICY, app_id=app_id)
    names = w.create_topics()
    try:
        w.start()
        w.wait_ready()
        assert w.proc is not None
        time.sleep(1.0)
        rss0 = rss_mib(w.proc.pid)
        far = int(time.time() * 1000) + 3_600_000  # their deadlines are an hour away
        chunk = 200_000
        for start in range(0, tickets, chunk):
            produce(
                bootstrap,
                w.topics["input"],
                [created_event(f"R{i:07d}", far) for i in range(start, min(tickets, start + chunk))],
            )
        started = time.monotonic()
        wait_until(lambda: w.metric("escalator_events_consumed_total{") >= tickets, 1800, "every ticket applied", 0.2)
        ingest_s = time.monotonic() - started
        rss1 = rss_mib(w.proc.pid)
        # one ticket whose warning falls due while the worker is down
        due_at = int(time.time() * 1000) + 3_000
        produce(bootstrap, w.topics["input"], [created_event("DUE", due_at - 60_000)])
        wait_until(lambda: w.metric("escalator_events_consumed_total{") >= tickets + 1, 60, "the due ticket applied")
        w.stop(signal.SIGKILL)
        while time.time() * 1000 < due_at + 1000:
            time.sleep(0.05)  # the deadline passes while no worker runs
        collector = OutputCollector(bootstrap, w.topics["notifications"])
        restarted = Worker(bootstrap, flavour, tmp, store=store, policy=TIMER_POLICY, app_id=app_id)
        t0 = time.monotonic()
        restarted.start()
        ready_s = restarted.wait_ready(timeout=600)
        try:
            wait_until(lambda: any(s == "DUE" for _t, _f, s in collector.items), 600, "the due deadline", 0.02)
            fired_s = time.monotonic() - t0
        finally:
            collector.close()
            restarted.stop()
        return {
            "store": store,
            "tickets": tickets,
            "ingest_seconds": ingest_s,
            "ingest_events_per_s": tickets / ingest_s,
            "restart_ready_seconds": ready_s,
            "restart_first_deadline_seconds": fired_s,
            "rss_idle_mib": rss0,
            "rss_tracked_mib": rss1,
            "bytes_per_ticket": (rss1 - rss0) * 1024 * 1024 / tickets,
        }
    finally:
        w.stop()
        delete_topics(bootstrap, names)


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every number over the runs (nested dicts too), with the runs themselves under ``runs``."""

    def merge(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            return {k: merge([v[k] for v in values if k in v]) for k in first}
        if isinstance(first, int | float) and not isinstance(first, bool):
            return statistics.median(values)
        return first

    for run in runs:
        print(f"  {json.dumps({k: v for k, v in run.items() if 'cumulative' not in k})}", flush=True)
    out: dict[str, Any] = merge(runs)
    out["runs"] = runs
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--out")
    parser.add_argument("-n", type=int, default=0)
    parser.add_argument("--events-tickets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timer-tickets", type=int, default=100_000)
    parser.add_argument("--recovery-tickets", type=int, default=1_000_000)
    parser.add_argument("--only", default="throughput,timers,recovery,recovery-rocksdb")
    parser.add_argument("--kinds", default="", help="throughput contenders to run (default: all)")
    parser.add_argument("--capacity", type=float, help="worker events/s for the timer phase (default: measured)")
    parser.add_argument("--work-dir", help="keep logs here (default: a temporary directory)")
    parser.add_argument("--result", default=str(ROOT / "bench" / "results" / "service.json"))
    args = parser.parse_args()
    if args.child:
        fn = {"raw-confluent": child_raw_confluent, "raw-aiokafka": child_raw_aiokafka, "faust": child_faust}[
            args.child
        ]
        print(json.dumps(fn(args.bootstrap, args.topic, args.out, args.n)), flush=True)
        return 0

    from escalator.broker.select import resolve_broker

    only = set(args.only.split(","))
    result: dict[str, Any] = {
        "benchmark": "service",
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "partitions": PARTITIONS,
    }
    with (
        tempfile.TemporaryDirectory(prefix="service-bench-") as tmpdir,
        resolve_broker(log_dir=args.work_dir or tmpdir) as broker,
    ):
        tmp = Path(args.work_dir or tmpdir)
        result["broker"] = {"source": broker.source, "flavour": broker.flavour}
        capacity = args.capacity
        if "throughput" in only:
            kinds = [k for k in args.kinds.split(",") if k]
            result["throughput"] = throughput(
                broker.bootstrap, broker.flavour, tmp, args.events_tickets, args.repeat, kinds
            )
            capacity = result["throughput"]["events_per_s"]["escalator-memory"]
        if "timers" in only:
            if capacity is None:
                capacity = 10_000.0
            load = capacity
            result["timers"] = medians(
                [timers(broker.bootstrap, broker.flavour, tmp, args.timer_tickets, load) for _ in range(args.repeat)]
            )
        if "recovery" in only:
            result["recovery"] = medians(
                [recovery(broker.bootstrap, broker.flavour, tmp, args.recovery_tickets) for _ in range(args.repeat)]
            )
        if "recovery-rocksdb" in only:
            result["recovery_rocksdb"] = medians(
                [
                    recovery(broker.bootstrap, broker.flavour, tmp, args.recovery_tickets, store="rocksdb")
                    for _ in range(args.repeat)
                ]
            )
    out = Path(args.result)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update(result)  # a partial run (--only) keeps the other parts of the last full run
    out.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {out}")
    if "throughput" in result:
        t = result["throughput"]
        print(json.dumps({"events_per_s": t["events_per_s"], "ratios": t["ratios"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
