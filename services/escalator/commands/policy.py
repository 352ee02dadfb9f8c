"""Validate a policy file (``escalator policy check FILE``), show what it compiles to (``policy show FILE``),
publish it as a new version to the policies topic (``policy publish FILE [--effective-from T] [--applies-to
open_tickets|new_tickets]``) and list the published versions (``policy versions``)."""

from __future__ import annotations

import argparse
import sys

import orjson

from ..core.durations import format_duration_ms
from ..core.plan import CompiledPolicy
from ..core.policy import PolicyError
from ..core.vocabulary import APPLIES_TO
from ..policy_file import load_policy_file

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a policy file; errors name the file, line and field")
    check.add_argument("file")
    show = sub.add_parser("show", help="print the compiled policy (thresholds per metric) as JSON")
    show.add_argument("file")
    publish = sub.add_parser(
        "publish", help="validate a policy file and publish it as a new version to the policies topic"
    )
    publish.add_argument("file")
    publish.add_argument(
        "--effective-from",
        metavar="INSTANT",
        help="RFC 3339 instant (event time) from which it applies (default: now). Give workers time to read it "
        "before then: a version read after its instant is adopted late by tickets that already passed it",
    )
    publish.add_argument(
        "--applies-to",
        choices=APPLIES_TO,
        default="open_tickets",
        help="open_tickets (default): every open ticket is re-planned under it at that instant; new_tickets: only "
        "tickets created from then on use it",
    )
    sub.add_parser("versions", help="list the versions published to the policies topic")


def _describe(p: CompiledPolicy) -> str:
    targets = ", ".join(f"{m} {format_duration_ms(v)}" for m, v in p.targets.items())
    ladder = " -> ".join(
        f"L{s.level}@{'-' if s.after_ms < 0 else '+'}{format_duration_ms(abs(s.after_ms))}" for s in p.steps
    )
    calendar = p.calendar.name if p.choice is None else "per ticket (group / requester zone)"
    return f"calendar {calendar}; {targets}; {ladder or 'no ladder'}"


def run(args: argparse.Namespace) -> int:
    if args.policy_command == "publish":
        return _publish(args)
    if args.policy_command == "versions":
        return _versions()
    try:
        ps = load_policy_file(args.file)
    except PolicyError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        return 1
    if args.policy_command == "show":
        sys.stdout.write(orjson.dumps(ps.describe(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    print(f"{args.file}: OK (version {ps.version})")
    for p in ps.policies:
        print(f"  policy {p.id}: {_describe(p)}")
    for a in ps.agreements:
        print(f"  agreement {a.id}{' (per group)' if a.per_group else ''}:")
        for p in a.policies.policies:
            print(f"    policy {p.id}: {_describe(p)}")
    for t in ps.triggers:
        print(f"  trigger {t.id}: {t.kind} L{t.level} ({t.reason})")
    for r in ps.incidents:
        life = []
        if r.lifecycle:
            life.append("members" + (f" escalated L{r.escalate_level}" if r.escalate_level else ""))
        if r.auto_resolve_ms is not None:
            life.append(f"resolved after {format_duration_ms(r.auto_resolve_ms)} quiet")
        if r.requester_updates:
            life.append("requester updates")
        more = f"; {', '.join(life)}" if life else ""
        print(f"  incident {r.id}: {r.threshold} by {r.group_by} in {format_duration_ms(r.window_ms)}{more}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    import time

    from ..core import parse_rfc3339_ms
    from ..policy_versions import publish_record
    from .startup import StartupError, needs_broker, settings_or_fail

    now = int(time.time() * 1000)
    try:
        effective = parse_rfc3339_ms(args.effective_from) if args.effective_from else now
    except ValueError as exc:
        print(f"error: --effective-from: {exc}", file=sys.stderr)
        return 2
    try:
        key, value, record = publish_record(args.file, effective, args.applies_to, now)
    except PolicyError as exc:
        for issue in exc.issues:
            print(f"error: {issue}", file=sys.stderr)
        print("error: nothing was published", file=sys.stderr)
        return 1
    try:
        settings = settings_or_fail({})
        needs_broker(settings)
    except StartupError as exc:
        return exc.code
    from ..stream.kafka import produce_one

    problem = produce_one(settings, settings.topic_policies, key, value)
    if problem is not None:
        print(f"error: publishing to {settings.topic_policies}: {problem}", file=sys.stderr)
        return 1
    print(
        f"published {args.file}: version {record.version}, effective from {record.effective_from} for "
        f"{record.applies_to}, to {settings.topic_policies}"
    )
    if effective < now:
        print(
            "warning: the effective instant has passed: tickets that are already beyond it adopt the version at "
            "the instant they are at (a replay with --policy-change switches exactly at it)",
            file=sys.stderr,
        )
    return 0


def _versions() -> int:
    from ..policy_versions import PolicyRecordError, read_policy_record
    from .startup import StartupError, needs_broker, settings_or_fail

    try:
        settings = settings_or_fail({})
        needs_broker(settings)
    except StartupError as exc:
        return exc.code
    from ..stream.kafka import read_all

    try:
        messages = read_all(settings, settings.topic_policies)
    except Exception as exc:  # a missing topic, an unreachable broker: say which
        print(f"error: reading {settings.topic_policies}: {exc}", file=sys.stderr)
        return 1
    print("offset\tversion\teffective_from\tapplies_to\tpublished_at\tfile")
    for m in messages:
        try:
            r = read_policy_record(m.value())
        except PolicyRecordError as exc:
            print(f"{m.offset()}\t-\t-\t-\t-\t(rejected: {exc})")
            continue
        print(f"{m.offset()}\t{r.version}\t{r.effective_from}\t{r.applies_to}\t{r.published_at}\t{r.file}")
    return 0
