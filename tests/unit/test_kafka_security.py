"""Kafka security settings reach every client of every process (librdkafka for the worker, gateway and relay; aiokafka
for topics, demo and tail), and the secrets never leave them: not in `config show`, repr, logs or /policy."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from escalator.gateway.delivery import producer_config
from escalator.settings import Settings
from escalator.stream import kafka

PASSWORD, KEY_PASSWORD = "sasl-pw-7f3a9c", "key-pw-51d2e8"


@pytest.fixture
def secure(tmp_path: Path) -> Settings:
    return Settings(
        bootstrap_servers="broker-1:9094,broker-2:9094",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="escalator",
        sasl_password=PASSWORD,  # type: ignore[arg-type]
        ssl_cafile=tmp_path / "ca.pem",
        ssl_certfile=tmp_path / "client.pem",
        ssl_keyfile=tmp_path / "client.key",
        ssl_key_password=KEY_PASSWORD,  # type: ignore[arg-type]
        app_id="sec",
        store="memory",
    )


EXPECTED = {
    "bootstrap.servers": "broker-1:9094,broker-2:9094",
    "security.protocol": "sasl_ssl",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "escalator",
    "sasl.password": PASSWORD,
    "ssl.key.password": KEY_PASSWORD,
}


def test_librdkafka_clients_of_the_worker_gateway_and_relay_get_every_security_option(secure: Settings) -> None:
    confs = {"client": kafka.client_config(secure), "gateway producer": producer_config(secure)}
    for name, conf in confs.items():
        for key, value in EXPECTED.items():
            assert conf[key] == value, (name, key)
        assert conf["ssl.ca.location"].endswith("ca.pem") and conf["ssl.certificate.location"].endswith("client.pem")
        assert conf["ssl.key.location"].endswith("client.key"), name


def test_the_worker_and_relay_clients_are_built_from_the_same_options(
    secure: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every librdkafka client class of escalator.stream.kafka (the worker's, and the relay's, which reuses them)."""
    import confluent_kafka

    seen: list[dict[str, Any]] = []

    class Capture:
        def __init__(self, conf: dict[str, Any]) -> None:
            seen.append(conf)

        def __getattr__(self, name: str) -> Any:
            return lambda *a, **k: None

    monkeypatch.setattr(confluent_kafka, "Consumer", Capture)
    monkeypatch.setattr(confluent_kafka, "Producer", Capture)
    for cls in (kafka.KafkaGroupConsumer, kafka.KafkaProducer, kafka.KafkaChangelogReader):
        cls(secure)
    assert len(seen) >= 3
    for conf in seen:
        assert {k: conf[k] for k in EXPECTED} == EXPECTED


def test_aiokafka_tools_get_sasl_options(secure: Settings) -> None:
    plain = secure.model_copy(update={"security_protocol": "SASL_PLAINTEXT"})
    kwargs = plain.kafka_client_kwargs()
    assert kwargs["security_protocol"] == "SASL_PLAINTEXT" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "escalator" and kwargs["sasl_plain_password"] == PASSWORD


def test_no_secret_in_config_show_repr_or_logs(
    secure: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], caplog: Any
) -> None:
    from escalator.cli import main

    for name, value in {
        "ESCALATOR_SASL_PASSWORD": PASSWORD,
        "ESCALATOR_SSL_KEY_PASSWORD": KEY_PASSWORD,
        "ESCALATOR_NOTIFY_SMTP_PASSWORD": "smtp-pw-0a9b",
        "ESCALATOR_NOTIFY_WEBHOOK_SECRET": "whsec_c2VjcmV0LXNlY3JldA==",
        "ESCALATOR_GATEWAY_EVENTS_SECRET": "gw-secret-77aa",
        "ESCALATOR_GATEWAY_SERVICENOW_TOKEN": "snow-token-88bb",
    }.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.DEBUG)
    main(["config", "show"])
    out = capsys.readouterr()
    text = out.out + out.err + repr(Settings()) + Settings().model_dump_json() + caplog.text
    for secret in (PASSWORD, KEY_PASSWORD, "smtp-pw-0a9b", "c2VjcmV0LXNlY3JldA", "gw-secret-77aa", "snow-token-88bb"):
        assert secret not in text, secret
