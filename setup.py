"""Build script: compiles the pure core to C extensions with mypyc when it can, and installs the plain Python
modules when it cannot (no C compiler, no Python headers, ESCALATOR_PURE_PYTHON_BUILD=1). Everything else about
the package is in pyproject.toml.

The compiled modules are byte-for-byte the same program: the core is ``mypy --strict`` clean, and the tests run
against both builds (``make test``; ``ESCALATOR_PURE_PYTHON=1`` selects the plain modules at run time).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

# The hot, pure modules of the core (no pydantic models in them; those stay interpreted).
COMPILED = [
    "services/escalator/core/timefmt.py",
    "services/escalator/core/durations.py",
    "services/escalator/core/calendar.py",
    "services/escalator/core/vocabulary.py",
    "services/escalator/core/plan.py",  # the policy's runtime form (its pydantic specs: policy.py, interpreted)
    "services/escalator/core/state.py",
    "services/escalator/core/clocks.py",
    "services/escalator/core/messages.py",
    "services/escalator/core/escalations.py",
    "services/escalator/core/engine.py",
    "services/escalator/core/incidents.py",
    "services/escalator/core/versions.py",  # policy versions in time: wraps apply/advance per event
    "services/escalator/core/timeline.py",  # the worker records every event and output in it
    "services/escalator/core/events.py",  # the decoder (its pydantic models live in envelopes.py, interpreted)
    "services/escalator/core/outputs.py",  # the commands and output builders (models: output_models.py)
    "services/escalator/replay/simulate.py",  # the event-time driver of replays: the deadline heap around the core
]


#: Written beside the compiled modules: the sha256 of each source they were compiled from (see build_info.py).
SOURCES_FILE = "_compiled_sources.json"


class OptionalBuildExt(build_ext):
    """A failed compilation leaves the plain Python modules in place instead of failing the install."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers: the interpreted core works the same
            print(f"escalator: the compiled core was not built ({exc}); using the pure-Python core", file=sys.stderr)
            return
        if self.extensions:
            self._record_sources()

    def _record_sources(self) -> None:
        """Write the digest of each compiled module's source beside the extensions: at run time a compiled module
        whose source has changed since (an edit or a pull without a rebuild) is not used (escalator.build_info)."""
        target = Path(self.get_ext_fullpath("escalator.core.engine")).parent
        digests = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest() for path in COMPILED}
        target.mkdir(parents=True, exist_ok=True)
        (target / SOURCES_FILE).write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)  # type: ignore[arg-type]
        except Exception as exc:
            print(f"escalator: could not compile {getattr(ext, 'name', ext)} ({exc})", file=sys.stderr)


def extensions() -> list[object]:
    if os.environ.get("ESCALATOR_PURE_PYTHON_BUILD") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("escalator: mypyc is not available; using the pure-Python core", file=sys.stderr)
        return []
    try:
        return list(mypycify(COMPILED, opt_level="3", debug_level="0", target_dir="build/mypyc"))
    except BaseException as exc:  # mypyc stops with SystemExit on a type error: the plain core still works
        print(f"escalator: mypyc could not compile the core ({exc!r}); using the pure-Python core", file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
