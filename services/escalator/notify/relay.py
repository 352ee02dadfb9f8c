"""The relay's loop behind seams: consume -> route -> (outbox: throttle, digest, quiet hours) -> deliver with retries
and a breaker per destination -> dead-letter after the last attempt -> commit.

One :meth:`Relay.step` does one round of all of it at the injected clock's "now"; unit tests drive steps with a
manual clock and the in-memory broker, the process (:meth:`Relay.run`) loops over steps.

Offsets: a record is *settled* once every destination it was routed to has delivered it, suppressed it (duplicate,
stale) or dead-lettered it (the dead-letter record acknowledged by the broker). Each partition's offset is
committed up to its oldest unsettled record -- a record deferred by quiet hours or a digest window holds its
partition's commit back, and is read again after a restart (the delivery log then keeps what was already sent
from going out twice).

Resolves (``escalation.resolved`` -> PagerDuty ``resolve``): a delivered trigger records its route (alert key ->
routing key, recipient) in the delivery log; a resolve goes to exactly those routes, each with the trigger's
routing key and ``dedup_key``, as a message of its own (retries, breaker, dead letters and de-duplication as for
any message). Order: while a trigger of the same alert is still in the outbox or being retried, the resolve is
*held* (its record unsettled, so its partition's commit waits too) and routed once that trigger settled --
delivered (then it goes where the trigger went) or dead-lettered (then there is nothing to resolve there). A
resolve for an alert no trigger was delivered for (not routed to PagerDuty, or remembered no more) is skipped
(``suppressed_total{reason="not_triggered"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..service.timesource import TimeSource
from ..settings import Settings
from ..stream.ports import TP, GroupConsumer, Message, Producer
from .channels import ChannelSender, SendError
from .delivery import Backoff, CircuitBreaker, DeliveryLog
from .metrics import NotifyMetrics
from .noise import Outbox, stale_reason
from .routing import Destination, NotForTheRelay, Notice, RecordError, Routing, parse_notice

__all__ = ["Relay"]

log = logging.getLogger("escalator.notify")

_MAX_RECORDS = 500
_IDLE_POLL_S = 0.1
_PURGE_EVERY_MS = 3_600_000


@dataclass(eq=False)
class _Record:
    tp: TP
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    pending: int = 0
    routed: bool = False

    @property
    def settled(self) -> bool:
        return self.routed and self.pending == 0


@dataclass(eq=False)
class _Job:
    """One message (a notification, or a digest of several) to one destination, with its retry state."""

    destination: Destination
    items: list[tuple[Notice, _Record]]
    next_ms: int
    attempts: int = 0


@dataclass
class _DeadLetter:
    record: _Record
    channel: str
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Relay:
    """A consumer-group member (group ``<app_id>-notify``); also its own rebalance listener."""

    def __init__(
        self,
        settings: Settings,
        routing: Routing,
        consumer: GroupConsumer,
        producer: Producer,
        channels: Mapping[str, ChannelSender],
        delivery_log: DeliveryLog,
        clock: TimeSource,
        metrics: NotifyMetrics,
        rng: random.Random | None = None,
    ) -> None:
        missing = sorted(routing.channels() - set(channels))
        if missing:
            raise ValueError(f"the routing file uses channels that are not configured: {', '.join(missing)}")
        self.settings = settings
        self.routing = routing
        self.consumer = consumer
        self.producer = producer
        self.channels = channels
        self.delivery_log = delivery_log
        self.clock = clock
        self.metrics = metrics
        self.outbox: Outbox[_Record] = Outbox(int(settings.notify_digest_window_seconds * 1000))
        self.backoff = Backoff(
            int(settings.notify_backoff_initial_seconds * 1000),
            int(settings.notify_backoff_max_seconds * 1000),
            rng or random.Random(),
        )
        self.breaker = CircuitBreaker(
            settings.notify_breaker_failures, int(settings.notify_breaker_cooldown_seconds * 1000)
        )
        self.ready = False
        self._ledger: dict[TP, dict[int, _Record]] = {}
        self._jobs: list[_Job] = []
        self._dlq_retry: list[_DeadLetter] = []
        self._held: list[tuple[Notice, _Record]] = []  # resolves waiting for their trigger to settle
        self._next_purge = 0

    # -- group membership ------------------------------------------------------------------------------------------
    def topics(self) -> list[str]:
        s = self.settings
        return [s.topic_notifications, *([s.topic_escalations] if self.routing.needs_escalations() else [])]

    def start(self) -> None:
        self.consumer.subscribe(self.topics(), self)

    def assigned(self, partitions: list[TP]) -> None:
        self.ready = True
        self.metrics.ready.set(1)
        log.info("assigned %s", sorted(partitions))

    def revoked(self, partitions: list[TP], lost: bool) -> None:
        """Commit what is settled (unless lost), then forget everything of those partitions: their records are
        read again by their next owner."""
        if not lost:
            self._commit(wait=True)
        gone = set(partitions)
        for tp in gone:
            self._ledger.pop(tp, None)
        self.outbox.drop(lambda rec: rec.tp not in gone)
        for job in self._jobs:
            job.items = [(n, r) for n, r in job.items if r.tp not in gone]
        self._jobs = [j for j in self._jobs if j.items]
        self._held = [(n, r) for n, r in self._held if r.tp not in gone]

    # -- the loop --------------------------------------------------------------------------------------------------
    async def step(self) -> float:
        """One round at the clock's now; returns how long the caller may wait before the next one (seconds)."""
        now = self.clock.now_ms()
        if now >= self._next_purge:
            s = self.settings
            self.delivery_log.purge(
                now - int(s.notify_dedup_retention_seconds * 1000), now - int(s.notify_trigger_retention_seconds * 1000)
            )
            self._next_purge = now + _PURGE_EVERY_MS
        records = self.consumer.consume(_MAX_RECORDS, 0)
        for msg in records:
            self._accept(msg, now)
        self._release_due(now)
        await self._attempt_due(now)
        self._release_held(now)
        self._resend_dead_letters()
        self.producer.poll()
        self._commit()
        if records:
            return 0.0
        upcoming = [j.next_ms for j in self._jobs]
        if (due := self.outbox.next_due()) is not None:
            upcoming.append(due)
        wait = (min(upcoming) - self.clock.now_ms()) / 1000 if upcoming else _IDLE_POLL_S
        return max(0.0, min(_IDLE_POLL_S, wait))

    async def run(self, stop: asyncio.Event) -> None:
        self.start()
        try:
            while not stop.is_set():
                wait = await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=wait)
        finally:
            self.producer.flush(10.0)
            self.producer.poll()
            self._commit(wait=True)

    def pending(self) -> int:
        """Records read and not settled yet (tests, logs)."""
        return sum(1 for ledger in self._ledger.values() for r in ledger.values() if not r.settled)

    # -- routing ---------------------------------------------------------------------------------------------------
    def _accept(self, msg: Message, now: int) -> None:
        if msg.error() is not None:
            log.warning("consumer error: %s", msg.error())
            return
        tp = (msg.topic() or "", msg.partition() or 0)
        rec = _Record(tp, msg.offset() or 0, msg.key(), msg.value(), list(msg.headers() or []))
        self._ledger.setdefault(tp, {})[rec.offset] = rec
        try:
            notice = parse_notice(rec.value)
        except NotForTheRelay as exc:
            log.debug("skipped %s[%d]@%d: %s", tp[0], tp[1], rec.offset, exc)
            self.metrics.suppressed.labels("other_type").inc()
            rec.routed = True
            return
        except RecordError as exc:
            log.warning("unreadable record %s[%d]@%d: %s", tp[0], tp[1], rec.offset, exc)
            rec.pending += 1
            self._dead_letter(rec, "none", "", "invalid_record", str(exc))
            rec.routed = True
            return
        if notice.action == "resolve":
            self._accept_resolve(notice, rec, now)
            rec.routed = True
            return
        destinations = self.routing.route(notice)
        if not destinations:
            self.metrics.suppressed.labels("unrouted").inc()
        for dest in destinations:
            if self.delivery_log.seen(notice.id, dest.key):
                self.metrics.suppressed.labels("duplicate").inc()
                continue
            rec.pending += 1
            self.outbox.add(notice, dest, rec, now, bundle=dest.channel != "pagerduty")
        rec.routed = True

    # -- resolves --------------------------------------------------------------------------------------------------
    def _accept_resolve(self, notice: Notice, rec: _Record, now: int) -> None:
        if self._trigger_in_flight(notice.alert_key):
            log.debug("resolve %s held until the trigger of %s settles", notice.id, notice.alert_key)
            self.metrics.resolves_held.inc()
            rec.pending += 1
            self._held.append((notice, rec))
            return
        self._route_resolve(notice, rec, now)

    def _trigger_in_flight(self, alert_key: str) -> bool:
        """Whether a trigger of ``alert_key`` waits in the outbox or in a job (first attempt or retries)."""
        queued = (n for n, _ in self.outbox.items())
        in_jobs = (n for job in self._jobs for n, _ in job.items)
        return any(n.action == "trigger" and n.alert_key == alert_key for n in (*queued, *in_jobs))

    def _route_resolve(self, notice: Notice, rec: _Record, now: int) -> None:
        """Queue ``notice`` (a resolve) for every service its alert's trigger was delivered to."""
        routes = self.delivery_log.triggers(notice.alert_key)
        if not routes:
            log.debug("resolve %s skipped: no trigger of %s was delivered", notice.id, notice.alert_key)
            self.metrics.suppressed.labels("not_triggered").inc()
            return
        for address, recipient in routes:
            dest = Destination("pagerduty", address, recipient)
            if self.delivery_log.seen(notice.id, dest.key):
                self.metrics.suppressed.labels("duplicate").inc()
                continue
            rec.pending += 1
            self.outbox.add(notice, dest, rec, now, bundle=False)

    def _release_held(self, now: int) -> None:
        """Route the held resolves whose trigger has settled meanwhile."""
        held, self._held = self._held, []
        for notice, rec in held:
            if self._trigger_in_flight(notice.alert_key):
                self._held.append((notice, rec))
                continue
            self._route_resolve(notice, rec, now)
            rec.pending -= 1

    # -- the outbox ------------------------------------------------------------------------------------------------
    def _release_due(self, now: int) -> None:
        """Due outbox entries become jobs, less what turned stale or was delivered meanwhile."""
        max_age = int(self.settings.notify_warning_max_age_seconds * 1000)
        for dest, items in self.outbox.take_due(now):
            fresh: list[tuple[Notice, _Record]] = []
            ids: set[str] = set()
            for notice, rec in items:
                reason = stale_reason(notice, now, max_age)
                if reason is None and (notice.id in ids or self.delivery_log.seen(notice.id, dest.key)):
                    reason = "duplicate"
                if reason is not None:
                    self.metrics.suppressed.labels(reason).inc()
                    rec.pending -= 1
                    continue
                ids.add(notice.id)
                fresh.append((notice, rec))
            if fresh:
                self._jobs.append(_Job(dest, fresh, now))

    # -- delivery --------------------------------------------------------------------------------------------------
    async def _attempt_due(self, now: int) -> None:
        due = [j for j in self._jobs if j.next_ms <= now]
        if due:
            await asyncio.gather(*(self._attempt(job, now) for job in due))

    async def _attempt(self, job: _Job, now: int) -> None:
        dest = job.destination
        self.metrics.attempts.labels(dest.channel).inc()
        job.attempts += 1
        try:
            if not self.breaker.allow(dest.key, now):
                raise SendError("circuit_open", "the destination's circuit breaker is open")
            await self.channels[dest.channel].send(dest, [n for n, _ in job.items], now)
        except SendError as exc:
            if exc.reason != "circuit_open":
                self.breaker.record(dest.key, False, self.clock.now_ms())
            self.metrics.failed.labels(dest.channel, exc.reason).inc()
            self._failed(job, exc)
            return
        self.breaker.record(dest.key, True, self.clock.now_ms())
        self._delivered(job)

    def _delivered(self, job: _Job) -> None:
        self._jobs.remove(job)
        at = self.clock.now_ms()
        dest = job.destination
        for notice, rec in job.items:
            self.delivery_log.mark(notice.id, dest.key, at)
            if dest.channel == "pagerduty":
                if notice.action == "trigger":  # where its resolve will go
                    self.delivery_log.mark_trigger(notice.alert_key, dest.address, dest.recipient, at)
                else:
                    self.metrics.resolves_delivered.inc()
            self.metrics.delivered.labels(dest.channel).inc()
            self.metrics.latency.observe(max(0.0, (at - notice.fired_at_ms) / 1000))
            rec.pending -= 1
        if len(job.items) > 1:
            self.metrics.digests.inc()
            log.info("delivered %s -> %s: digest of %d notifications", dest.channel, dest.recipient, len(job.items))
        else:
            notice = job.items[0][0]
            log.info("delivered %s -> %s: %s (%s)", dest.channel, dest.recipient, notice.subject, notice.id)

    def _failed(self, job: _Job, exc: SendError) -> None:
        dest = job.destination
        now = self.clock.now_ms()
        if exc.retryable and job.attempts < self.settings.notify_max_attempts:
            delay = self.backoff.delay_ms(job.attempts)
            if exc.retry_after_s is not None:
                delay = max(delay, int(exc.retry_after_s * 1000))
            job.next_ms = now + delay
            log.info(
                "attempt %d to %s %s failed (%s); next in %.1fs",
                job.attempts,
                dest.channel,
                dest.recipient,
                exc,
                delay / 1000,
            )
            return
        self._jobs.remove(job)
        log.warning(
            "dead-lettering %d notification(s) for %s %s after %d attempt(s): %s",
            len(job.items),
            dest.channel,
            dest.recipient,
            job.attempts,
            exc,
        )
        for _, rec in job.items:
            self._dead_letter(rec, dest.channel, dest.recipient, exc.reason, exc.detail)

    # -- dead letters and commits ----------------------------------------------------------------------------------
    def _dead_letter(self, rec: _Record, channel: str, recipient: str, reason: str, detail: str) -> None:
        """Produce ``rec`` (its key, value and headers as they were) to the delivery DLQ with the reason; ``rec``
        keeps one pending count until the broker acknowledged it."""
        headers = [
            *rec.headers,
            ("escalator-dlq-reason", reason.encode()),
            ("escalator-dlq-detail", detail[:1000].encode()),
            ("escalator-dlq-channel", channel.encode()),
            ("escalator-dlq-recipient", recipient.encode()),
            ("escalator-dlq-topic", rec.tp[0].encode()),
            ("escalator-dlq-partition", str(rec.tp[1]).encode()),
            ("escalator-dlq-offset", str(rec.offset).encode()),
        ]
        self._produce_dead_letter(_DeadLetter(rec, channel, headers))

    def _produce_dead_letter(self, letter: _DeadLetter) -> None:
        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                log.warning("dead letter not acknowledged (%s); producing it again", err)
                self._dlq_retry.append(letter)
                return
            self.metrics.dead_lettered.labels(letter.channel).inc()
            letter.record.pending -= 1

        rec = letter.record
        self.producer.produce(
            self.settings.notify_dlq, rec.value, key=rec.key, headers=letter.headers, on_delivery=delivered
        )

    def _resend_dead_letters(self) -> None:
        retry, self._dlq_retry = self._dlq_retry, []
        for letter in retry:
            self._produce_dead_letter(letter)

    def _commit(self, *, wait: bool = False) -> None:
        offsets: dict[TP, int] = {}
        for tp, ledger in self._ledger.items():
            while ledger:
                offset, rec = next(iter(ledger.items()))
                if not rec.settled:
                    break
                del ledger[offset]
                offsets[tp] = offset + 1
        if offsets:
            self.consumer.commit(offsets, wait=wait)
