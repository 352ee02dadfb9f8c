"""Validate a policy file (``escalator policy check FILE``) or show what it compiles to (``policy show FILE``)."""

from __future__ import annotations

import argparse
import sys

import orjson

from ..core.durations import format_duration_ms
from ..core.policy import PolicyError
from ..policy_file import load_policy_file

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a policy file; errors name the file, line and field")
    check.add_argument("file")
    show = sub.add_parser("show", help="print the compiled policy (thresholds per metric) as JSON")
    show.add_argument("file")


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
        targets = ", ".join(f"{m} {format_duration_ms(v)}" for m, v in p.targets.items())
        ladder = " -> ".join(f"L{s.level}@+{format_duration_ms(s.after_ms)}" for s in p.steps) or "no ladder"
        print(f"  policy {p.id}: calendar {p.calendar.name}; {targets}; {ladder}")
    for t in ps.triggers:
        print(f"  trigger {t.id}: {t.kind} L{t.level} ({t.reason})")
    for r in ps.incidents:
        print(f"  incident {r.id}: {r.threshold} by {r.group_by} in {format_duration_ms(r.window_ms)}")
    return 0
