"""Which build of the core runs: the compiled one (C extensions built by mypyc at install time, see setup.py) or
the plain Python modules -- the same program either way (the tests run against both).

``ESCALATOR_PURE_PYTHON=1`` in the environment makes this process load the plain modules even where compiled ones
are installed (the differential tests use it; so can anyone chasing a difference). It is read once, when
``escalator`` is first imported, by :func:`install_pure_python_switch`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = ["COMPILED_MODULES", "PURE_PYTHON_ENV", "core_build", "install_pure_python_switch"]

PURE_PYTHON_ENV = "ESCALATOR_PURE_PYTHON"
#: The modules setup.py compiles (keep the two lists in step: a test checks it).
COMPILED_MODULES = (
    "escalator.core.timefmt",
    "escalator.core.durations",
    "escalator.core.calendar",
    "escalator.core.vocabulary",
    "escalator.core.plan",
    "escalator.core.state",
    "escalator.core.clocks",
    "escalator.core.messages",
    "escalator.core.escalations",
    "escalator.core.engine",
    "escalator.core.incidents",
    "escalator.core.events",
    "escalator.core.outputs",
)
_HERE = Path(__file__).resolve().parent


class _PlainModules(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extension modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        source = _HERE.joinpath(*fullname.split(".")[1:]).with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, source)


def install_pure_python_switch() -> None:
    if os.environ.get(PURE_PYTHON_ENV) == "1" and not any(isinstance(f, _PlainModules) for f in sys.meta_path):
        sys.meta_path.insert(0, _PlainModules())


def core_build() -> str:
    """``compiled`` or ``pure-python``: what ``escalator.core`` runs in this process."""
    from .core import engine

    return "pure-python" if (engine.__file__ or "").endswith(".py") else "compiled"
