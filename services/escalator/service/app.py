"""The worker process: the batched stream processor (``escalator.stream``) on its own thread, the HTTP API on the
main thread's event loop.

``create_service(settings, clock, registry, policy=..., ports=...)`` builds everything from a frozen ``Settings``
and the Kafka seams in ``ports`` (:class:`KafkaPorts`; default :class:`ConfluentPorts`, librdkafka). Unit tests pass
in-memory ports (``escalator.stream.inmemory``) and drive the same objects without a broker. ``run_worker``
is what ``escalator worker`` runs: it serves HTTP, runs the processor until SIGTERM/SIGINT, then stops cleanly
(the processor finishes its batch, commits, leaves the group; exit status 0).

faust is no longer used: the processor needs to own its partitions' state (batch writes, its own changelog
format with ownership markers, recovery before processing, deadlines fired inside the batch loop), which faust's
Stream/Table API forbids ("Cannot modify table key from outside of stream iteration"), and faust's per-event
machinery alone capped a worker at a few percent of the raw pipeline (docs/benchmarks.md). What faust still gave --
a worker lifecycle and an aiohttp web server -- is a few lines of asyncio and aiohttp here.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import ssl
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from ..core import PolicySet, describe, format_ms, parse_duration_ms
from ..core.timeline import timeline_view
from ..core.versions import policies_in_use
from ..core.views import upcoming
from ..policy_file import load_policy_file
from ..settings import NO_BROKER, Settings
from ..stream.partitioner import partition_for
from ..stream.ports import ChangelogReader, GroupConsumer, HighwaterProbe, Message, Producer
from ..stream.runtime import Runtime, RuntimeConfig, Topics
from ..stream.store import StoreFactory, store_factory
from .metrics import Metrics
from .policies import PolicyFeed
from .timesource import TimeSource
from .webauth import protect, server_ssl_context

__all__ = [
    "ConfluentPorts",
    "KafkaPorts",
    "OwnerDirectory",
    "Service",
    "Tail",
    "create_service",
    "run_worker",
    "runtime_config",
    "topics_of",
    "web_app",
]

log = logging.getLogger("escalator.worker")

EXIT_UNCLEAN_STOP = 4  # a stop that could not deliver and commit everything within shutdown_grace_seconds

FORWARDED = "escalator-forwarded"
FORWARD_SESSION = web.AppKey("forward", ClientSession)


class Tail(Protocol):
    def poll(self, timeout_s: float) -> list[Message]: ...
    def close(self) -> None: ...


class KafkaPorts(Protocol):
    """Where the service gets its Kafka clients from (the seam unit tests replace)."""

    def consumer(self) -> GroupConsumer: ...
    def producer(self) -> Producer: ...
    def reader(self) -> ChangelogReader: ...
    def probe(self, now_ms: Callable[[], int]) -> HighwaterProbe: ...
    def tail(self, topic: str) -> Tail: ...
    def partitions(self, topic: str) -> int | None:
        """How many partitions ``topic`` has (``None``: it does not exist)."""
        ...


class ConfluentPorts:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def consumer(self) -> GroupConsumer:
        from ..stream.kafka import KafkaGroupConsumer

        return KafkaGroupConsumer(self.settings)

    def producer(self) -> Producer:
        from ..stream.kafka import KafkaProducer

        return KafkaProducer(self.settings)

    def reader(self) -> ChangelogReader:
        from ..stream.kafka import KafkaChangelogReader

        return KafkaChangelogReader(self.settings)

    def probe(self, now_ms: Callable[[], int]) -> HighwaterProbe:
        from ..stream.kafka import KafkaHighwaterProbe

        return KafkaHighwaterProbe(self.settings, now_ms)

    def tail(self, topic: str) -> Tail:
        from ..stream.kafka import KafkaTail

        return KafkaTail(self.settings, topic)

    def partitions(self, topic: str) -> int | None:
        from confluent_kafka.admin import AdminClient

        from ..stream.kafka import client_config

        metadata = AdminClient(client_config(self.settings)).list_topics(topic=topic, timeout=30)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            return None
        return len(found.partitions)


def topics_of(settings: Settings) -> Topics:
    return Topics(
        input=settings.topic_input,
        signals=settings.topic_incident_signals,
        escalations=settings.topic_escalations,
        notifications=settings.topic_notifications,
        dlq=settings.topic_dlq,
        tickets_changelog=settings.topic_tickets_changelog,
        windows_changelog=settings.topic_windows_changelog,
        owners=settings.topic_owners,
    )


def runtime_config(settings: Settings) -> RuntimeConfig:
    session = settings.session_timeout_seconds
    if settings.broker_flavour == "tansu":
        from ..broker import tansu_compat

        session = tansu_compat.session_timeout(settings)
    return RuntimeConfig(
        partitions=settings.partitions,
        lateness_ms=int(settings.allowed_lateness_seconds * 1000),
        retention_ms=int(settings.closed_retention_seconds * 1000),
        timeline_entries=settings.timeline_entries,
        max_event_bytes=settings.max_event_bytes,
        dlq_max_bytes=settings.dlq_max_bytes,
        max_batch=settings.max_batch,
        max_batch_ms=settings.max_batch_ms,
        max_wait_ms=settings.fetch_max_wait_ms or 100,
        lease_ms=int(session * 1000 / 2),  # well before the group can have given our partitions away
        stall_ms=int(settings.recovery_stall_seconds * 1000),
        stop_drain_s=settings.shutdown_grace_seconds * 0.6,  # the rest of the grace: leave the group, close
        owner_url=settings.canonical_url,
    )


class OwnerDirectory:
    """Which worker owns which input partition, from the owners topic (followed on a daemon thread)."""

    def __init__(self, tail: Tail) -> None:
        self._tail = tail
        self.urls: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="escalator-owners", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                for m in self._tail.poll(0.5):
                    doc = orjson.loads(m.value() or b"{}")
                    self.urls[int(doc["partition"])] = str(doc["url"])
            except Exception:  # a bad record or a broker hiccup must not end routing
                log.exception("owners directory")
                self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._tail.close()


@dataclass
class Service:
    """The worker's parts: the processor runtime, its metrics, the owners directory and the HTTP views."""

    settings: Settings
    policy: PolicySet
    clock: TimeSource
    registry: CollectorRegistry
    metrics: Metrics
    runtime: Runtime
    owners: OwnerDirectory
    policies: PolicyFeed
    policy_tail: Tail | None = None
    exit_code: int = 0

    def policy_view(self) -> dict[str, Any]:
        """``/policy``: the version new tickets get now, and every version held with the open tickets on it."""
        counts: Counter[str] = Counter()
        for part in list(self.runtime.tickets.values()):
            counts.update(dict(part.open_by_version))
        return self.policies.describe(counts)

    def ticket_view(self, ticket: str) -> dict[str, Any] | None:
        """The ticket's clocks if one of this worker's partitions holds it."""
        for part in list(self.runtime.tickets.values()):
            state = part.state_of(ticket)
            if state is not None:
                return describe(state, policies_in_use(state, self.runtime.versions), self.clock.now_ms())
        return None

    def timeline_view(self, ticket: str) -> dict[str, Any] | None:
        """The ticket's recent applied events and outputs if one of this worker's partitions holds it."""
        for part in list(self.runtime.tickets.values()):
            state = part.state_of(ticket)
            if state is not None:
                return timeline_view(state, self.settings.timeline_entries)
        return None

    def at_risk(self, until_ms: int, filters: Mapping[str, str], limit: int) -> list[dict[str, object]]:
        """This worker's part of ``/at-risk``: thresholds due before ``until_ms`` of the tickets it owns, filtered
        (``group``, ``priority``, ``agreement``: an agreement id or instance), soonest first."""
        rows: list[dict[str, object]] = []
        for part in list(self.runtime.tickets.values()):
            for _deadline, tid in part.due_before(until_ms):
                state = part.state_of(tid)
                if state is not None:
                    policy = policies_in_use(state, self.runtime.versions)
                    rows.extend(r for r in upcoming(state, policy, until_ms) if _wanted(r, filters))
        rows.sort(key=lambda r: (r["due_ms"], r["ticket_id"]))
        return rows[:limit]

    def owner_of(self, ticket: str) -> tuple[int, str | None]:
        """(partition, owner URL) of a ticket id keyed with Kafka's default partitioner."""
        p = partition_for(ticket.encode(), self.settings.partitions)
        return p, self.owners.urls.get(p)

    def consumer_lag(self) -> dict[int, int]:
        """Records not yet processed per owned input partition, as the processor saw them at its last poll (a
        confluent-kafka consumer must not be called from two threads: a scrape calling it while the processor
        polls can deadlock on the GIL)."""
        return dict(self.runtime.lag) if self.runtime.ready else {}


def create_service(
    settings: Settings,
    clock: TimeSource,
    registry: CollectorRegistry,
    *,
    policy: PolicySet | None = None,
    ports: KafkaPorts | None = None,
    stores: StoreFactory | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> Service:
    """Build the worker. The policy file is loaded (and validated) here unless given."""
    if settings.bootstrap_servers is None and ports is None:
        raise ValueError(NO_BROKER)
    if policy is None:
        policy = load_policy_file(settings.policy_file)
    ports = ports or ConfluentPorts(settings)
    if stores is None:
        if settings.store == "rocksdb":
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        stores = store_factory(
            settings.store,
            settings.data_dir,
            settings.app_id,
            block_cache_mib=settings.rocksdb_block_cache_mib,
            write_buffer_mib=settings.rocksdb_write_buffer_mib,
        )
    metrics = Metrics(registry)
    holder: dict[str, Service] = {}
    feed = PolicyFeed(
        policy,
        now_ms=clock.now_ms,
        lateness_ms=int(settings.allowed_lateness_seconds * 1000),
        on_reject=lambda reason: metrics.policy_rejected.labels(reason).inc(),
        on_info=metrics.set_policy_info,
        file=settings.policy_file,
        watch_s=settings.policy_watch_seconds,
    )
    has_policies_topic = ports.partitions(settings.topic_policies) is not None
    if has_policies_topic:  # every published version, before any event is processed
        reader = ports.reader()
        try:
            feed.load(reader, settings.topic_policies)
        finally:
            reader.close()
    feed.refresh_info()

    def exit_with(code: int) -> None:
        holder["service"].exit_code = code
        holder["service"].runtime.stop.set()

    runtime = Runtime(
        runtime_config(settings),
        topics_of(settings),
        feed.versions,
        consumer=ports.consumer(),
        producer=ports.producer(),
        reader=ports.reader(),
        probe=ports.probe(clock.now_ms),
        stores=stores,
        now_ms=clock.now_ms,
        monotonic=monotonic,
        observer=metrics,
        exit=exit_with,
    )
    feed.on_change = runtime.offer_versions
    owners = OwnerDirectory(ports.tail(settings.topic_owners))
    service = Service(settings, policy, clock, registry, metrics, runtime, owners, feed)
    service.policy_tail = ports.tail(settings.topic_policies) if has_policies_topic else None
    holder["service"] = service
    metrics.add_state_collector(
        lambda: [part.gauges for part in list(runtime.tickets.values())], clock.now_ms, service.consumer_lag
    )
    return service


# -- HTTP -------------------------------------------------------------------------------------------------------


def _wanted(row: Mapping[str, object], filters: Mapping[str, str]) -> bool:
    for name in ("group", "priority"):
        if name in filters and row.get(name) != filters[name]:
            return False
    if "agreement" in filters:
        agreement = str(row.get("agreement") or "sla")
        if agreement != filters["agreement"] and agreement.split("@", 1)[0] != filters["agreement"]:
            return False
    return True


async def _at_risk(request: web.Request, service: Service) -> web.StreamResponse:
    """``/at-risk``: across all workers, each answering for its partitions; this one asks the others (their
    addresses from the owners topic, as ``/tickets/{id}`` routing does) and merges, soonest first."""
    q = request.query
    try:
        within = parse_duration_ms(q.get("within", "2h"))
        limit = int(q.get("limit", "100"))
        if not 1 <= limit <= 1000:
            raise ValueError("limit must be 1..1000")
    except ValueError as exc:
        return _json({"error": f"bad query: {exc}"}, 400)
    filters = {k: q[k] for k in ("group", "priority", "agreement") if k in q}
    now = service.clock.now_ms()
    rows = service.at_risk(now + within, filters, limit)
    unanswered: list[str] = []
    if not request.headers.get(FORWARDED):
        others = sorted(set(service.owners.urls.values()) - {service.settings.canonical_url})
        session: ClientSession = request.app[FORWARD_SESSION]
        headers = {FORWARDED: "1"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        for url in others:
            try:
                async with session.get(f"{url}/at-risk", params=dict(q), headers=headers) as resp:
                    rows.extend((await resp.json())["tickets"])
            except Exception:  # a worker down or moving: the answer says whose part is missing
                unanswered.append(url)
        rows.sort(key=lambda r: (r["due_ms"], r["ticket_id"]))
    return _json(
        {
            "until": format_ms(now + within),
            "filters": filters,
            "tickets": rows[:limit],
            "unanswered": unanswered,
        }
    )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _ticket_answer(
    request: web.Request, service: Service, ticket_id: str, view: dict[str, Any] | None, suffix: str
) -> web.StreamResponse:
    """A view of a ticket: this worker's, else forwarded to the owner of the ticket's partition (or why not)."""
    if view is not None:
        return _json(view)
    partition, url = service.owner_of(ticket_id)
    if partition in service.runtime.owned() or request.headers.get(FORWARDED):
        return _json({"error": "unknown ticket", "ticket_id": ticket_id}, 404)
    if url is None or url == service.settings.canonical_url:
        return _json(
            {"error": f"the owner of partition {partition} is not known yet; try again", "ticket_id": ticket_id},
            503,
        )
    session: ClientSession = request.app[FORWARD_SESSION]
    headers = {FORWARDED: "1"}
    if "Authorization" in request.headers:  # the owner checks the same tokens
        headers["Authorization"] = request.headers["Authorization"]
    try:
        async with session.get(f"{url}/tickets/{ticket_id}{suffix}", headers=headers) as resp:
            return web.Response(body=await resp.read(), status=resp.status, content_type="application/json")
    except Exception as exc:  # the owner moved or is down: say so
        return _json({"error": f"the owner {url} did not answer: {exc}", "ticket_id": ticket_id}, 502)


def web_app(service: Service) -> web.Application:
    """The aiohttp application: /healthz, /readyz, /metrics, /policy, /at-risk, /tickets/{id},
    /tickets/{id}/timeline (documented by schemas/openapi-worker.yaml)."""
    routes = web.RouteTableDef()

    @routes.get("/healthz")
    async def healthz(request: web.Request) -> web.StreamResponse:
        return _json({"status": "ok"})

    @routes.get("/readyz")
    async def readyz(request: web.Request) -> web.StreamResponse:
        ok = service.runtime.ready
        return _json({"ready": ok, "partitions": service.runtime.owned()}, 200 if ok else 503)

    @routes.get("/metrics")
    async def metrics(request: web.Request) -> web.StreamResponse:
        body = generate_latest(service.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @routes.get("/policy")
    async def policy_view(request: web.Request) -> web.StreamResponse:
        return _json(service.policy_view())

    @routes.get("/at-risk")
    async def at_risk(request: web.Request) -> web.StreamResponse:
        return await _at_risk(request, service)

    @routes.get("/tickets/{ticket_id}")
    async def ticket(request: web.Request) -> web.StreamResponse:
        ticket_id = request.match_info["ticket_id"]
        return await _ticket_answer(request, service, ticket_id, service.ticket_view(ticket_id), "")

    @routes.get("/tickets/{ticket_id}/timeline")
    async def timeline(request: web.Request) -> web.StreamResponse:
        ticket_id = request.match_info["ticket_id"]
        return await _ticket_answer(request, service, ticket_id, service.timeline_view(ticket_id), "/timeline")

    app = web.Application()
    app.add_routes(routes)
    protect(app, service.settings, api=True)
    cafile = service.settings.web_tls_cafile

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = TCPConnector(ssl=ssl.create_default_context(cafile=str(cafile))) if cafile else None
        app[FORWARD_SESSION] = ClientSession(timeout=ClientTimeout(total=5), connector=connector)
        yield
        await app[FORWARD_SESSION].close()

    app.cleanup_ctx.append(session_ctx)
    return app


# -- the process ----------------------------------------------------------------------------------------------------


def run_worker(service: Service) -> int:
    """Serve HTTP and run the processor until SIGTERM/SIGINT or a fatal error; returns the exit status."""
    settings = service.settings
    runtime = service.runtime
    failure: list[BaseException] = []
    # A batch allocates many short-lived objects (decoded events, states, commands): collect the young generation
    # less often, and leave everything built at start-up out of the collector's sight.
    gc.set_threshold(50_000, 20, 10)
    gc.freeze()

    def process() -> None:
        try:
            runtime.run()
        except BaseException as exc:
            failure.append(exc)
            log.exception("the processor stopped with an error")

    async def main() -> int:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        runner = web.AppRunner(web_app(service), access_log=None)
        await runner.setup()
        await web.TCPSite(
            runner, settings.web_host, settings.web_port, ssl_context=server_ssl_context(settings)
        ).start()
        service.owners.start()
        service.policies.start(service.policy_tail)
        thread = threading.Thread(target=process, name="escalator-processor")
        thread.start()
        try:
            while thread.is_alive() and not stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=0.2)
        finally:
            runtime.stop.set()
            watchdog = _stop_watchdog(settings.shutdown_grace_seconds)
            await loop.run_in_executor(None, thread.join)
            service.owners.close()
            service.policies.close()
            await runner.cleanup()
            watchdog.cancel()
        if failure:
            return 1
        if runtime.abandoned:
            log.warning("stopped without delivering every batch in flight: their input is processed again")
            return EXIT_UNCLEAN_STOP
        return service.exit_code

    return asyncio.run(main())


def _stop_watchdog(grace_s: float) -> threading.Timer:
    """Ends the process if the stop has not finished ``grace_s`` seconds after it began (a client blocked on an
    unreachable broker): before the supervisor's SIGKILL, and with a word in the log. Nothing is lost -- input
    offsets are committed only after their outputs and state are delivered."""

    def expire() -> None:
        log.error(
            "the stop did not finish within %.0fs (ESCALATOR_SHUTDOWN_GRACE_SECONDS): exiting now; input not "
            "committed is processed again by the next owner",
            grace_s,
        )
        logging.shutdown()
        os._exit(EXIT_UNCLEAN_STOP)

    timer = threading.Timer(grace_s, expire)
    timer.daemon = True
    timer.start()
    return timer
