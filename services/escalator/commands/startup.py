"""What every long-running command does before it starts: build the one Settings object from the environment and
the command line, load its files, and say exactly what is wrong (exit code 2) instead of starting half-configured."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["StartupError", "file_or_fail", "needs_broker", "settings_or_fail"]

T = TypeVar("T")


class StartupError(Exception):
    """A command cannot start; what to say has been said (on stderr). ``code`` is the exit code."""

    def __init__(self, code: int = 2) -> None:
        super().__init__(code)
        self.code = code


def settings_or_fail(overrides: Mapping[str, Any], **forced: Any) -> Settings:
    """Settings from the environment, with the command line's options that were given (``None``: not given)."""
    from pydantic import ValidationError

    from ..settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None}, **forced)
    except ValidationError as exc:
        print(f"error: invalid settings:\n{exc}", file=sys.stderr)
        raise StartupError from None


def file_or_fail(load: Callable[[], T], errors: type[Exception], refusal: str) -> T:
    """``load()``, or every issue of the file it raises (``errors`` carry ``.issues``, each with file:line:field)
    and ``refusal`` (e.g. "the worker does not start with an invalid policy file")."""
    try:
        return load()
    except errors as exc:
        for issue in getattr(exc, "issues", [exc]):
            print(f"error: {issue}", file=sys.stderr)
        print(f"error: {refusal}", file=sys.stderr)
        raise StartupError from None


def needs_broker(settings: Settings) -> None:
    from ..settings import NO_BROKER

    if settings.bootstrap_servers is None:
        print(f"error: {NO_BROKER}", file=sys.stderr)
        raise StartupError
