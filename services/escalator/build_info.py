"""Which build of the core runs: the compiled one (C extensions built by mypyc at install time, see setup.py) or
the plain Python modules -- the same program either way (the tests run against both).

``ESCALATOR_PURE_PYTHON=1`` in the environment makes this process load the plain modules even where compiled ones
are installed (the differential tests use it; so can anyone chasing a difference). It is read once, when
``escalator`` is first imported, by :func:`install_pure_python_switch`.

A compiled build is used only while it matches its sources: the build writes the sha256 of every source it compiled
(``core/_compiled_sources.json``); when a source differs (edited or pulled without ``make setup``), or the record is
missing, the plain modules run instead -- never a stale program -- and :func:`core_build` says why.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

__all__ = [
    "COMPILED_MODULES",
    "PURE_PYTHON_ENV",
    "SOURCES_FILE",
    "core_build",
    "install_pure_python_switch",
    "stale_sources",
]

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
    "escalator.core.versions",
    "escalator.core.timeline",
    "escalator.core.events",
    "escalator.core.outputs",
    "escalator.replay.simulate",
)
_HERE = Path(__file__).resolve().parent
#: The build's record of the sources it compiled (written by setup.py beside the extensions).
SOURCES_FILE = "_compiled_sources.json"
_stale: list[str] = []


class _PlainModules(importlib.abc.MetaPathFinder):
    """Finds the compiled modules' ``.py`` sources ahead of their extension modules."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED_MODULES:
            return None
        source = _HERE.joinpath(*fullname.split(".")[1:]).with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, source)


def stale_sources(core_dir: Path | None = None) -> list[str]:
    """The compiled modules whose source no longer matches what was compiled (all of them when the build left no
    record); empty when no compiled module is installed."""
    core = core_dir or _HERE / "core"
    if not any(core.glob("engine.*.so")) and not any(core.glob("engine.*.pyd")):
        return []
    try:
        recorded = json.loads((core / SOURCES_FILE).read_text())
    except (OSError, ValueError):
        recorded = {}
    stale = []
    for name in COMPILED_MODULES:
        source = core.parent.joinpath(*name.split(".")[1:]).with_suffix(".py")
        key = "services/" + name.replace(".", "/") + ".py"
        try:
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError:
            continue  # an install without sources: nothing to compare
        if recorded.get(key) != digest:
            stale.append(name)
    return stale


def install_pure_python_switch() -> None:
    if any(isinstance(f, _PlainModules) for f in sys.meta_path):
        return
    if os.environ.get(PURE_PYTHON_ENV) != "1":
        _stale[:] = stale_sources()
        if not _stale:
            return
    sys.meta_path.insert(0, _PlainModules())


def core_build() -> str:
    """``compiled`` or ``pure-python``: what ``escalator.core`` runs in this process."""
    from .core import engine

    if not (engine.__file__ or "").endswith(".py"):
        return "compiled"
    if _stale:
        names = ", ".join(n.rsplit(".", 1)[1] for n in _stale[:3]) + (", ..." if len(_stale) > 3 else "")
        return f"pure-python (the compiled core does not match its sources: {names}; run make setup)"
    return "pure-python"
