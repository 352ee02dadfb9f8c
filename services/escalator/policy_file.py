"""Reading a policy file from disk (the only I/O around :func:`escalator.core.policy.load_policy_text`).

Before the text reaches the core's YAML loader it is bounded here: a file larger than :data:`MAX_POLICY_BYTES`, YAML
nested deeper than :data:`MAX_YAML_DEPTH`, or a document whose aliases would expand to more than
:data:`MAX_YAML_NODES` nodes (a "billion laughs" bomb) is refused with a :class:`PolicyError`. The check walks the
parser's event stream once (no recursion, no expansion), so it is linear in the file's size whatever the file holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .core.policy import PolicyError, PolicyIssue, PolicySet, load_policy_text

__all__ = ["MAX_POLICY_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "check_yaml_bounds", "load_policy_file"]

#: Largest policy file read (the largest example is ~20 KB).
MAX_POLICY_BYTES = 1_000_000
#: Deepest nesting of mappings and sequences (the policy language needs fewer than 10 levels).
MAX_YAML_DEPTH = 64
#: Most nodes the document may have once every alias is expanded.
MAX_YAML_NODES = 200_000


def _refuse(filename: str, mark: Any, message: str) -> PolicyError:
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return PolicyError([PolicyIssue(filename, line, column, "", message)])


def check_yaml_bounds(text: str, filename: str = "<policy>") -> None:
    """Refuse YAML that is too deep or expands (through anchors and aliases) to too many nodes. Syntax errors are
    left to the loader, which words them with their line."""
    sizes: dict[str, int] = {}  # anchor -> expanded node count of the anchored node
    anchors: list[str | None] = []  # the open collections' anchors ...
    counts: list[int] = []  # ... and expanded node counts so far
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if len(counts) >= MAX_YAML_DEPTH:
                    raise _refuse(filename, event.start_mark, f"nested deeper than {MAX_YAML_DEPTH} levels")
                anchors.append(event.anchor)
                counts.append(1)
                continue
            if isinstance(event, yaml.AliasEvent):
                size = sizes.get(str(event.anchor), 1)
            elif isinstance(event, yaml.ScalarEvent):
                size = 1
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)) and counts:
                anchor, size = anchors.pop(), counts.pop()
                if anchor is not None:
                    sizes[anchor] = size
            else:
                continue
            if counts:
                counts[-1] += size
                size = counts[-1]
            if size > MAX_YAML_NODES:
                raise _refuse(
                    filename, event.start_mark, f"more than {MAX_YAML_NODES} YAML nodes once aliases are expanded"
                )
    except yaml.reader.ReaderError as exc:  # raised where the core's loader does not catch it (constructing it)
        raise PolicyError([PolicyIssue(filename, None, None, "", f"not a YAML text: {exc}")]) from None
    except yaml.YAMLError:
        return  # the loader reports it, with its line and column


def load_policy_file(path: str | Path) -> PolicySet:
    """Load and validate a policy file; raises :class:`PolicyError` naming the file, line and field."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_POLICY_BYTES:
            raise PolicyError([PolicyIssue(str(p), None, None, "", f"{size} bytes: larger than {MAX_POLICY_BYTES}")])
        with p.open("rb") as f:
            raw = f.read(MAX_POLICY_BYTES + 1)  # the file may have grown since stat()
        if len(raw) > MAX_POLICY_BYTES:
            raise PolicyError([PolicyIssue(str(p), None, None, "", f"larger than {MAX_POLICY_BYTES} bytes")])
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise PolicyError([PolicyIssue(str(p), None, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([PolicyIssue(str(p), None, None, "", f"cannot read the file: {exc}")]) from None
    check_yaml_bounds(text, str(p))
    try:
        return load_policy_text(text, str(p))
    except RecursionError:  # belt and braces: the bounds above keep the core's recursive YAML walk shallow
        raise PolicyError([PolicyIssue(str(p), None, None, "", "too deeply nested")]) from None
