"""Every workaround for the embedded development broker (Tansu 0.6.0), and nothing else.

Active only when ``Settings.broker_flavour == "tansu"`` (set by the launcher: ``escalator broker``, ``make run`` and
the test fixtures). Never use it against Apache Kafka: the workarounds replace client behaviour that is correct
against a real cluster. Two kinds of clients talk to the broker:

* the worker's hot path uses **confluent-kafka** (librdkafka): ``escalator.stream.kafka`` merges
  :func:`librdkafka_consumer_overrides` / :func:`librdkafka_producer_overrides` into its client configuration and
  corrects fresh high watermarks with :func:`caught_up_highwater` -- only against Tansu;
* the tools (``tail``, ``demo``, topic creation, test fixtures) use **aiokafka**: :func:`install` patches it
  process-wide (``end_offsets``, ``leave_group``).

Workarounds (measured symptoms; numbers in docs/embedded-broker.md):

``end_offsets`` (aiokafka) -- ListOffsets(LATEST) returns the base offset of the newest stored batch + 1 instead of
    the high watermark (a batch of 10 records at offset 0 reports 1). It breaks ``end_offsets``, ``seek_to_end``,
    ``auto_offset_reset="latest"`` and lag computed from end offsets. Fetch responses carry the correct high
    watermark, so after every ListOffsets request that asks for LATEST, aiokafka's ``Fetcher._proc_offset_request``
    (the single place through which all of those go) sends one Fetch for those partitions at the reported offset
    and uses the high watermark of the answer when it is larger.

``caught_up_highwater`` (librdkafka) -- the same ListOffsets answer, seen by the worker's backlog check
    (``get_watermark_offsets(cached=False)``, which decides whether a partition's deadlines may fire). The reported
    offset is the newest batch's base + 1; a consumer positioned beyond it has fetched that whole batch, so the
    cached high watermark of that fetch covers it: the larger of the two is exact. (The worker's changelog reads
    stop at librdkafka's end-of-partition event, which comes from fetch responses and is correct as it is.)

``leave_group`` (aiokafka) -- Tansu numbers the first group generation 0, and aiokafka sends LeaveGroup on close
    only when the generation is > 0: a client stopped in generation 0 stayed a member until its session expired.
    It now also leaves from generation 0. (librdkafka leaves from generation 0 as it is: measured, 0 members after
    close.)

Configuration (``librdkafka_*_overrides``): Tansu holds every JoinGroup answer until half the group's session
    timeout has passed, so the session timeout is capped at ``TANSU_SESSION_TIMEOUT`` with a heartbeat well inside
    it (group join 2.0 s with the 3 s cap). Idempotent and transactional producers fail (InitProducerId ->
    UnknownError), so idempotence is off and one request is in flight per connection, which keeps retried records
    in order (the changelog depends on it).

Known limitations with no workaround here (see the docs): compaction is never performed (recovery reads every
update, tombstones included), DeleteRecords panics a broker thread, CreatePartitions / OffsetDelete /
OffsetForLeaderEpoch / legacy AlterConfigs are missing, DescribeGroups lists no members, ``offsets_for_times``
uses the broker's write time.
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
    "caught_up_highwater",
    "fetch_highwaters",
    "install",
    "installed",
    "librdkafka_consumer_overrides",
    "librdkafka_producer_overrides",
    "session_timeout",
    "uninstall",
]

log = logging.getLogger(__name__)

#: Longest consumer-group session timeout used against Tansu (JoinGroup answers come after half of it).
TANSU_SESSION_TIMEOUT = 3.0
#: Heartbeat interval used against Tansu (a third of the session is Kafka's usual rule; a sixth leaves room for a
#: busy 2-core machine).
TANSU_HEARTBEAT_INTERVAL = 0.5

#: Names of the aiokafka monkeypatches ``install()`` applies (all of them by default).
WORKAROUNDS: tuple[str, ...] = ("end_offsets", "leave_group")

_LATEST = -1  # ListOffsets timestamp meaning "the end of the partition"
_PROBE_MAX_WAIT_MS = 10  # Tansu answers a Fetch with max_wait 0 with no partitions at all; 10 ms is enough
_PROBE_PARTITION_BYTES = 1  # the broker still returns the first batch at the offset; that is the whole cost

# name -> (owner, attribute, original) for every attribute replaced by install()
_originals: dict[str, tuple[Any, str, Any]] = {}
_INHERITED = object()  # marks an attribute that the patched class only inherited


def installed() -> frozenset[str]:
    """Names of the workarounds currently installed in this process."""
    return frozenset(_originals)


def install(settings: Settings | None = None, *, only: Collection[str] | None = None) -> frozenset[str]:
    """Install the aiokafka workarounds process-wide. Idempotent: a second call installs only what is missing.

    only: a subset of ``WORKAROUNDS`` (for measurements); default all. Returns the installed names. Call it only
    against the embedded broker.
    """
    wanted = tuple(WORKAROUNDS if only is None else only)
    unknown = set(wanted) - set(WORKAROUNDS)
    if unknown:
        raise ValueError(f"unknown workaround(s) {sorted(unknown)}; known: {list(WORKAROUNDS)}")
    installers: dict[str, Callable[[], None]] = {
        "end_offsets": _install_end_offsets,
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


def _timeouts(settings: Settings) -> tuple[float, float]:
    session = min(settings.session_timeout_seconds, TANSU_SESSION_TIMEOUT)
    heartbeat = min(settings.heartbeat_interval_seconds, TANSU_HEARTBEAT_INTERVAL, session / 3)
    return session, heartbeat


def librdkafka_consumer_overrides(settings: Settings) -> dict[str, Any]:
    """Group timeouts for Tansu's JoinGroup behaviour (the cap only lowers the settings)."""
    session, heartbeat = _timeouts(settings)
    return {"session.timeout.ms": int(session * 1000), "heartbeat.interval.ms": int(heartbeat * 1000)}


def librdkafka_producer_overrides(settings: Settings) -> dict[str, Any]:
    """No idempotence (InitProducerId fails); one request in flight keeps retried records in order."""
    return {"enable.idempotence": False, "max.in.flight.requests.per.connection": 1}


def session_timeout(settings: Settings) -> float:
    """The session timeout the worker really uses against Tansu (its lease is derived from it)."""
    return _timeouts(settings)[0]


def caught_up_highwater(reported: int, cached: int | None) -> int:
    """The high watermark from a ListOffsets answer (``reported``: the newest batch's base + 1 on Tansu) and the
    one cached from the latest fetch: their maximum (see the module docstring)."""
    return reported if cached is None else max(reported, cached)


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
