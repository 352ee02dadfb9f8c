"""What-if replay: the SLA core over recorded ticket history, in event time (issue #3).

* :func:`simulate` / :func:`simulate_lines` / :class:`Simulator` -- the event-time driver (the live service's oracle);
* :class:`Summary` -- compliance, breaches, escalations, notifications and incidents of a run;
* :mod:`.report` -- the self-contained HTML report (Jinja2 templates in templates/, SVG geometry in :mod:`.charts`);
* :mod:`.importers` -- real logs in, v1 events out.

Heavy or optional parts (report, importers) are imported on use.
"""

from .simulate import Reject, Simulator, emitted, simulate, simulate_lines
from .sources import LineSource
from .summary import Summary, agreement, compare, format_text

__all__ = [
    "LineSource",
    "Reject",
    "Simulator",
    "Summary",
    "agreement",
    "compare",
    "emitted",
    "format_text",
    "simulate",
    "simulate_lines",
]
