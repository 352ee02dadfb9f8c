"""Reading a policy file from disk (the only I/O around :func:`escalator.core.policy.load_policy_text`).

A file larger than :data:`MAX_POLICY_BYTES` is refused before it is read; the YAML bounds (nesting, "billion laughs"
alias bombs) are the core loader's own (:func:`escalator.core.policy.check_yaml_bounds`), so every YAML file the
project reads -- policies, the gateway's mappings, the relay's routing and directory -- gets them.
"""

from __future__ import annotations

from pathlib import Path

from .core.policy import (
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    PolicyError,
    PolicyIssue,
    PolicySet,
    check_yaml_bounds,
    load_policy_text,
)

__all__ = ["MAX_POLICY_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "check_yaml_bounds", "load_policy_file"]

#: Largest policy file read (the largest example is ~20 KB).
MAX_POLICY_BYTES = 1_000_000


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
    return load_policy_text(text, str(p))
