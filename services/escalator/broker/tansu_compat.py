"""Every workaround for the embedded development broker (Tansu 0.6.0), and nothing else.

Active only when ``Settings.broker_flavour == "tansu"`` (set by the launcher: ``escalator broker``, ``make run`` and
the test fixtures). Never install it against Apache Kafka: the workarounds replace client behaviour that is correct
against a real cluster. The worker calls ``activate(settings)`` once, before it creates the ``faust.App``, and
merges the returned keyword arguments into the app configuration; against Kafka that call returns ``{}`` and
patches nothing.

Workarounds (measured symptoms; numbers in docs/embedded-broker.md, reproduced by bench/tansu_recovery_loop.py):

``end_offsets`` -- ListOffsets(LATEST) returns the base offset of the newest stored batch + 1 instead of the high
    watermark (a batch of 10 records at offset 0 reports 1). faust reads a changelog partition during table
    recovery only up to that "end" (``Recovery._build_highwaters`` -> ``consumer.end_offsets``), so it stops early
    and silently drops the tail of the last batch: updates written by the previous owner are missing after a
    restart or takeover. The same answer breaks ``seek_to_end``, ``auto_offset_reset="latest"`` and lag computed
    from end offsets. Fetch responses carry the correct high watermark, so after every ListOffsets request that
    asks for LATEST, aiokafka's ``Fetcher._proc_offset_request`` (the single place through which ``end_offsets``,
    ``seek_to_end`` and the "latest" reset go) now sends one Fetch for those partitions at the reported offset
    (at most the newest batch is transferred) and uses the high watermark of the answer when it is larger.
    Measured (bench/tansu_recovery_loop.py, 200 updates, worker restart): updates lost in 7 of 10 runs without
    the patches, 0 of 10 with them; without this one alone, 5 of 5 runs lost updates.

``fetch_wait`` -- faust hard-codes ``fetch_max_wait_ms=1500`` for its worker consumer. Tansu re-checks a waiting
    fetch at half the remaining wait, so every hop through a topic took ~358 ms (median) instead of ~13 ms. The
    worker consumer is created with ``Settings.fetch_max_wait_ms`` (default 100 ms) instead. Measured round trip
    through a worker (control topic -> worker -> reply topic): 754 ms -> 52 ms median.

``leave_group`` -- Tansu numbers the first group generation 0, and aiokafka sends LeaveGroup on close only when
    the generation is > 0. A worker stopped in generation 0 stayed a member until its session expired, and a
    restarted worker waited for it in JoinGroup. The consumer now also leaves the group from generation 0.
    Measured: members listed right after close 1 -> 0; worker restart with a 10 s session 19.7 s -> 6.6 s to ready.

``faust_overrides(settings)`` -- configuration, not patches: Tansu holds every JoinGroup answer until half the
    group's session timeout has passed (faust's default 60 s session -> 31.6 s until "Ready"; 10 s -> 6.6 s;
    3 s -> 3.6 s; 2 s -> 2.6 s), so the session timeout is capped at ``TANSU_SESSION_TIMEOUT`` with a heartbeat
    well inside it. Idempotent and transactional producers fail (InitProducerId -> UnknownError), so processing
    is at-least-once (``exactly_once`` is refused here with a clear error instead of failing at start).

Known limitations with no workaround here (see the docs): compaction is never performed (recovery reads every
update, tombstones included), DeleteRecords panics a broker thread, CreatePartitions / OffsetDelete /
OffsetForLeaderEpoch / legacy AlterConfigs are missing, ``offsets_for_times`` uses the broker's write time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = [
    "TANSU_HEARTBEAT_INTERVAL",
    "TANSU_SESSION_TIMEOUT",
    "WORKAROUNDS",
    "activate",
    "app_overrides",
    "faust_overrides",
    "fetch_highwaters",
    "install",
    "installed",
    "uninstall",
]

log = logging.getLogger(__name__)

#: Longest consumer-group session timeout used against Tansu (JoinGroup answers come after half of it).
TANSU_SESSION_TIMEOUT = 3.0
#: Heartbeat interval used against Tansu (a third of the session is Kafka's usual rule; a sixth leaves room for a
#: busy 2-core machine).
TANSU_HEARTBEAT_INTERVAL = 0.5

#: Names of the monkeypatches ``install()`` applies (all of them by default).
WORKAROUNDS: tuple[str, ...] = ("end_offsets", "fetch_wait", "leave_group")

_LATEST = -1  # ListOffsets timestamp meaning "the end of the partition"
_PROBE_MAX_WAIT_MS = 10  # Tansu answers a Fetch with max_wait 0 with no partitions at all; 10 ms is enough
_PROBE_PARTITION_BYTES = 1  # the broker still returns the first batch at the offset; that is the whole cost

# name -> (owner, attribute, original) for every attribute replaced by install()
_originals: dict[str, tuple[Any, str, Any]] = {}
_fetch_max_wait_ms: int = 100
_INHERITED = object()  # marks an attribute that the patched class only inherited


def installed() -> frozenset[str]:
    """Names of the workarounds currently installed in this process."""
    return frozenset(_originals)


def install(
    settings: Settings | None = None, *, fetch_max_wait_ms: int | None = None, only: Collection[str] | None = None
) -> frozenset[str]:
    """Install the Tansu workarounds process-wide. Idempotent: a second call installs only what is missing and
    updates the fetch wait.

    fetch_max_wait_ms: the worker consumer's fetch wait; default ``settings.fetch_max_wait_ms`` (100 ms without
    settings). only: a subset of ``WORKAROUNDS`` (for measurements); default all. Returns the installed names.
    Call it only against the embedded broker (``activate(settings)`` checks ``broker_flavour`` for you).
    """
    global _fetch_max_wait_ms
    if fetch_max_wait_ms is None:
        fetch_max_wait_ms = settings.fetch_max_wait_ms if settings is not None else 100
    if fetch_max_wait_ms < 0:
        raise ValueError("fetch_max_wait_ms must be >= 0")
    wanted = tuple(WORKAROUNDS if only is None else only)
    unknown = set(wanted) - set(WORKAROUNDS)
    if unknown:
        raise ValueError(f"unknown workaround(s) {sorted(unknown)}; known: {list(WORKAROUNDS)}")
    _fetch_max_wait_ms = int(fetch_max_wait_ms)
    installers: dict[str, Callable[[], None]] = {
        "end_offsets": _install_end_offsets,
        "fetch_wait": _install_fetch_wait,
        "leave_group": _install_leave_group,
    }
    for name in wanted:
        if name not in _originals:
            installers[name]()
            log.debug("tansu_compat: installed %s", name)
    return installed()


def uninstall() -> None:
    """Restore every patched attribute (for tests and measurements)."""
    while _originals:
        _name, (owner, attribute, original) = _originals.popitem()
        if original is _INHERITED:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)


def activate(settings: Settings) -> dict[str, Any]:
    """The worker's single entry point: against Tansu install the patches and return faust.App overrides.

    Against Kafka (``broker_flavour == "kafka"``) it patches nothing and returns ``{}``.
    """
    if settings.broker_flavour != "tansu":
        return {}
    install(settings)
    return faust_overrides(settings)


def faust_overrides(settings: Settings | None = None, **app_kwargs: Any) -> dict[str, Any]:
    """faust.App keyword arguments needed against Tansu.

    Timeouts come from ``settings`` (defaults when None) and are capped for Tansu's JoinGroup behaviour.
    app_kwargs: the keyword arguments the caller is about to pass; ``processing_guarantee="exactly_once"`` there is
    refused with a ``ValueError`` (Tansu has no idempotent/transactional producer).
    """
    if app_kwargs.get("processing_guarantee") not in (None, "at_least_once"):
        raise ValueError(
            "the embedded broker (Tansu) does not support idempotent or transactional producers: "
            "processing_guarantee must be 'at_least_once'"
        )
    if settings is None:
        from ..settings import Settings

        settings = Settings()
    session = min(settings.session_timeout_seconds, TANSU_SESSION_TIMEOUT)
    heartbeat = min(settings.heartbeat_interval_seconds, TANSU_HEARTBEAT_INTERVAL, session / 3)
    rebalance = min(settings.rebalance_timeout_seconds, max(session, TANSU_SESSION_TIMEOUT))
    return {
        "broker_session_timeout": session,
        "broker_heartbeat_interval": heartbeat,
        "broker_rebalance_timeout": rebalance,
        "processing_guarantee": "at_least_once",
        "topic_replication_factor": 1,  # a single broker
    }


#: The name the worker uses (``tansu_compat.app_overrides(settings)``).
app_overrides = faust_overrides


# --- end_offsets ----------------------------------------------------------------------------------------------


async def fetch_highwaters(
    client: Any, node_id: int, positions: Mapping[Any, int], *, isolation_level: int = 0
) -> dict[Any, int]:
    """High watermarks of ``positions``' partitions (aiokafka ``TopicPartition`` -> offset to fetch at), learnt from
    one Fetch request to ``node_id`` through aiokafka ``client``. Partitions missing from the answer or answered
    with an error are left out (the caller keeps what it had)."""
    from aiokafka.errors import NoError, for_code
    from aiokafka.protocol.fetch import FetchRequest
    from aiokafka.structs import TopicPartition

    by_topic: dict[str, list[tuple[int, int, int]]] = {}
    for tp, offset in positions.items():
        by_topic.setdefault(tp.topic, []).append((tp.partition, max(int(offset), 0), _PROBE_PARTITION_BYTES))
    request = FetchRequest(_PROBE_MAX_WAIT_MS, 0, _PROBE_PARTITION_BYTES, isolation_level, list(by_topic.items()))
    response = await client.send(node_id, request)
    read_committed = isolation_level == 1 and response.API_VERSION >= 4
    found: dict[Any, int] = {}
    for topic, partitions in response.topics:
        for partition, error_code, highwater, *rest in partitions:
            if for_code(error_code) is not NoError:
                continue
            value = rest[0] if read_committed else highwater
            if value is not None and value >= 0:
                found[TopicPartition(topic, partition)] = int(value)
    return found


def _install_end_offsets() -> None:
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.structs import TopicPartition

    original = Fetcher._proc_offset_request

    async def _proc_offset_request(self: Any, node_id: int, topic_data: Mapping[str, Any]) -> Any:
        offsets = await original(self, node_id, topic_data)
        latest = {
            TopicPartition(topic, partition)
            for topic, parts in topic_data.items()
            for partition, timestamp in parts
            if timestamp == _LATEST
        }
        positions = {tp: offsets[tp][0] for tp in latest if tp in offsets}
        if not positions:
            return offsets
        try:
            highwaters = await fetch_highwaters(self._client, node_id, positions, isolation_level=self._isolation_level)
        except Exception as exc:  # a failed probe must not turn into a failed ListOffsets; retry it as one
            from aiokafka.errors import KafkaError, RequestTimedOutError

            if isinstance(exc, KafkaError):
                raise
            raise RequestTimedOutError(f"tansu_compat: high-watermark probe failed: {exc!r}") from exc
        for tp, reported in positions.items():
            highwater = highwaters.get(tp)
            if highwater is not None and highwater > reported:
                log.debug("tansu_compat: end offset of %s corrected from %d to %d", tp, reported, highwater)
                offsets[tp] = (highwater, offsets[tp][1])
        return offsets

    _replace("end_offsets", Fetcher, "_proc_offset_request", _proc_offset_request)


# --- fetch_wait -----------------------------------------------------------------------------------------------


def _install_fetch_wait() -> None:
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    original = AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        # AIOKafkaConsumer keeps the value until start(), which builds its Fetcher from it.
        consumer._fetch_max_wait_ms = _fetch_max_wait_ms
        return consumer

    _replace("fetch_wait", AIOKafkaConsumerThread, "_create_worker_consumer", _create_worker_consumer)


# --- leave_group ----------------------------------------------------------------------------------------------


def _install_leave_group() -> None:
    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.group import JoinGroupRequest, LeaveGroupRequest

    original = GroupCoordinator._maybe_leave_group

    async def _maybe_leave_group(self: Any) -> None:
        # aiokafka leaves only from generation > 0; Tansu's first generation is 0.
        if (
            self.generation == 0
            and self._group_instance_id is None
            and self.member_id != (JoinGroupRequest.UNKNOWN_MEMBER_ID)
        ):
            try:
                await self._send_req(LeaveGroupRequest(self.group_id, self.member_id))
            except KafkaError as err:
                log.warning("tansu_compat: LeaveGroup from generation 0 failed: %s", err)
            else:
                log.info("tansu_compat: left group %s from generation 0", self.group_id)
        await original(self)  # generation <= 0: only resets the generation; > 0: aiokafka's own LeaveGroup

    _replace("leave_group", GroupCoordinator, "_maybe_leave_group", _maybe_leave_group)


def _replace(name: str, owner: Any, attribute: str, value: Any) -> None:
    _originals[name] = (owner, attribute, owner.__dict__.get(attribute, _INHERITED))
    setattr(owner, attribute, value)
