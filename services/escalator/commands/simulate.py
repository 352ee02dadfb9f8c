"""What-if replay: run a policy over recorded ticket events in event time and report what it would have done.

``escalator simulate --policy P.yaml --events FILE [--until T] [--out outputs.jsonl] [--json] [--report r.html]
[--compare OTHER.yaml] [--labels labels.csv]``. FILE is JSON Lines of v1 CloudEvents (``.jsonl``, ``.jsonl.gz`` or
``-`` for stdin) in arrival order. Bad lines are reported on stderr with their line number and counted; they never
abort the run.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ..core.vocabulary import METRICS

if TYPE_CHECKING:
    from ..core import PolicySet
    from ..core.versions import PolicyVersions
    from ..replay.run import RunResult

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, metavar="P.yaml", help="the policy file to simulate")
    parser.add_argument(
        "--events",
        required=True,
        metavar="FILE",
        help="JSON Lines of v1 ticket events (.jsonl, .jsonl.gz, - for stdin)",
    )
    parser.add_argument(
        "--until",
        metavar="T",
        help="end the run at this RFC 3339 instant (default: the last event's time); later events are not applied",
    )
    parser.add_argument("--out", metavar="FILE", help="write every emitted event as JSON Lines (.gz compresses)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of text")
    parser.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    parser.add_argument("--compare", metavar="OTHER.yaml", help="also simulate this policy and compare the two")
    parser.add_argument(
        "--policy-change",
        action="append",
        default=[],
        metavar="[new_tickets:]INSTANT=FILE",
        help="from INSTANT (RFC 3339, event time) on, FILE applies: to every open ticket (re-planned at that instant, "
        "as a version published with `escalator policy publish --effective-from INSTANT` does), or with the "
        "new_tickets: prefix only to tickets created from then on; repeatable",
    )
    parser.add_argument(
        "--labels",
        metavar="FILE.csv",
        help="per-ticket SLA verdicts of the source system (columns ticket_id, made_sla; see 'escalator import "
        "servicenow --labels') to compare with the engine's verdicts",
    )
    parser.add_argument(
        "--labels-metric",
        default="resolution",
        choices=METRICS,
        help="the metric whose verdict --labels is compared with (default: resolution)",
    )
    parser.add_argument("--title", help="the report's title (default: from the input file name)")
    parser.add_argument("--note", help="a line shown under the report's title (e.g. the data source to cite)")
    parser.add_argument(
        "--show-errors", type=int, default=20, metavar="N", help="print the first N rejected lines (default 20)"
    )
    parser.add_argument(
        "--progress",
        choices=("auto", "always", "never"),
        default="auto",
        help="progress bar on stderr (auto: only when stdout and stderr are terminals)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..replay.run import Progress, run_lines
    from ..replay.simulate import Reject
    from ..replay.sources import BadLineReport, LineSource, open_output

    err = sys.stderr
    inputs = _inputs(args)
    if isinstance(inputs, int):
        return inputs
    policies, until_ms, labels = inputs
    changes = _changes(args, policies[0])
    if isinstance(changes, int):
        return changes
    try:
        source = LineSource(args.events)
    except OSError as exc:
        print(f"error: cannot read {args.events}: {exc.strerror or exc}", file=err)
        return 1

    name = "<stdin>" if args.events == "-" else args.events
    report = BadLineReport(name, args.show_errors, err)

    def on_reject(r: Reject) -> None:
        report(r.line, f"rejected ({r.reason}): {r.detail}")

    show_progress = args.progress == "always" or (
        args.progress == "auto" and sys.stdout.isatty() and sys.stderr.isatty()
    )
    progress = Progress(err, source.progress) if show_progress else None
    out = open_output(args.out) if args.out else None
    try:
        with source:
            result = run_lines(
                source,
                changes,
                until_ms=until_ms,
                other_policy=policies[1] if len(policies) > 1 else None,
                out=out,
                on_reject=on_reject,
                progress=progress,
            )
    finally:
        if out is not None:
            out.close()
    report.finish("rejected lines (counted in the summary)")
    _results(args, result, labels, args.title or f"What-if replay of {Path(name).name}")
    return 0


def _inputs(args: argparse.Namespace) -> tuple[list[PolicySet], int | None, dict[str, bool] | None] | int:
    """The policies, ``--until`` and ``--labels``, or the exit code after saying what is wrong with them."""
    from ..core import PolicyError, parse_rfc3339_ms
    from ..policy_file import load_policy_file
    from ..replay.labels import load_labels

    err = sys.stderr
    policies = []
    for path in [args.policy, *([args.compare] if args.compare else [])]:
        try:
            policies.append(load_policy_file(path))
        except PolicyError as exc:
            for issue in exc.issues:
                print(f"error: {issue}", file=err)
            return 1
    until_ms = None
    if args.until:
        try:
            until_ms = parse_rfc3339_ms(args.until)
        except ValueError as exc:
            print(f"error: --until: {exc}", file=err)
            return 2
    labels = None
    if args.labels:
        try:
            labels = load_labels(args.labels)
        except (OSError, ValueError) as exc:
            print(f"error: --labels: {exc}", file=err)
            return 1
    return policies, until_ms, labels


def _changes(args: argparse.Namespace, base: PolicySet) -> PolicySet | PolicyVersions | int:
    """The policy with its ``--policy-change`` versions (or the exit code after saying what is wrong)."""
    if not args.policy_change:
        return base
    from ..core import PolicyError, parse_rfc3339_ms
    from ..core.versions import PolicyVersion, PolicyVersions
    from ..core.vocabulary import APPLIES_TO
    from ..policy_file import load_policy_file

    later = []
    for i, given in enumerate(args.policy_change, 1):
        applies_to, spec = APPLIES_TO[0], given
        for word in APPLIES_TO:
            if given.startswith(f"{word}:"):
                applies_to, spec = word, given[len(word) + 1 :]
        instant, sep, path = spec.partition("=")
        try:
            if not sep or not path:
                raise ValueError("expected INSTANT=FILE")
            at = parse_rfc3339_ms(instant)
        except ValueError as exc:
            print(f"error: --policy-change {given}: {exc}", file=sys.stderr)
            return 2
        try:
            later.append(PolicyVersion(load_policy_file(path), at, applies_to, i, None, path))
        except PolicyError as exc:
            for issue in exc.issues:
                print(f"error: {issue}", file=sys.stderr)
            return 1
    return PolicyVersions(PolicyVersion(base, label=args.policy), later)


def _results(args: argparse.Namespace, result: RunResult, labels: dict[str, bool] | None, title: str) -> None:
    """The summary (text or JSON) on stdout and, when asked for, the HTML report."""
    from pathlib import Path

    import orjson

    from ..replay.summary import agreement, compare, format_text

    summary = result.summary.to_dict()
    other = result.other.to_dict() if result.other is not None else None
    if result.other is not None:
        summary["comparison"] = compare(result.summary, result.other)
    if labels is not None:
        summary["agreement"] = agreement(result.summary, labels, args.labels_metric)
        if other is not None and result.other is not None:
            other["agreement"] = agreement(result.other, labels, args.labels_metric)
    if args.report:
        from ..replay.report import render_report

        html = render_report(
            result.summary, summary, other_summary=result.other, other=other, title=title, note=args.note
        )
        Path(args.report).write_text(html, encoding="utf-8")
    if args.json:
        doc = {**summary, "outputs_written": result.outputs_written}
        if other is not None:
            doc["compared"] = other
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    sys.stdout.write(format_text(summary, other))
    if args.out:
        print(f"\n{result.outputs_written:,} events written to {args.out}")
    if args.report:
        print(f"report written to {args.report}")
