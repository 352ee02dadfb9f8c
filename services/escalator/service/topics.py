"""The topics escalator needs, with their configs (used by ``escalator topics create`` and the docs)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import Settings

__all__ = ["TopicSpec", "topic_specs"]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str] = field(default_factory=dict)
    purpose: str = ""


def topic_specs(settings: Settings) -> list[TopicSpec]:
    p, r = settings.partitions, settings.replication_factor
    compact = {"cleanup.policy": "compact"}
    return [
        TopicSpec(settings.topic_input, p, r, {}, "input ticket events (key: ticket id)"),
        TopicSpec(
            settings.topic_escalations, settings.output_partitions, r, {}, "escalation.raised, incident.detected"
        ),
        TopicSpec(settings.topic_notifications, settings.output_partitions, r, {}, "notification.requested"),
        TopicSpec(settings.topic_dlq, p, r, {"retention.ms": str(30 * 86_400_000)}, "dead letters"),
        TopicSpec(
            settings.topic_incident_signals,
            p,
            r,
            {"retention.ms": str(7 * 86_400_000)},
            "internal: incident signals (key: rule + group value) and input watermarks",
        ),
        TopicSpec(settings.topic_tickets_changelog, p, r, compact, "internal: ticket state changelog"),
        TopicSpec(settings.topic_windows_changelog, p, r, compact, "internal: incident window changelog"),
        TopicSpec(settings.topic_owners, 1, r, compact, "internal: input partition owners (HTTP routing)"),
    ]
