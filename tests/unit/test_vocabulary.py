"""One vocabulary: each closed word list is spelled out once (core/vocabulary.py) and used everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from escalator.core import vocabulary as v
from escalator.core.envelopes import CommentedData, CreatedData
from escalator.core.output_models import EscalationData, NotificationData, Recipient, TicketSnapshot
from escalator.core.policy import PolicySpec

SERVICES = Path(__file__).resolve().parents[2] / "services" / "escalator"


def _enum(model: type, field: str) -> list[str]:
    schema = model.model_json_schema()  # type: ignore[attr-defined]
    prop = schema["properties"][field]
    for branch in (prop, *prop.get("anyOf", ()), *prop.get("allOf", ())):
        if "enum" in branch:
            return list(branch["enum"])
        if "$ref" in branch:
            return list(schema["$defs"][branch["$ref"].rsplit("/", 1)[1]]["enum"])
        if "items" in branch and "enum" in branch["items"]:
            return list(branch["items"]["enum"])
    raise AssertionError(f"{model.__name__}.{field} has no enum: {prop}")


@pytest.mark.parametrize(
    ("model", "field", "words"),
    [
        (CreatedData, "priority", v.PRIORITIES),
        (CreatedData, "status", v.STATUSES),
        (CommentedData, "author", ("agent", "requester")),
        (TicketSnapshot, "priority", v.PRIORITIES),
        (TicketSnapshot, "status", v.STATUSES),
        (EscalationData, "kind", v.ESCALATION_KINDS),
        (EscalationData, "reason", v.ESCALATION_REASONS),
        (NotificationData, "kind", v.NOTIFICATION_KINDS),
        (NotificationData, "severity", v.SEVERITIES),
        (Recipient, "type", v.RECIPIENT_TYPES),
        (PolicySpec, "pause_on", v.STATUSES),
    ],
)
def test_contract_fields_use_the_vocabulary(model: type, field: str, words: tuple[str, ...]) -> None:
    assert _enum(model, field) == list(words)


def test_derived_lists_stay_inside_their_vocabulary() -> None:
    assert set(v.DONE_STATUSES) <= set(v.STATUSES)
    assert set(v.DEFAULT_PAUSE_ON) <= set(v.STATUSES)
    assert not set(v.DONE_STATUSES) & set(v.DEFAULT_PAUSE_ON)
    assert set(v.ENDINGS) == set(v.PHASES) - {"running"}


@pytest.mark.parametrize("words", [v.PRIORITIES, v.STATUSES, v.METRICS, v.DONE_STATUSES, v.PHASES])
def test_no_module_spells_a_word_list_out_again(words: tuple[str, ...]) -> None:
    """A tuple or Literal of these words written out anywhere but the vocabulary is a second definition."""
    spelled = re.compile(r",\s*".join(re.escape(f'"{w}"') for w in words))
    offenders = [
        str(p.relative_to(SERVICES))
        for p in SERVICES.rglob("*.py")
        if p.name != "vocabulary.py" and spelled.search(p.read_text())
    ]
    assert offenders == [], f"{words} spelled out in {offenders}: import it from escalator.core.vocabulary"
