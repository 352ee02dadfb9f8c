"""The topics escalator needs, with their configs, and their creation (``escalator topics create``, ``make run``,
the tests)."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from ..settings import Settings

__all__ = ["TopicSpec", "create_topics", "topic_specs"]


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
            settings.topic_escalations,
            settings.output_partitions,
            r,
            {},
            "escalation.raised/resolved, incident.detected/updated/resolved",
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
        TopicSpec(settings.topic_policies, 1, r, compact, "published policy versions (escalator policy publish)"),
    ]


async def create_topics(settings: Settings, specs: list[TopicSpec], *, verbose: bool = True) -> int:
    """Create the missing topics; returns 0, or 1 if any failed (failures are always printed on stderr)."""
    say = print if verbose else (lambda *a, **k: None)
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError, TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, **settings.kafka_client_kwargs())
    try:
        await admin.start()
    except (KafkaError, OSError, KeyError, ValueError) as exc:
        # a refused SASL login surfaces from aiokafka as a KeyError of its SCRAM exchange; say what it means
        await admin.close()
        mechanism = settings.kafka_client_kwargs().get("sasl_mechanism")
        what = f"SASL {mechanism} login refused" if isinstance(exc, KeyError) and mechanism else type(exc).__name__
        print(f"error: cannot reach the brokers at {settings.bootstrap_servers} ({what}): {exc!r}", file=sys.stderr)
        return 1
    try:
        existing = set(await admin.list_topics())
        failures = 0
        for spec in specs:
            if spec.name in existing:
                say(f"exists   {spec.name}")
                continue
            topic = NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=spec.configs)
            try:
                resp = await admin.create_topics([topic])
            except TopicAlreadyExistsError:
                say(f"exists   {spec.name}")
                continue
            errors = [e for e in getattr(resp, "topic_errors", []) if e[1] not in (0, 36)]
            if errors:
                failures += 1
                print(f"FAILED   {spec.name}: {errors}", file=sys.stderr)
            else:
                say(f"created  {spec.name} (partitions={spec.partitions}, replication={spec.replication})")
        return 1 if failures else 0
    finally:
        await admin.close()
