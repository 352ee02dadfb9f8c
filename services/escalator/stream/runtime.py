"""The batch loop of a worker: consume a batch, apply it, fire due deadlines, produce, flush, store, commit.

One thread runs :meth:`Runtime.step` over and over (``run``); rebalance callbacks come from inside the consumer's
``consume`` on that same thread, so a batch is never cut in two by a rebalance. Per batch:

1. **consume** up to ``max_batch`` records of the input and incident-signal topics (waiting at most until the next
   deadline is due);
2. **apply** every input event to its partition's :class:`~escalator.stream.tickets.TicketPartition` (unusable records
   become dead letters with a reason); **fire** due deadlines of partitions whose input is applied up to them;
   send incident signals and source watermarks; **release** incident signals every source has passed;
3. **produce** every output of the batch and **flush** (failed deliveries are produced again until delivered);
4. **changelog**: produce each touched state once to its store's changelog, flush, and check that the records
   landed contiguously after the partition's own previous records (``changelog``); only then **write the store**;
5. **commit** the input offsets (and the incident signals' oldest held offset).

Outputs go out before the state that records them, and input offsets are committed last: a crash anywhere
replays the uncommitted input from the last stored state and produces the same outputs again (same ids, same
bytes). Dead letters, outputs and signals of a batch are flushed before any of its state is written.

Ownership: every assigned partition is recovered from its changelog and claimed with a marker before its first
record is processed. A batch whose changelog records did not land contiguously (someone else wrote: a zombie, or
the partition has a new owner) is not stored; the partition is recovered again from its checkpoint and either
kept (the claim still holds) or released. A batch that started before the process was frozen for longer than
``lease_ms`` (SIGSTOP, a VM pause: the group may have moved on) is dropped before anything is produced, and every
partition is re-validated the same way.

Deadlines: a partition's deadlines fire only up to the instant before which all of its stored events are known to
be applied -- the newest event time applied, or the time of a high-watermark check that found no backlog, less the
allowed lateness -- never simply "now".
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from ..core import (
    ClockOutcome,
    Command,
    DecodeError,
    Emit,
    Event,
    FirstEscalation,
    Ignored,
    IncidentResolve,
    IncidentSignal,
    PolicySet,
    StateCapped,
    ThresholdSkipped,
    decode_record,
    encode_event,
    parse_rfc3339_ms,
    resolution_of,
)
from ..core.versions import OPEN_TICKETS, PolicyVersions
from ..service.codec import dead_letter, headers_dict, output_headers
from ..service.logs import quote_input
from .changelog import H_WRITER, contiguous, marker_record, new_writer_id, recover
from .incidents import IncidentPartition, resolve_record, signal_record, watermark_record
from .partitioner import partition_for
from .ports import TP, ChangelogReader, GroupConsumer, HighwaterProbe, Message, Producer
from .store import Checkpoint, Marker, PartitionStore, StoreFactory
from .tickets import TicketPartition

__all__ = [
    "BatchStats",
    "FlushAborted",
    "NullObserver",
    "Observer",
    "Runtime",
    "RuntimeConfig",
    "Topics",
]

log = logging.getLogger("escalator.worker")
timers_log = logging.getLogger("escalator.timers")

TICKETS = "tickets"
WINDOWS = "incident-windows"
_NEVER = -(2**62)
#: A partition that comes to a worker re-checks every open ticket at the switches of versions for open tickets
#: effective this long ago or later (an earlier owner may have stopped before it got to them).
RECENT_SWITCH_MS = 3_600_000


def _policy_version(e: Emit, default: str) -> str:
    """The policy version an output names (its ``policy.version``), else ``default``."""
    data = e.event.get("data")
    if isinstance(data, dict):
        policy = data.get("policy")
        if isinstance(policy, dict):
            version = policy.get("version")
            if isinstance(version, str):
                return version
    return default


@dataclass(frozen=True, slots=True)
class Topics:
    input: str
    signals: str
    escalations: str
    notifications: str
    dlq: str
    tickets_changelog: str
    windows_changelog: str
    owners: str


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    partitions: int  # of the input and signal topics (every input partition is a source of incident watermarks)
    lateness_ms: int = 1_000
    retention_ms: int = 30 * 86_400_000
    timeline_entries: int = 50  # of each ticket's timeline (/tickets/{id}/timeline), kept with its state
    max_event_bytes: int = 1_000_000
    dlq_max_bytes: int = 900_000  # a dead-letter copy is cut to fit (a record of ~1 MB is refused by the producer)
    max_batch: int = 5_000
    max_wait_ms: int = 100  # longest consume wait when nothing is due
    max_batch_ms: int = 50  # when caught up: batches sized to take about this long (deadlines wait for a batch)
    freshness_ms: int = 20  # shortest interval between two high-watermark checks of one partition
    watermark_interval_ms: int = 200  # incident watermarks: at most this often per source partition ...
    watermark_repeat_ms: int = 1_000  # ... and at least this often (a restarted incident partition relearns them)
    lease_ms: int = 1_500  # a batch that took longer than this (or a frozen process) is dropped and re-validated
    max_in_flight: int = 64  # batches whose outputs or state changes are not confirmed yet (then the loop waits)
    stall_ms: int = 30_000
    flush_timeout_s: float = 30.0
    stop_drain_s: float = 6.0  # after a stop is asked for, how long undelivered batches are waited for at most
    owner_url: str = ""


@dataclass(slots=True)
class BatchStats:
    """What one batch did, for the metrics (updated once per batch)."""

    consumed: Counter[str] = field(default_factory=Counter)  # by event type
    rejected: Counter[str] = field(default_factory=Counter)  # by dead-letter reason
    duplicates: int = 0
    ignored: Counter[str] = field(default_factory=Counter)  # events that changed nothing, by why (not duplicates)
    capped: Counter[str] = field(default_factory=Counter)  # per-ticket bounds reached, by what
    skipped: Counter[str] = field(default_factory=Counter)  # thresholds passed over (catch_up: latest), by metric
    emits: list[tuple[Emit, str, bool]] = field(default_factory=list)  # (output, ticket priority, fired by a timer)
    outcomes: list[ClockOutcome] = field(default_factory=list)
    first_escalations: list[FirstEscalation] = field(default_factory=list)  # a ticket's first escalation.raised
    event_lags_ms: list[int] = field(default_factory=list)
    timer_lateness_ms: list[int] = field(default_factory=list)  # produced - fired_at, per timer output
    purged: int = 0
    records: int = 0
    changelog_records: int = 0
    seconds: float = 0.0  # from the end of the poll to the commit


class Observer(Protocol):
    def on_batch(self, stats: BatchStats) -> None: ...
    def on_ready(self, ready: bool) -> None: ...
    def on_recovered(self, store: str, partition: int, seconds: float, applied: int, ignored: int) -> None: ...
    def on_stall(self) -> None: ...
    def on_fence(self, reason: str) -> None: ...


class NullObserver:
    def on_batch(self, stats: BatchStats) -> None:
        pass

    def on_ready(self, ready: bool) -> None:
        pass

    def on_recovered(self, store: str, partition: int, seconds: float, applied: int, ignored: int) -> None:
        pass

    def on_stall(self) -> None:
        pass

    def on_fence(self, reason: str) -> None:
        pass


class FlushAborted(RuntimeError):
    """The worker is stopping while deliveries still fail: the batch is not committed (it will be redelivered)."""


@dataclass(slots=True)
class _Claim:
    writer: str
    generation: int
    expected: int  # the changelog offset this owner's next record must land at


@dataclass(slots=True)
class _Out:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    partition: int | None = None
    fired_ms: int | None = None  # a timer's output: the logical instant it fired at


@dataclass(slots=True)
class _StageChanges:
    topic: str  # a changelog
    partition: int
    owner: TicketPartition | IncidentPartition
    seq: int  # the owner's snapshot number
    changes: list[tuple[str, bytes | None]]


@dataclass(slots=True)
class _Stage:
    """One batch from its first output to the commit of its offsets; also the delivery callback of its records
    (one bound method for all of them: no closure per record)."""

    changes: list[_StageChanges] = field(default_factory=list)
    commits: dict[TP, int] = field(default_factory=dict)
    outputs: list[_Out] = field(default_factory=list)  # produced, kept until delivered (to produce them again)
    records: list[_Out] = field(default_factory=list)  # its changelog records, once produced
    landed: dict[TP, list[int]] = field(default_factory=dict)  # changelog partition -> offsets its records got
    pending: int = 0  # records produced and not yet delivered (outputs, then changelog records)
    failed: int = 0  # deliveries that failed since the records were (re)produced
    logged: bool = False  # its changelog records are produced (its outputs were all delivered)
    closed: bool = False  # the batch is over: its changes and commits are known

    def delivered(self, err: object, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            return
        self.pending -= 1
        if self.logged:
            landed = self.landed.get((msg.topic() or "", msg.partition() or 0))
            if landed is not None:
                landed.append(msg.offset() or 0)


class Runtime:
    def __init__(
        self,
        config: RuntimeConfig,
        topics: Topics,
        policy: PolicySet | PolicyVersions,
        *,
        consumer: GroupConsumer,
        producer: Producer,
        reader: ChangelogReader,
        probe: HighwaterProbe,
        stores: StoreFactory,
        now_ms: Callable[[], int],
        monotonic: Callable[[], float],
        observer: Observer | None = None,
        exit: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self.topics = topics
        self.versions = policy if isinstance(policy, PolicyVersions) else PolicyVersions.of(policy)
        self._offered: PolicyVersions | None = None  # versions another thread handed over, taken at the next step
        self.consumer = consumer
        self.producer = producer
        self.reader = reader
        self.probe = probe
        self.stores = stores
        self.now_ms = now_ms
        self.monotonic = monotonic
        self.observer: Observer = observer or NullObserver()
        self.exit = exit
        self.stop = threading.Event()
        self.tickets: dict[int, TicketPartition] = {}
        self.incidents: dict[int, IncidentPartition] = {}
        self.ready = False
        self.rejoins = 0
        self.unready_since = monotonic()
        self.generation = -1
        self.positions: dict[TP, int] = {}  # next offset to process, per consumed partition
        # partitions sent back to their committed offset during this step: the records of theirs already in hand
        # come again from there, and must not be processed now (on a state re-read without the batches forgotten)
        self._rewound: set[TP] = set()
        self.lag: dict[int, int] = {}  # input partition -> records not yet processed (as of the last poll)
        self.committed: dict[TP, int] = {}
        self.caught_up_at: dict[int, int] = {}  # input partition -> wall instant at which no backlog was found
        self._claims: dict[TP, _Claim] = {}  # changelog partition -> our claim
        self._parked: dict[tuple[str, int], PartitionStore] = {}
        self._wm_sent: dict[int, tuple[int, int]] = {}  # source partition -> (watermark, sent at)
        self._consumed_at = monotonic()
        self._record_cost = 100e-6  # seconds per record, measured as batches go by
        self._stages: list[_Stage] = []  # batches in flight, oldest first
        self._retries = 0
        self._stop_by: float | None = None  # monotonic instant a stop gives up on undelivered batches
        self.abandoned = False  # the stop gave up on batches it could not deliver (they are not committed)
        self._incidents_on = any(v.policies.incidents for v in self.versions.entries)
        self._version = self.versions.base.version  # the header of outputs that name no policy version

    # == the loop ==================================================================================================
    def run(self) -> None:
        self.consumer.subscribe([self.topics.input, self.topics.signals], self)
        try:
            while not self.stop.is_set():
                self.step()
        except FlushAborted as exc:
            self.abandoned = True
            log.warning("%s", exc)
        finally:
            self.shutdown()

    def offer_versions(self, versions: PolicyVersions) -> None:
        """Hold these policy versions from the next step on (any thread)."""
        self._offered = versions

    def _take_versions(self) -> None:
        offered = self._offered
        if offered is None:
            return
        self._offered = None
        known = {id(v) for v in self.versions.entries}
        switches = [
            v.effective_ms
            for v in offered.entries[1:]
            if id(v) not in known and v.applies_to == OPEN_TICKETS and v.effective_ms is not None
        ]
        self.versions = offered
        self._incidents_on = any(v.policies.incidents for v in offered.entries)
        for part in self.tickets.values():
            part.set_versions(offered, switches)
        for ipart in self.incidents.values():
            ipart.versions = offered

    def step(self) -> None:
        self._take_versions()
        records = self.consumer.consume(self._batch_size(), self._consume_timeout())
        self._consumed_at = self.monotonic()
        self._rewound.clear()
        self._advance()  # earlier batches: confirm outputs, write changelogs, store, commit (may re-validate)
        if not self.ready:
            self._watch_recovery()
            if not records:
                return
        started = self.monotonic()
        stats = BatchStats(records=len(records))
        stage = _Stage()
        outputs: list[_Out] = []
        # deadlines already due fire first: a batch of events never delays them
        self._fire_deadlines(self.now_ms(), outputs, stats)
        if outputs and not self._send(outputs, stats, stage):
            return
        now = self.now_ms()
        signals_in: list[Message] = []
        touched: set[TP] = set()
        t_input = self.topics.input
        for msg in records:
            if msg.error() is not None:
                log.warning("consumer error: %s", msg.error())
                continue
            topic, p, offset = msg.topic(), msg.partition(), msg.offset()
            assert p is not None and offset is not None
            if self._rewound and (topic, p) in self._rewound:
                continue  # consumed before its partition was re-validated: delivered again from the committed offset
            if topic == t_input:
                part = self.tickets.get(p)
                if part is None:
                    continue  # released: not ours any more (the consumer is paused for it)
                self._on_event(part, msg, now, outputs, stats)
                tp = (t_input, p)
            else:
                if p not in self.incidents:
                    continue
                signals_in.append(msg)
                tp = (self.topics.signals, p)
            self.positions[tp] = offset + 1
            touched.add(tp)
        now = self.now_ms()
        self._fire_deadlines(now, outputs, stats)
        if self._incidents_on:
            self._send_watermarks(now, outputs)
            for msg in signals_in:
                self.incidents[msg.partition()].add(msg)  # type: ignore[index]
            for q, ipart in self.incidents.items():
                for e in ipart.release():
                    if type(e) is Emit:
                        assert isinstance(e, Emit)
                        self._emit(e, outputs, stats, "none", timer=False)
                    elif type(e) is Ignored:
                        assert isinstance(e, Ignored)
                        stats.ignored[e.reason] += 1
                        log.info("incident.resolved %s names no open incident (%s)", e.event_id, e.reason)
                if ipart.held or signals_in:
                    touched.add((self.topics.signals, q))
        if outputs and not self._send(outputs, stats, stage):
            return
        busy = self.monotonic() - started  # the work on the records (no waiting for the broker in it)
        self._end_batch(stage, touched, stats)
        stats.seconds = self.monotonic() - self._consumed_at
        if stats.records >= 32:  # the cost per record, smoothed (sizes batches once caught up)
            self._record_cost = 0.8 * self._record_cost + 0.2 * (busy / stats.records)
        self.observer.on_batch(stats)

    def _batch_size(self) -> int:
        """``max_batch`` while catching up (throughput first); once caught up, as many records as take about
        ``max_batch_ms`` at the measured cost per record, so that a due deadline never waits long for a batch."""
        cfg = self.config
        backlog = 0
        unknown = False
        lag: dict[int, int] = {}
        for p in self.tickets:
            tp = (self.topics.input, p)
            high = self.consumer.highwater(tp)
            position = self.positions.get(tp, self.committed.get(tp))
            if high is None or position is None:
                unknown = True
                continue
            lag[p] = max(0, high - position)
            backlog += lag[p]
        self.lag = lag  # read by the metrics (other threads never call the consumer)
        if unknown or backlog > cfg.max_batch:
            return cfg.max_batch
        return max(64, min(cfg.max_batch, int(cfg.max_batch_ms / 1000 / self._record_cost)))

    def _consume_timeout(self) -> float:
        wait = self.config.max_wait_ms
        if self.ready and self.tickets:
            now = self.now_ms()
            wakes = [w for w in (part.next_wake() for part in self.tickets.values()) if w is not None]
            if wakes:
                due_in = min(wakes) - now
                wait = min(wait, self.config.freshness_ms if due_in <= 0 else due_in)
            if self._incidents_on:
                wait = min(wait, self.config.watermark_interval_ms)
        return max(0, wait) / 1000

    # == input ======================================================================================================
    def _on_event(self, part: TicketPartition, msg: Message, now: int, outputs: list[_Out], stats: BatchStats) -> None:
        try:
            ev = decode_record(
                msg.value(), msg.key(), headers_dict(msg.headers()), max_bytes=self.config.max_event_bytes
            )
        except DecodeError as err:
            self._dead_letter(msg, err, outputs, stats)
            return
        stats.consumed[ev.type] += 1
        stats.event_lags_ms.append(now - ev.time_ms)
        try:
            cmds = part.apply(ev) if ev.type != "incident.resolved" else [self._incident_resolved(part, ev)]
        except Exception as exc:  # a bug must not turn one record into a crash loop of the whole partition
            log.exception("processing failed for %s", ev.id, extra={"ticket_id": ev.ticket_id, "event_id": ev.id})
            failure = DecodeError("processing_error", f"{type(exc).__name__}: {exc}", ev.id)
            self._dead_letter(msg, failure, outputs, stats)
            return
        self._route(cmds, part, outputs, stats, timer=False)

    def _incident_resolved(self, part: TicketPartition, ev: Event) -> Command:
        """Not a ticket's event: a request routed to the incident's window (or a counted no-op)."""
        part.saw(ev.time_ms)
        cmd = resolution_of(ev, self.versions.for_new(ev.time_ms))  # as the replay does
        if type(cmd) is Ignored:
            log.info("incident.resolved %s names no incident of an incident rule with a lifecycle", ev.id)
        return cmd

    def _dead_letter(self, msg: Message, err: DecodeError, outputs: list[_Out], stats: BatchStats) -> None:
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        key, value, headers = dead_letter(
            msg.key(), msg.value(), msg.headers(), err, (topic, partition, offset), self.config.dlq_max_bytes
        )
        outputs.append(_Out(self.topics.dlq, key, value, headers, partition))  # the input's partition
        stats.rejected[err.reason] += 1
        log.warning(
            "rejected record %s[%s]@%s to %s: %s: %s",
            topic,
            partition,
            offset,
            self.topics.dlq,
            err.reason,
            quote_input(err.detail),  # the DLQ record's header has the detail in full (it may quote the input)
            extra={"event_id": quote_input(err.event_id), "reason": err.reason},
        )

    def _route(
        self, cmds: Iterable[Command], part: TicketPartition, outputs: list[_Out], stats: BatchStats, *, timer: bool
    ) -> None:
        for c in cmds:
            kind = type(c)
            if kind is Emit:
                assert isinstance(c, Emit)
                self._emit(c, outputs, stats, part.priority_of(c.key), timer=timer)
            elif kind is IncidentSignal:
                assert isinstance(c, IncidentSignal)
                if self._incidents_on:
                    key, value = signal_record(c, part.partition)
                    outputs.append(
                        _Out(self.topics.signals, key, value, None, partition_for(key, self.config.partitions))
                    )
            elif kind is IncidentResolve:
                assert isinstance(c, IncidentResolve)
                key, value = resolve_record(c, part.partition)
                outputs.append(_Out(self.topics.signals, key, value, None, partition_for(key, self.config.partitions)))
            elif kind is ClockOutcome:
                assert isinstance(c, ClockOutcome)
                stats.outcomes.append(c)
            elif kind is Ignored:
                assert isinstance(c, Ignored)
                if c.reason == "duplicate":
                    stats.duplicates += 1
                else:  # a no-op the event asked for (e.g. de-escalating an escalation that is not open)
                    stats.ignored[c.reason] += 1
            elif kind is StateCapped:
                assert isinstance(c, StateCapped)
                stats.capped[c.what] += 1
            elif kind is ThresholdSkipped:
                assert isinstance(c, ThresholdSkipped)
                stats.skipped[c.metric] += 1
            elif kind is FirstEscalation:
                assert isinstance(c, FirstEscalation)
                stats.first_escalations.append(c)

    def _emit(self, e: Emit, outputs: list[_Out], stats: BatchStats, priority: str, *, timer: bool) -> None:
        topic = self.topics.escalations if e.channel == "escalations" else self.topics.notifications
        fired = None
        if timer:
            fired_at = e.event["data"].get("fired_at")
            fired = parse_rfc3339_ms(fired_at) if isinstance(fired_at, str) else None
        outputs.append(
            _Out(
                topic,
                e.key.encode(),
                encode_event(e.event),
                output_headers(e, _policy_version(e, self._version)),
                None,
                fired,
            )
        )
        stats.emits.append((e, priority, timer))
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s", e.type, e.id, extra={"ticket_id": e.event.get("subject"), "output_id": e.id})

    # == deadlines ==================================================================================================
    def _applied_until(self, p: int, part: TicketPartition) -> int | None:
        """The instant before which every event of partition ``p`` is known to be applied: the newest event time
        applied (events of a partition arrive in time order), or the last instant a high-watermark check found no
        backlog less the allowed lateness (later events are stamped no earlier than that)."""
        best = part.applied_max_ms
        caught = self.caught_up_at.get(p)
        if caught is not None:
            bound = caught - self.config.lateness_ms
            if best is None or bound > best:
                best = bound
        return best

    def _check_backlog(self, p: int) -> None:
        """Use the newest high watermark the probe got for partition ``p``: if everything stored when it was asked is
        applied, remember the instant of the question. Ask again when that answer is older than ``freshness_ms``."""
        tp = (self.topics.input, p)
        answer = self.probe.latest(tp)
        now = self.now_ms()
        if answer is None or now - answer[0] >= self.config.freshness_ms:
            self.probe.request(tp)
            answer = self.probe.latest(tp)  # a probe that answers at once (tests) is used right away
        if answer is None:
            return
        asked, reported = answer
        if asked <= self.caught_up_at.get(p, _NEVER):
            return
        # nothing consumed and nothing committed: the partition is read from its start, so an empty one (high
        # watermark 0) is caught up -- else it would hold every incident window until its first record
        position = self.positions.get(tp, self.committed.get(tp, 0))
        if position >= self.consumer.corrected_highwater(tp, reported):
            self.caught_up_at[p] = asked

    def _fire_deadlines(self, now: int, outputs: list[_Out], stats: BatchStats) -> None:
        bound = now - self.config.lateness_ms
        for p, part in self.tickets.items():
            due = part.next_deadline_due(now)
            applied = self._applied_until(p, part)
            if due is not None and (applied is None or applied < due) and due <= bound:
                self._check_backlog(p)
                applied = self._applied_until(p, part)
            limit = _NEVER if applied is None else min(bound, applied)
            if due is not None and due > limit and timers_log.isEnabledFor(logging.DEBUG):
                timers_log.debug(
                    "partition %d: a deadline due since %d ms waits: events applied up to %s, caught up at %s, "
                    "position %s, high watermark %s",
                    p,
                    bound - due,
                    part.applied_max_ms,
                    self.caught_up_at.get(p),
                    self.positions.get((self.topics.input, p)),
                    self.consumer.highwater((self.topics.input, p)),
                )
            purged = part.purged
            cmds = part.fire_due(limit, now)
            stats.purged += part.purged - purged
            if cmds:
                self._route(cmds, part, outputs, stats, timer=True)

    # == incident watermarks =========================================================================================
    def _send_watermarks(self, now: int, outputs: list[_Out]) -> None:
        cfg = self.config
        for p, part in self.tickets.items():
            last_wm, sent_at = self._wm_sent.get(p, (_NEVER, _NEVER))
            if now - sent_at < cfg.watermark_interval_ms:
                continue
            self._check_backlog(p)
            applied = self._applied_until(p, part)
            if applied is None:
                continue
            wm = applied - 1  # another event at exactly ``applied`` may still come
            if wm <= last_wm and now - sent_at < cfg.watermark_repeat_ms:
                continue
            wm = max(wm, last_wm)
            key, value, headers = watermark_record(p, wm)
            for q in range(cfg.partitions):
                outputs.append(_Out(self.topics.signals, key, value, headers, q))
            self._wm_sent[p] = (wm, now)

    # == produce, store, commit: the pipeline ========================================================================
    #
    # A batch's outputs are produced as soon as they are known and never waited for. Each batch is a *stage* that
    # counts its records not yet delivered. Once its outputs are all delivered, its state changes are produced to
    # the changelogs (in batch order: a partition's changelog stays in order); once those are delivered too, the
    # store is written (if they landed right after the owner's previous records) and the batch's input offsets
    # are committed -- stages finish in order. The loop waits for deliveries only when ``max_in_flight`` batches
    # are unconfirmed, before a revocation and at the stop.

    def _frozen(self) -> bool:
        return (self.monotonic() - self._consumed_at) * 1000 > self.config.lease_ms

    def _send(self, outputs: list[_Out], stats: BatchStats, stage: _Stage) -> bool:
        """Produce outputs (not waited for). False if the lease expired first: then nothing was produced and every
        partition was re-validated."""
        if self._frozen():
            self._thaw()
            return False
        if not self._stages or self._stages[-1] is not stage:
            self._stages.append(stage)  # the batch being processed is always the newest stage
        now = self.now_ms()
        produce = self.producer.produce
        callback = stage.delivered
        for out in outputs:
            produce(out.topic, out.value, out.key, out.headers, out.partition, callback)
            if out.fired_ms is not None:
                stats.timer_lateness_ms.append(now - out.fired_ms)
        stage.pending += len(outputs)
        stage.outputs.extend(outputs)
        outputs.clear()
        return True

    def _thaw(self) -> None:
        """The batch took longer than the lease (the process was frozen or starved): the group may have given our
        partitions to another worker meanwhile. Drop the batch unproduced and re-validate every partition."""
        log.warning(
            "batch dropped: %.1fs since the last poll exceeds the %.1fs lease; re-validating every partition",
            self.monotonic() - self._consumed_at,
            self.config.lease_ms / 1000,
        )
        self.observer.on_fence("lease")
        self._wm_sent.clear()
        self._stages = [stage for stage in self._stages if stage.closed]  # this batch's stage ends here
        self._settle_deliveries()  # what earlier batches produced is in place before we read the changelogs
        for p in list(self.tickets):
            self._revalidate(TICKETS, p)
        for q in list(self.incidents):
            self._revalidate(WINDOWS, q)

    def _produce_stage(self, stage: _Stage, records: list[_Out]) -> None:
        produce = self.producer.produce
        callback = stage.delivered
        for out in records:
            produce(out.topic, out.value, out.key, out.headers, out.partition, callback)
        stage.pending += len(records)

    def _retry(self) -> None:
        """Produce again the records of every stage a delivery failed in (all of them: a delivery report does not
        say which record it was; outputs are idempotent, and changelog records landing twice are a gap that the
        partition's re-validation reads back), with a growing pause."""
        failed = [stage for stage in self._stages if stage.failed]
        if not failed:
            return
        self._retries += 1
        log.warning(
            "%d deliveries failed; producing them again (attempt %d)", sum(st.failed for st in failed), self._retries
        )
        if self.stop.is_set() and self._retries > 3:
            raise FlushAborted("stopping with undelivered records; they are not committed")
        self.stop.wait(min(5.0, 0.05 * 2**self._retries))
        for stage in failed:
            stage.failed = 0
            stage.pending = 0
            if stage.logged:
                for landed in stage.landed.values():
                    landed.clear()
                self._produce_stage(stage, stage.records)
            else:
                self._produce_stage(stage, stage.outputs)

    def _settle_deliveries(self) -> None:
        """Wait until everything produced is delivered (failed deliveries produced again)."""
        while True:
            self._flush()
            if not any(stage.failed for stage in self._stages):
                self._retries = 0
                return
            self._retry()

    def _deliver(self, records: list[_Out]) -> dict[TP, list[int]]:
        """Produce ``records`` and wait until every one is delivered (claims, the owners directory); returns where
        they landed, by (topic, partition)."""
        stage = _Stage(logged=True, closed=True)
        stage.records = records
        stage.landed = {(out.topic, out.partition or 0): [] for out in records}
        self._produce_stage(stage, records)
        while True:
            self._flush()
            if not stage.failed:
                return stage.landed
            self._retries += 1
            log.warning("%d deliveries failed; producing them again", stage.failed)
            if self.stop.is_set() and self._retries > 3:
                raise FlushAborted("stopping with undelivered records")
            self.stop.wait(min(5.0, 0.05 * 2**self._retries))
            stage.failed = stage.pending = 0
            for landed in stage.landed.values():
                landed.clear()
            self._produce_stage(stage, records)

    def _flush(self) -> None:
        """Wait until the producer has delivered everything, in slices of at most a second (so that a stop is seen
        within one); once stopping, for no longer than the stop's drain time."""
        waited = 0.0
        while True:
            left = self._stop_left()
            if left is not None and left <= 0:
                raise FlushAborted("stopping while the producer cannot flush; the batch is not committed")
            step = 1.0 if left is None else min(1.0, left)
            if self.producer.flush(step) == 0:
                return
            waited += step
            if waited >= self.config.flush_timeout_s:
                log.warning("producer flush still waiting after %.0fs", waited)
                waited = 0.0

    def _stop_left(self) -> float | None:
        """Seconds left to drain batches in flight since the stop was first seen (None while not stopping)."""
        if not self.stop.is_set():
            return None
        if self._stop_by is None:
            self._stop_by = self.monotonic() + self.config.stop_drain_s
        return self._stop_by - self.monotonic()

    def _end_batch(self, stage: _Stage, touched: set[TP], stats: BatchStats) -> None:
        """Close the batch's stage: its state changes (snapshots) and the offsets to commit once they are stored."""
        for p, part in self.tickets.items():
            seq, changes = part.snapshot()
            if changes:
                stage.changes.append(_StageChanges(self.topics.tickets_changelog, p, part, seq, changes))
                stats.changelog_records += len(changes)
        for q, ipart in self.incidents.items():
            seq, wchanges = ipart.snapshot()
            if wchanges:
                stage.changes.append(_StageChanges(self.topics.windows_changelog, q, ipart, seq, wchanges))
                stats.changelog_records += len(wchanges)
        for tp in touched:
            position = self.positions.get(tp)
            if position is None:
                continue
            if tp[0] == self.topics.signals:
                position = self.incidents[tp[1]].commit_offset(position)
            stage.commits[tp] = position
        stage.closed = True
        if (stage.changes or stage.commits) and (not self._stages or self._stages[-1] is not stage):
            self._stages.append(stage)
        if len(self._stages) > self.config.max_in_flight:
            self._settle_deliveries()

    def _advance(self) -> None:
        """Move the pipeline on without waiting: take the delivery reports that arrived, produce again what failed,
        produce the changelog records of the oldest stage whose outputs are delivered, finish stages whose changelog
        records are delivered."""
        if not self._stages:
            return
        self.producer.poll()  # the delivery callbacks of whatever arrived; does not wait
        self._retry()
        stages = self._stages
        progressed = True
        while progressed:
            progressed = False
            while stages and stages[0].logged and not stages[0].pending:
                self._finish(stages.pop(0))
                progressed = True
            for stage in stages:
                if stage.logged:
                    continue
                if stage.closed and not stage.pending:
                    self._log_changes(stage)
                    progressed = True
                break  # the oldest stage not logged yet decides; later ones wait for it
            if progressed:
                self.producer.poll()

    def _log_changes(self, stage: _Stage) -> None:
        records: list[_Out] = []
        for change in stage.changes:
            claim = self._claims[(change.topic, change.partition)]
            headers = [(H_WRITER, claim.writer.encode())]
            stage.landed[(change.topic, change.partition)] = []
            for key, value in change.changes:
                records.append(_Out(change.topic, key.encode(), value, headers, change.partition))
        stage.outputs = []  # delivered: nothing to produce again
        stage.records = records
        stage.logged = True
        self._produce_stage(stage, records)

    def _drain(self) -> None:
        """Store and commit every batch in flight (before a revocation or a stop)."""
        while self._stages:
            self._settle_deliveries()
            self._advance()

    def _finish(self, stage: _Stage) -> None:
        """A stage's changelog records are delivered: store them if they landed right after their owner's previous
        records, else re-validate the partition; then commit the stage's offsets."""
        for change in stage.changes:
            tp = (change.topic, change.partition)
            is_tickets = change.topic == self.topics.tickets_changelog
            current = (self.tickets if is_tickets else self.incidents).get(change.partition)
            if current is not change.owner:
                continue  # re-validated or released since
            claim = self._claims[tp]
            landed = stage.landed.get(tp, [])
            if contiguous(claim.expected, landed):
                claim.expected += len(landed)
                change.owner.stored(change.seq, Checkpoint(claim.expected, change.owner.store.checkpoint().marker))
                continue
            log.warning(
                "changelog %s[%d]: records landed at %s..%s, expected from %d: another writer; re-validating",
                change.topic,
                change.partition,
                min(landed, default=-1),
                max(landed, default=-1),
                claim.expected,
            )
            self.observer.on_fence("gap")
            self._revalidate(TICKETS if is_tickets else WINDOWS, change.partition)
        commits = {tp: o for tp, o in stage.commits.items() if self._committable(tp) and self.committed.get(tp) != o}
        if commits:
            self.consumer.commit(commits)
            self.committed.update(commits)

    def _committable(self, tp: TP) -> bool:
        """Whether offsets of ``tp`` from a stage in flight may still be committed (the partition was not
        re-validated, released or revoked since)."""
        table: dict[int, TicketPartition] | dict[int, IncidentPartition]
        table = self.tickets if tp[0] == self.topics.input else self.incidents
        return tp[1] in table

    # == rebalances: recovery, claims, release =========================================================================
    def assigned(self, partitions: list[TP]) -> None:
        """Recover and claim every assigned partition before any of its records is processed (runs inside
        ``consume``)."""
        started = self.monotonic()
        self.generation = self.consumer.generation()
        self.caught_up_at.clear()
        self._wm_sent.clear()
        self.positions.clear()
        self.committed = self.consumer.committed(partitions)
        for topic, p in sorted(partitions):
            if topic == self.topics.input:
                self._take(TICKETS, p)
            elif topic == self.topics.signals:
                self._take(WINDOWS, p)
        for key in list(self._parked):
            self._parked.pop(key).close()  # stores of partitions that went to other workers
        self._publish_owners()
        self._set_ready(True)
        log.info(
            "ready: partitions %s (%d tickets) recovered and claimed in %.3fs, generation %d",
            sorted(self.tickets),
            sum(part.gauges.tickets for part in self.tickets.values()),
            self.monotonic() - started,
            self.generation,
        )

    def revoked(self, partitions: list[TP], lost: bool) -> None:
        self._set_ready(False)
        if lost:
            self._stages.clear()  # another owner may be writing already: nothing more from us
        else:
            self._drain()
        if not lost:
            gone = set(partitions)
            offsets = {tp: o for tp, o in self.positions.items() if tp in gone and self.committed.get(tp) != o}
            for q, ipart in self.incidents.items():
                tp = (self.topics.signals, q)
                if tp in offsets:
                    offsets[tp] = ipart.commit_offset(offsets[tp])
            if offsets:
                try:
                    self.consumer.commit(offsets, wait=True)
                except Exception as exc:  # the group moved on already: the next owner re-reads a little more
                    log.warning("commit on revocation failed: %s", exc)
        for topic, p in partitions:
            if topic == self.topics.input and p in self.tickets:
                part = self.tickets.pop(p)
                part.discard()
                self._parked[(TICKETS, p)] = part.store
            elif topic == self.topics.signals and p in self.incidents:
                ipart = self.incidents.pop(p)
                ipart.discard()
                self._parked[(WINDOWS, p)] = ipart.store
        log.info("partitions %s: %s", "lost" if lost else "revoked", sorted(p for _t, p in partitions))

    def _store(self, kind: str, p: int) -> PartitionStore:
        return self._parked.pop((kind, p), None) or self.stores(kind, p)

    def _changelog(self, kind: str, p: int) -> TP:
        return (self.topics.tickets_changelog if kind == TICKETS else self.topics.windows_changelog, p)

    def _consumed(self, kind: str, p: int) -> TP:
        return (self.topics.input if kind == TICKETS else self.topics.signals, p)

    def _take(self, kind: str, p: int) -> None:
        """Recover and claim a newly assigned partition, or release it when another owner's claim holds."""
        store = self._store(kind, p)
        if self._claim(self._changelog(kind, p), store):
            self._open(kind, p, store)
        else:
            self._release(kind, p, store)

    def _open(self, kind: str, p: int, store: PartitionStore) -> None:
        """Start processing partition ``p`` from its recovered and claimed ``store``."""
        if kind == TICKETS:
            versions = self.versions
            part = TicketPartition(
                p,
                store,
                versions,
                lateness_ms=self.config.lateness_ms,
                retention_ms=self.config.retention_ms,
                timeline=self.config.timeline_entries,
            )
            part.rebuild()
            # a switch for open tickets shortly before (or after) this partition came here: look at them all
            since = self.now_ms() - RECENT_SWITCH_MS
            part.set_versions(
                versions,
                [
                    v.effective_ms
                    for v in versions.entries[1:]
                    if v.applies_to == OPEN_TICKETS and v.effective_ms is not None and v.effective_ms >= since
                ],
            )
            self.tickets[p] = part
        else:
            self.incidents[p] = IncidentPartition(p, store, self.versions, self.config.partitions)

    def _claim(self, tp: TP, store: PartitionStore) -> bool:
        """Recover ``store`` from changelog partition ``tp`` and append our ownership marker right after what we
        read. Returns False if another owner's claim holds (a newer generation claimed it first)."""
        started = self.monotonic()
        rec = recover(store, self.reader, tp)
        self.observer.on_recovered(tp[0], tp[1], self.monotonic() - started, rec.applied, rec.ignored)
        if rec.applied or rec.ignored:
            log.info(
                "recovered %s[%d]: %d records applied, %d ignored (older owners), %d markers rejected, %.3fs",
                tp[0],
                tp[1],
                rec.applied,
                rec.ignored,
                rec.rejected_markers,
                self.monotonic() - started,
            )
        generation = self.generation
        for _attempt in range(5):
            checkpoint = store.checkpoint()
            seen = -1 if checkpoint.marker is None else checkpoint.marker.offset
            writer = new_writer_id(tp[1], generation)
            key, value, headers = marker_record(writer, generation, seen, self.config.owner_url)
            (offset,) = self._deliver([_Out(tp[0], key, value, headers, tp[1])])[tp]
            if offset == checkpoint.offset:
                marker = Marker(offset, writer, generation, seen)
                store.write([], Checkpoint(offset + 1, marker))
                self._claims[tp] = _Claim(writer, generation, offset + 1)
                return True
            # someone wrote between our read and our marker: read it (and our marker) back
            rec = recover(store, self.reader, tp)
            current = store.checkpoint().marker
            if current is not None and current.writer == writer:
                self._claims[tp] = _Claim(writer, generation, store.checkpoint().offset)
                return True
            if current is not None and (current.generation >= generation or generation < 0):
                log.warning(
                    "%s[%d] was claimed by %s (generation %d) while we claimed it in generation %d",
                    tp[0],
                    tp[1],
                    current.writer,
                    current.generation,
                    generation,
                )
                return False
        return False

    def _release(self, kind: str, p: int, store: PartitionStore) -> None:
        """Another owner's claim holds: stop processing ``p`` until the group assigns it again."""
        self._parked[(kind, p)] = store
        self.consumer.pause([self._consumed(kind, p)])
        self.observer.on_fence("released")
        log.warning("%s partition %d is owned by another worker now; paused until the next rebalance", kind, p)
        if self.generation < 0:
            self.consumer.rejoin()

    def _forget_pending(self, consumed: TP, owner: TicketPartition | IncidentPartition) -> None:
        """A re-validated partition's batches in flight are dropped (they are read again from the committed
        offset)."""
        for stage in self._stages:
            stage.changes = [c for c in stage.changes if c.owner is not owner]
            stage.commits.pop(consumed, None)

    def _revalidate(self, kind: str, p: int) -> None:
        """Forget what partition ``p`` has not stored, read its changelog from the store's checkpoint, and go on from
        the committed offset if our claim still holds; else release the partition."""
        table: dict[int, TicketPartition] | dict[int, IncidentPartition]
        table = self.tickets if kind == TICKETS else self.incidents
        owner = table.pop(p)
        owner.discard()
        consumed = self._consumed(kind, p)
        self._forget_pending(consumed, owner)
        tp = self._changelog(kind, p)
        if self._still_ours(tp, owner.store):
            self._claims[tp].expected = owner.store.checkpoint().offset
            self._open(kind, p, owner.store)
            self._rewind(consumed)
        else:
            self._release(kind, p, owner.store)

    def _still_ours(self, tp: TP, store: PartitionStore) -> bool:
        """Read changelog partition ``tp`` from the store's checkpoint: True if our claim still holds, or if the claim
        that replaced it is from an older generation than ours (then we claim again after it)."""
        recover(store, self.reader, tp)
        current = store.checkpoint().marker
        if current is not None and current.writer == self._claims[tp].writer:
            return True
        if current is not None and (current.generation >= self.generation or self.generation < 0):
            log.warning(
                "%s[%d] was claimed by %s in generation %d (ours: %d): releasing it",
                tp[0],
                tp[1],
                current.writer,
                current.generation,
                self.generation,
            )
            return False
        return self._claim(tp, store)

    def _rewind(self, tp: TP) -> None:
        """Process a partition again from its committed offset (its uncommitted batch was dropped)."""
        offset = self.committed.get(tp)
        if offset is None:
            offset = self.consumer.committed([tp]).get(tp, 0)
        self.consumer.seek(tp, offset)
        self.positions.pop(tp, None)
        self._rewound.add(tp)

    def _publish_owners(self) -> None:
        """Tell the other workers (``/tickets/{id}`` routing) which input partitions this one owns."""
        import orjson

        outs = []
        for p in sorted(self.tickets):
            claim = self._claims[(self.topics.tickets_changelog, p)]
            value = orjson.dumps(
                {"partition": p, "url": self.config.owner_url, "writer": claim.writer, "generation": claim.generation}
            )
            outs.append(_Out(self.topics.owners, str(p).encode(), value, None, 0))
        if outs:
            self._deliver(outs)

    # == readiness ===================================================================================================
    def _set_ready(self, ready: bool) -> None:
        if ready:
            self.rejoins = 0
        elif self.ready:
            self.unready_since = self.monotonic()
        self.ready = ready
        self.observer.on_ready(ready)

    def _watch_recovery(self) -> None:
        """A group join or rebalance that makes no progress for ``stall_ms`` is retried by leaving and rejoining the
        group; a worker still not ready after 3 attempts exits with status 3 so that its supervisor restarts it."""
        now = self.monotonic()
        if (now - self.unready_since) * 1000 < self.config.stall_ms:
            return
        self.unready_since = now
        self.rejoins += 1
        self.observer.on_stall()
        if self.rejoins > 3:
            log.error("not ready for %d recovery attempts: exiting so that the worker is restarted", self.rejoins - 1)
            if self.exit is not None:
                self.exit(3)
            return
        log.warning(
            "not ready for %.0fs: rejoining the consumer group (attempt %d)", self.config.stall_ms / 1000, self.rejoins
        )
        self.consumer.rejoin()

    # == stopping ====================================================================================================
    def shutdown(self) -> None:
        """Leave the group (the batches in flight are stored and committed on revocation), flush, close stores."""
        try:
            self._drain()
        except FlushAborted as exc:
            self.abandoned = True
            log.warning("%s", exc)
        try:
            self.consumer.close()
        except Exception:
            log.exception("closing the consumer failed")
        try:
            left = self._stop_left()
            if self.producer.flush(self.config.flush_timeout_s if left is None else max(0.0, left)) > 0:
                self.abandoned = True
        finally:
            for part in list(self.tickets.values()):
                part.store.close()
            for ipart in list(self.incidents.values()):
                ipart.store.close()
            for store in self._parked.values():
                store.close()
            self.tickets.clear()
            self.incidents.clear()
            self._parked.clear()
            self.reader.close()
            self.probe.close()
            self.producer.close()
            self._set_ready(False)

    # == views (any thread) ===========================================================================================
    def owned(self) -> list[int]:
        return sorted(self.tickets)
