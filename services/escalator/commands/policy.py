"""Validate a policy file (``escalator policy check FILE``) or show what it compiles to (``policy show FILE``)."""

from __future__ import annotations

import argparse
import sys

import orjson

from ..core.durations import format_duration_ms
from ..core.plan import CompiledPolicy
from ..core.policy import PolicyError
from ..policy_file import load_policy_file

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a policy file; errors name the file, line and field")
    check.add_argument("file")
    show = sub.add_parser("show", help="print the compiled policy (thresholds per metric) as JSON")
    show.add_argument("file")


def _describe(p: CompiledPolicy) -> str:
    targets = ", ".join(f"{m} {format_duration_ms(v)}" for m, v in p.targets.items())
    ladder = " -> ".join(
        f"L{s.level}@{'-' if s.after_ms < 0 else '+'}{format_duration_ms(abs(s.after_ms))}" for s in p.steps
    )
    calendar = p.calendar.name if p.choice is None else "per ticket (group / requester zone)"
    return f"calendar {calendar}; {targets}; {ladder or 'no ladder'}"


def run(args: argparse.Namespace) -> int:
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
        print(f"  incident {r.id}: {r.threshold} by {r.group_by} in {format_duration_ms(r.window_ms)}")
    return 0
