"""Convert a real ticket log to v1 ticket events (JSON Lines), ready for ``escalator simulate``.

``escalator import servicenow FILE.csv[.gz]`` (ServiceNow incident event log) and ``escalator import helpdesk
FILE.csv[.gz]`` (help-desk activity log). Events go to stdout or ``-o FILE`` (``.gz`` compresses), in time order by
default. Bad rows are reported on stderr with their line number and counted; they never abort the import.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["register", "run"]


def register(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="import_format", metavar="FORMAT", required=True)
    for name, help_text in (
        ("servicenow", "ServiceNow incident event log (snapshot rows, one per update)"),
        ("helpdesk", "help-desk activity log (Case ID, Activity, Resource, Complete Timestamp, ...)"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("file", metavar="FILE.csv[.gz]", help="the log (- for stdin)")
        p.add_argument("-o", "--output", metavar="OUT", help="write the events here (default stdout; .gz compresses)")
        p.add_argument(
            "--order",
            choices=("time", "input"),
            default="time",
            help="time: sort all events by time (external merge sort, bounded memory); input: per ticket, as read",
        )
        p.add_argument(
            "--chunk",
            type=int,
            default=100_000,
            metavar="N",
            help="events held in memory before spilling a sorted chunk to a temporary file (default 100000)",
        )
        p.add_argument("--timezone", default="UTC", help="time zone of the log's timestamps (default UTC)")
        p.add_argument(
            "--show-errors", type=int, default=20, metavar="N", help="print the first N bad rows (default 20)"
        )
        if name == "servicenow":
            p.add_argument(
                "--labels",
                metavar="FILE.csv",
                help="also write ServiceNow's own per-incident SLA verdict (ticket_id, priority, made_sla) for "
                "'escalator simulate --labels'",
            )


def run(args: argparse.Namespace) -> int:
    import time
    from typing import BinaryIO, TextIO
    from zoneinfo import ZoneInfoNotFoundError

    import orjson

    from ..replay.importers.common import BadRow, EventWriter, LocalTime
    from ..replay.sources import BadLineReport, open_output

    err = sys.stderr
    try:
        LocalTime(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"error: unknown time zone {args.timezone!r}", file=err)
        return 2
    name = "<stdin>" if args.file == "-" else args.file
    report = BadLineReport(name, args.show_errors, err)

    def on_bad(b: BadRow) -> None:
        report(b.line, f"skipped: {b.reason}")

    out: BinaryIO = sys.stdout.buffer if args.output is None or args.output == "-" else open_output(args.output)
    labels: TextIO | None = None
    started = time.perf_counter()
    try:
        writer = EventWriter(out, order=args.order, chunk=args.chunk)
        if args.import_format == "servicenow":
            from ..replay.importers.servicenow import import_servicenow

            if args.labels:
                labels = open(args.labels, "w", encoding="utf-8", newline="")  # noqa: SIM115 -- closed below
            stats = import_servicenow(args.file, writer, timezone=args.timezone, on_bad=on_bad, labels=labels)
        else:
            from ..replay.importers.helpdesk import import_helpdesk

            stats = import_helpdesk(args.file, writer, timezone=args.timezone, on_bad=on_bad)
        writer.close()
    except FileNotFoundError as exc:
        print(f"error: {exc.filename}: file not found", file=err)
        return 1
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        print(f"error: {exc}", file=err)
        return 1
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        if labels is not None:
            labels.close()
    report.finish("bad rows")
    seconds = time.perf_counter() - started
    print(
        f"{name}: {stats.rows:,} rows, {stats.tickets:,} tickets -> {stats.events:,} events"
        f" ({stats.bad_rows:,} bad rows skipped) in {seconds:.1f}s",
        file=err,
    )
    print(orjson.dumps(stats.to_dict()).decode(), file=err)
    return 0
