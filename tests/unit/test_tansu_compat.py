"""escalator.broker.tansu_compat without a broker: installing and removing the aiokafka patches, the librdkafka
settings and the high-watermark correction (the broker-behaviour canaries are in tests/integration)."""

from __future__ import annotations

import pytest

from escalator.broker import tansu_compat
from escalator.settings import Settings


def test_install_is_idempotent_and_uninstall_restores(compat_off: None) -> None:
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    originals = (Fetcher._proc_offset_request, GroupCoordinator._maybe_leave_group)
    assert tansu_compat.install() == frozenset(tansu_compat.WORKAROUNDS)
    patched = (Fetcher._proc_offset_request, GroupCoordinator._maybe_leave_group)
    assert all(p is not o for p, o in zip(patched, originals, strict=True))
    assert tansu_compat.install() == frozenset(tansu_compat.WORKAROUNDS)
    assert (Fetcher._proc_offset_request, GroupCoordinator._maybe_leave_group) == patched  # not wrapped twice
    tansu_compat.uninstall()
    assert tansu_compat.installed() == frozenset()
    assert (Fetcher._proc_offset_request, GroupCoordinator._maybe_leave_group) == originals
    with pytest.raises(ValueError, match="unknown workaround"):
        tansu_compat.install(only=["compaction"])


def test_librdkafka_overrides_cap_the_session_and_turn_idempotence_off() -> None:
    consumer = tansu_compat.librdkafka_consumer_overrides(Settings(session_timeout_seconds=10.0))
    assert consumer["session.timeout.ms"] == int(tansu_compat.TANSU_SESSION_TIMEOUT * 1000)
    assert consumer["heartbeat.interval.ms"] <= consumer["session.timeout.ms"] / 3
    shorter = tansu_compat.librdkafka_consumer_overrides(
        Settings(session_timeout_seconds=2.0, heartbeat_interval_seconds=0.2)
    )
    assert (shorter["session.timeout.ms"], shorter["heartbeat.interval.ms"]) == (2000, 200)
    producer = tansu_compat.librdkafka_producer_overrides(Settings())
    assert producer == {"enable.idempotence": False, "max.in.flight.requests.per.connection": 1}


def test_caught_up_highwater_takes_the_larger_of_listoffsets_and_the_fetch() -> None:
    assert tansu_compat.caught_up_highwater(1, 10) == 10  # a batch of 10 at offset 0: ListOffsets says 1
    assert tansu_compat.caught_up_highwater(11, 10) == 11  # a newer batch the consumer has not fetched yet
    assert tansu_compat.caught_up_highwater(5, None) == 5  # no fetch yet
