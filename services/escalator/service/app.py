"""The faust-streaming app: thin adapters that carry out what the pure core decides.

Topology (all keyed by ticket id unless noted; internal topics co-partitioned with the input)::

    ticket-events ──┐
                    ├─> agent "process" ──> ticket-escalations / ticket-notifications / ticket-events.dlq
    <app>-ticks ────┘        │   ▲                     (table "tickets": ticket state, changelogged)
                             │   └── timer: deadline index -> one tick per due ticket
                             └──> <app>-incident-signals (key: rule + group value)
                                        └─> agent "incidents" ──> ticket-escalations / ticket-notifications
                                               (table "incident_windows")

Rules kept here:
* Tables change only inside agents. The timer only reads the in-memory deadline index and sends tick messages to
  the partition that owns the ticket; the agent handles a tick like any event (``advance``).
* The index is rebuilt from the table after every recovery (before the streams resume) and dropped for revoked
  partitions; ``/readyz`` answers 200 only when that is done.
* at-least-once: outputs are produced before the input offset is committed (faust flushes the producer before each
  commit); every output's id is deterministic, so a redelivery produces identical events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any, cast

import faust
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..core import (
    ClockOutcome,
    Command,
    DecodeError,
    Emit,
    Ignored,
    IncidentSignal,
    IncidentWindow,
    PolicySet,
    TicketState,
    advance,
    apply,
    decode_record,
    describe,
    encode_event,
    next_deadline,
    observe,
    window_key,
)
from ..policy_file import load_policy_file
from ..settings import Settings
from .clock import Clock
from .codec import (
    decode_table_value,
    decode_tick,
    dlq_headers,
    encode_table_value,
    encode_tick,
    headers_dict,
    output_headers,
    table_json,
)
from .index import DeadlineIndex, TicketInfo
from .metrics import Metrics

__all__ = ["Service", "create_app"]

log = logging.getLogger("escalator.worker")
_YIELD_EVERY = 500


def _broker_urls(servers: str) -> list[str]:
    return [f"kafka://{s}" for s in servers.split(",") if s]


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    ssl_context = settings.kafka_client_kwargs().get("ssl_context")
    if settings.sasl_mechanism:
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value() if settings.sasl_password else "",
            ssl_context=ssl_context,
            mechanism=settings.sasl_mechanism,
        )
    return faust.SSLCredentials(ssl_context)


class Service:
    """Everything the agents, timer and views share; one per app."""

    def __init__(
        self, app: faust.App, settings: Settings, clock: Clock, registry: CollectorRegistry, policy: PolicySet
    ) -> None:
        self.app = app
        self.settings = settings
        self.clock = clock
        self.registry = registry
        self.policy = policy
        self.metrics = Metrics(registry)
        self.index = DeadlineIndex()
        self.ready = False
        self.unready_since = clock.now_ms()
        self.stall_ms = int(settings.recovery_stall_seconds * 1000)
        self.rejoins = 0
        self.lateness_ms = int(settings.allowed_lateness_seconds * 1000)
        self.retention_ms = int(settings.closed_retention_seconds * 1000)
        self.positions: dict[int, int] = {}  # partition -> next input offset to process
        self.event_watermark: dict[int, int] = {}  # partition -> newest event time processed
        self.metrics.policy_info.labels(policy.version).set(1)
        self.metrics.add_state_collector(self.index, clock.now_ms, self.consumer_lag)

        partitions = settings.partitions
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.ticks_topic = app.topic(settings.topic_ticks, partitions=partitions, internal=True, **raw)
        self.signals_topic = app.topic(settings.topic_incident_signals, partitions=partitions, internal=True, **raw)
        self.source = app.topic(settings.topic_input, settings.topic_ticks, partitions=partitions, **raw)
        self.escalations = app.topic(settings.topic_escalations, partitions=settings.output_partitions, **raw)
        self.notifications = app.topic(settings.topic_notifications, partitions=settings.output_partitions, **raw)
        self.dlq = app.topic(settings.topic_dlq, partitions=partitions, **raw)
        schema: Any = faust.Schema(key_serializer="raw", value_serializer="raw")
        self.tickets = app.Table("tickets", partitions=partitions, schema=schema, **self._table_options())
        self.windows = app.Table("incident_windows", partitions=partitions, schema=schema, **self._table_options())

    def _table_options(self) -> dict[str, Any]:
        if self.settings.store != "rocksdb":
            return {}
        return {
            "options": {
                "driver": "rocksdict",
                "block_cache_size": self.settings.rocksdb_block_cache_mib * 1024 * 1024,
                "write_buffer_size": self.settings.rocksdb_write_buffer_mib * 1024 * 1024,
                "max_write_buffer_number": 2,
            }
        }

    # -- the ticket agent ------------------------------------------------------------------------------------
    async def handle(self, event: Any) -> None:
        msg = event.message
        now = self.clock.now_ms()
        if msg.topic == self.settings.topic_ticks:
            await self.on_tick(msg.partition, event.value, now)
        else:
            self.positions[msg.partition] = msg.offset + 1
            await self.on_record(msg, now)

    async def on_record(self, msg: Any, now: int) -> None:
        try:
            ev = decode_record(msg.value, msg.key, headers_dict(msg.headers), max_bytes=self.settings.max_event_bytes)
        except DecodeError as err:
            await self.dead_letter(msg, err)
            return
        self.metrics.events_consumed.labels(ev.type).inc()
        if ev.time_ms > self.event_watermark.get(msg.partition, ev.time_ms - 1):
            self.event_watermark[msg.partition] = ev.time_ms
        self.metrics.event_lag.observe(max(0.0, (now - ev.time_ms) / 1000))
        p = msg.partition
        state = self._load(ev.ticket_id)
        try:
            new_state, cmds = apply(state, ev, self.policy)
        except Exception as exc:  # a bug must not turn one record into a crash loop of the whole partition
            log.exception("processing failed for %s", ev.id, extra={"ticket_id": ev.ticket_id, "event_id": ev.id})
            await self.dead_letter(msg, DecodeError("processing_error", f"{type(exc).__name__}: {exc}", ev.id))
            return
        if new_state is not state:
            self.tickets[ev.ticket_id] = encode_table_value(p, new_state)
        await self._publish(cmds, new_state, now, timer=False)
        self._rearm(p, new_state)
        log.debug("applied %s to %s", ev.type, ev.ticket_id, extra={"ticket_id": ev.ticket_id, "event_id": ev.id})

    async def dead_letter(self, msg: Any, err: DecodeError) -> None:
        """Send a record to the DLQ unchanged, with headers naming the reason and origin; count and log it once."""
        await self.dlq.send(
            key=msg.key, value=msg.value, headers=dlq_headers(msg.headers, err, msg.topic, msg.partition, msg.offset)
        )
        self.metrics.events_rejected.labels(err.reason).inc()
        log.warning(
            "rejected record %s[%s]@%s to %s: %s: %s",
            msg.topic,
            msg.partition,
            msg.offset,
            self.settings.topic_dlq,
            err.reason,
            err.detail,
            extra={"event_id": err.event_id, "reason": err.reason},
        )

    async def on_tick(self, partition: int, value: bytes, now: int) -> None:
        ticket, _wake = decode_tick(value)
        state = self._load(ticket)
        if state is None:
            self.index.arm(partition, ticket, None, None)
            return
        if state.closed_ms is not None and now >= state.closed_ms + self.retention_ms:
            del self.tickets[ticket]
            self.metrics.tickets_purged.inc()
            self.index.arm(partition, ticket, None, None)
            return
        deadline = next_deadline(state, self.policy)
        if deadline is not None and self.behind(partition, deadline + self.lateness_ms):
            # A tick sent before a restart or takeover can arrive ahead of the input backlog: the backlog may still
            # hold this ticket's own earlier events. Leave it armed; the timer sends it again once caught up.
            self._rearm(partition, state)
            return
        new_state, cmds = advance(state, now - self.lateness_ms, self.policy)
        if new_state is not state:
            self.tickets[ticket] = encode_table_value(partition, new_state)
        await self._publish(cmds, new_state, self.clock.now_ms(), timer=True)
        self._rearm(partition, new_state)

    def _load(self, ticket: str) -> TicketState | None:
        raw = self.tickets.get(ticket)
        return None if raw is None else decode_table_value(raw)[1]

    def _rearm(self, partition: int, state: TicketState) -> None:
        deadline = next_deadline(state, self.policy)
        wake = None if deadline is None else deadline + self.lateness_ms
        if state.closed_ms is not None:
            purge_at = state.closed_ms + self.retention_ms
            wake = purge_at if wake is None else min(wake, purge_at)
        is_open = state.status not in ("solved", "closed")
        self.index.arm(partition, state.ticket_id, wake, TicketInfo(state.priority, is_open, deadline))

    async def _publish(self, cmds: Iterable[Command], state: TicketState | None, now: int, *, timer: bool) -> None:
        emits: list[Emit] = []
        for c in cmds:
            if isinstance(c, Emit):
                topic = self.escalations if c.channel == "escalations" else self.notifications
                await topic.send(
                    key=c.key.encode(), value=encode_event(c.event), headers=output_headers(c, self.policy.version)
                )
                emits.append(c)
            elif isinstance(c, IncidentSignal):
                await self.signals_topic.send(
                    key=window_key(c.rule_id, c.group_value).encode(),
                    value=orjson.dumps(
                        {"rule": c.rule_id, "value": c.group_value, "ticket": c.ticket_id, "time_ms": c.time_ms}
                    ),
                )
            elif isinstance(c, ClockOutcome):
                self.metrics.observe_outcome(c)
            elif isinstance(c, Ignored):
                self.metrics.events_duplicate.inc()
        if emits:
            self.metrics.observe_emits(emits, now, timer=timer, priority=state.priority if state else "none")
            for e in emits:
                log.info("%s %s", e.type, e.id, extra={"ticket_id": e.event.get("subject"), "output_id": e.id})

    # -- the incident agent ----------------------------------------------------------------------------------
    async def handle_signal(self, value: bytes) -> None:
        doc = orjson.loads(value)
        sig = IncidentSignal(doc["rule"], doc["value"], doc["ticket"], int(doc["time_ms"]))
        key = window_key(sig.rule_id, sig.group_value)
        raw = self.windows.get(key)
        window = None if raw is None else IncidentWindow.from_dict(table_json(raw))
        new, emits = observe(window, sig, self.policy)
        self.windows[key] = orjson.dumps(new.to_dict())
        await self._publish(emits, None, self.clock.now_ms(), timer=False)

    # -- timer, rebalance, recovery ----------------------------------------------------------------------------
    async def on_timer(self) -> None:
        if not self.ready:
            self.watch_recovery(self.clock.now_ms())
            return
        now = self.clock.now_ms()
        for partition, ticket, _wake in self.index.pop_due(now, hold=self.behind):
            await self.ticks_topic.send(key=ticket.encode(), value=encode_tick(ticket, _wake), partition=partition)
            self.metrics.ticks_sent.inc()

    def active_partitions(self) -> set[int]:
        return {tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == self.settings.topic_input}

    async def rebuild_index(self) -> None:
        started = time.perf_counter()
        actives = self.active_partitions()
        self.index.clear()
        count = 0
        for _key, raw in list(self.tickets.items()):
            if raw is None:
                continue
            p, state = decode_table_value(raw)
            if p in actives:
                self._rearm(p, state)
            count += 1
            if count % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
        self.metrics.index_rebuild_seconds.observe(time.perf_counter() - started)
        self.set_ready(True)
        log.info(
            "deadline index rebuilt: %d tickets on partitions %s in %.3fs",
            self.index.tickets(),
            sorted(actives),
            time.perf_counter() - started,
        )

    def on_revoked(self, revoked: Iterable[Any]) -> None:
        self.set_ready(False)
        for tp in revoked:
            if tp.topic == self.settings.topic_input:
                self.index.drop_partition(tp.partition)
                self.positions.pop(tp.partition, None)
                self.event_watermark.pop(tp.partition, None)

    def set_ready(self, ready: bool) -> None:
        if ready:
            self.rejoins = 0
        else:  # every rebalance step restarts the stall watch
            self.unready_since = self.clock.now_ms()
        self.ready = ready
        self.metrics.ready.set(1 if ready else 0)

    def watch_recovery(self, now: int) -> None:
        """A rebalance or recovery that makes no progress for ``recovery_stall_seconds`` (seen, rarely, on the
        embedded broker after a takeover) is retried by asking the group to rebalance again; a worker still stuck
        after 3 attempts exits with status 3 so that its supervisor (Kubernetes, systemd) starts a fresh one."""
        if now - self.unready_since < self.stall_ms:
            return
        self.unready_since = now
        self.rejoins += 1
        self.metrics.recovery_stalls.inc()
        if self.rejoins > 3:
            log.error("not ready for %d recovery attempts: exiting so that the worker is restarted", self.rejoins - 1)
            self.exit(3)
            return
        log.warning(
            "not ready for %.0fs: asking the consumer group to rebalance (attempt %d)",
            self.stall_ms / 1000,
            self.rejoins,
        )
        try:
            consumer: Any = self.app.consumer
            consumer._thread._ensure_consumer()._coordinator.request_rejoin()
        except Exception:  # the consumer is not started: nothing to rejoin yet
            log.exception("could not request a rebalance")

    def exit(self, code: int) -> None:  # pragma: no cover - ends the process
        import os

        os._exit(code)

    def behind(self, partition: int, wake_ms: int) -> bool:
        """Whether a partition's deadlines must wait: its input backlog may still hold events stamped before the
        deadline (after a restart, a takeover or a burst), which replay would apply first."""
        lag = self.partition_lag(partition)
        if lag is None:
            return True  # no fetch answer yet: the backlog is unknown
        if lag == 0:
            return False
        return self.event_watermark.get(partition, -1) < wake_ms - self.lateness_ms

    def partition_lag(self, partition: int) -> int | None:
        """Input records not yet processed on a partition (``None`` while unknown)."""
        from faust.types import TP

        tp = TP(self.settings.topic_input, partition)
        try:
            consumer: Any = self.app.consumer
            high: Any = consumer.highwater(tp)
            committed = consumer._committed_offset.get(tp)
        except Exception:  # consumer not started, or partition not (yet) assigned
            return None
        if high is None:
            return None
        position = max(self.positions.get(partition, 0), committed or 0)
        return max(0, int(high) - position)

    def consumer_lag(self) -> dict[int, int]:
        lag: dict[int, int] = {}
        for p in self.active_partitions() if self.ready else ():
            value = self.partition_lag(p)
            if value is not None:
                lag[p] = value
        return lag

    # -- HTTP ------------------------------------------------------------------------------------------------
    def ticket_view(self, ticket: str) -> dict[str, Any] | None:
        state = self._load(ticket)
        return None if state is None else describe(state, self.policy, self.clock.now_ms())


def create_app(
    settings: Settings, clock: Clock, registry: CollectorRegistry, *, policy: PolicySet | None = None
) -> faust.App:
    """Build the faust app. The policy file is loaded (and validated) here unless given."""
    if settings.bootstrap_servers is None:
        raise ValueError(
            "no Kafka broker configured: set ESCALATOR_BOOTSTRAP_SERVERS (or KAFKA_BOOTSTRAP_SERVERS), "
            "or use `make run`, which starts the embedded development broker"
        )
    if policy is None:
        policy = load_policy_file(settings.policy_file)
    overrides: dict[str, Any] = {}
    if settings.broker_flavour == "tansu":  # the embedded development broker only
        from ..broker import tansu_compat

        overrides = tansu_compat.activate(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    conf: dict[str, Any] = {
        "broker": _broker_urls(settings.bootstrap_servers),
        "broker_credentials": _credentials(settings),
        "store": "rocksdb://" if settings.store == "rocksdb" else "memory://",
        "datadir": str(settings.data_dir),
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication_factor,
        "processing_guarantee": "at_least_once",
        "broker_session_timeout": settings.session_timeout_seconds,
        "broker_heartbeat_interval": settings.heartbeat_interval_seconds,
        "broker_rebalance_timeout": settings.rebalance_timeout_seconds,
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "web_enabled": True,
        "web_host": settings.web_host,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "canonical_url": settings.canonical_url,
        "autodiscover": False,
        "table_standby_replicas": 0,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_metrics_enabled": False,
        "web_tables_enabled": False,
    }
    conf.update(overrides)
    app = faust.App(settings.app_id, **conf)
    svc = Service(app, settings, clock, registry, policy)
    app.escalator = svc  # type: ignore[attr-defined]

    @app.agent(svc.source, name="escalator.process")
    async def process(stream: Any) -> None:
        async for event in stream.events():
            await svc.handle(event)

    @app.agent(svc.signals_topic, name="escalator.incidents")
    async def incidents(stream: Any) -> None:
        async for event in stream.events():
            await svc.handle_signal(event.value)

    @app.timer(interval=settings.timer_interval_seconds, name="escalator.deadlines")  # type: ignore[untyped-decorator]
    async def deadlines() -> None:
        await svc.on_timer()

    @svc.tickets.on_recover
    async def recovered() -> None:
        await svc.rebuild_index()

    async def revoked(sender: Any, revoked: Any, **kwargs: Any) -> None:
        svc.on_revoked(revoked)

    async def assigned(sender: Any, assigned: Any, **kwargs: Any) -> None:
        svc.set_ready(False)

    app.on_partitions_revoked.connect(cast(Any, revoked))
    app.on_partitions_assigned.connect(cast(Any, assigned))

    def _json(web: Any, data: Any, status: int = 200) -> Any:
        return web.bytes(orjson.dumps(data), content_type="application/json", status=status)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return _json(web, {"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ok = svc.ready and not app.rebalancing
        return _json(web, {"ready": ok, "partitions": sorted(svc.active_partitions())}, 200 if ok else 503)

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        return web.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/policy")
    async def policy_view(web: Any, request: Any) -> Any:
        return _json(web, svc.policy.describe())

    @app.page("/tickets/{ticket_id}")
    @app.table_route(table=svc.tickets, match_info="ticket_id")
    async def ticket(web: Any, request: Any, ticket_id: str) -> Any:
        view = svc.ticket_view(ticket_id)
        if view is None:
            return _json(web, {"error": "unknown ticket", "ticket_id": ticket_id}, 404)
        return _json(web, view)

    return app
