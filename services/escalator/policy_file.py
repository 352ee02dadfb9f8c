"""Reading a policy file from disk (the only I/O around :func:`escalator.core.policy.load_policy_text`)."""

from __future__ import annotations

from pathlib import Path

from .core.policy import PolicyError, PolicyIssue, PolicySet, load_policy_text

__all__ = ["load_policy_file"]


def load_policy_file(path: str | Path) -> PolicySet:
    """Load and validate a policy file; raises :class:`PolicyError` naming the file, line and field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError([PolicyIssue(str(p), None, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([PolicyIssue(str(p), None, None, "", f"cannot read the file: {exc}")]) from None
    return load_policy_text(text, str(p))
