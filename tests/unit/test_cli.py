"""The command line: policy check, configuration reference, settings."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from pydantic import ValidationError

from escalator.cli import main
from escalator.commands.config import render_docs
from escalator.settings import Settings
from tests.support import EXAMPLE_POLICY, ROOT


def test_policy_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(EXAMPLE_POLICY)]) == 0
    out = capsys.readouterr().out
    assert "OK (version" in out and "policy vip-urgent" in out and "incident outage" in out


def test_policy_check_reports_file_line_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\npolicies:\n  - id: x\n    targets: {resolution: soon}\n")
    assert main(["policy", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4:" in err and "policies[0].targets.resolution" in err and "invalid duration 'soon'" in err


def test_policy_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(tmp_path / "nope.yaml")]) == 1
    assert "file not found" in capsys.readouterr().err


def test_configuration_reference_is_current() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == render_docs()


def test_settings_env_names_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092, k2:9092")
    monkeypatch.setenv("ESCALATOR_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("ESCALATOR_WEB_PORT", "7000")
    s = Settings()
    assert s.bootstrap_servers == "k1:9092,k2:9092" and s.web_port == 7000
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    monkeypatch.setenv("ESCALATOR_BOOTSTRAP_SERVERS", "e1:9092")
    assert Settings().bootstrap_servers == "e1:9092"  # the escalator-specific name wins
    with pytest.raises(ValidationError):  # frozen
        s.web_port = 1  # type: ignore[misc]


def test_worker_refuses_an_invalid_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATOR_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\npolicies:\n  - id: x\n    targets: {first_response: 1h}\n    calendar: mars\n")
    assert main(["worker", "--policy", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:5:" in err and "unknown calendar 'mars'" in err and "does not start" in err


def test_worker_without_a_broker_says_how_to_get_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESCALATOR_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["worker", "--policy", str(EXAMPLE_POLICY)]) == 2
    assert "ESCALATOR_BOOTSTRAP_SERVERS" in capsys.readouterr().err


def test_topics_list_names_every_topic_and_compacts_changelogs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESCALATOR_APP_ID", "esc")
    assert main(["topics", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = {line.split("\t")[0]: line for line in lines}
    assert set(names) == {
        "ticket-events",
        "ticket-escalations",
        "ticket-notifications",
        "ticket-events.dlq",
        "esc-incident-signals",
        "esc-tickets-changelog",
        "esc-incident-windows-changelog",
        "esc-owners",
        "esc-policies",
    }
    assert "cleanup.policy=compact" in names["esc-policies"]
    assert "cleanup.policy=compact" in names["esc-tickets-changelog"]
    assert "cleanup.policy=compact" in names["esc-incident-windows-changelog"]
    assert "cleanup.policy=compact" not in names["ticket-events"]


def test_help_lists_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for env, _default, _text in Settings.describe():
        assert env.split(" ")[0] in out


def test_every_listed_command_registers() -> None:
    from escalator.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)
    for name, cmd in sub.choices.items():
        module = cmd.get_default("_module")
        assert module.__name__ == COMMANDS[name][0] and callable(module.run), name


def test_a_command_module_that_cannot_be_imported_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    from escalator import cli

    monkeypatch.setitem(cli.COMMANDS, "ghost", ("escalator.commands.no_such_module", "a packaging mistake"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        cli.build_parser()
