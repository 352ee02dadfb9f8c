"""The compiled core and the plain one are the same program: the build compiles the modules it says it does, the
pure-Python switch really loads the plain modules, and both give byte-identical outputs on the shipped samples."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from escalator.build_info import COMPILED_MODULES, PURE_PYTHON_ENV

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def test_setup_compiles_exactly_the_modules_build_info_names() -> None:
    tree = ast.parse((ROOT / "setup.py").read_text())
    listed = next(
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "COMPILED" for t in node.targets)
    )
    assert isinstance(listed, ast.List)
    paths = [ast.literal_eval(e) for e in listed.elts]
    assert tuple(p.removeprefix("services/").removesuffix(".py").replace("/", ".") for p in paths) == COMPILED_MODULES


def _run(code: str, pure: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != PURE_PYTHON_ENV}
    if pure:
        env[PURE_PYTHON_ENV] = "1"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=ROOT, timeout=300
    )
    return done.stdout


def test_the_switch_loads_the_plain_modules() -> None:
    code = (
        "from escalator.build_info import core_build; import escalator.core.engine as e; "
        "print(core_build(), e.__file__, sep='|')"
    )
    build, path = _run(code, pure=True).strip().split("|")
    assert build == "pure-python" and path.endswith("engine.py")
    build, _path = _run(code, pure=False).strip().split("|")
    compiled_installed = any((ROOT / "services" / "escalator" / "core").glob("engine.*.so"))
    assert build == ("compiled" if compiled_installed else "pure-python")


SIMULATE_SAMPLE = f"""
import hashlib, sys
from escalator.core import encode_event
from escalator.policy_file import load_policy_file
from escalator.replay.simulate import emitted, simulate_lines
from escalator.synth import lifecycle_events
import orjson
digest = hashlib.sha256()
policy = load_policy_file({str(DATA / "servicenow-policy-strict.yaml")!r})
lines = enumerate(open({str(DATA / "servicenow_sample.events.jsonl")!r}, "rb"), 1)
for e in emitted(simulate_lines(lines, policy)):
    digest.update(encode_event(e.event))
example = load_policy_file({str(ROOT / "examples" / "policy.yaml")!r})
synth = [(i, orjson.dumps(d)) for i, d in enumerate(lifecycle_events(600, seed=3), 1)]
for e in emitted(simulate_lines(synth, example)):
    digest.update(encode_event(e.event))
print(digest.hexdigest())
"""


def test_compiled_and_plain_core_emit_the_same_bytes() -> None:
    assert _run(SIMULATE_SAMPLE, pure=True) == _run(SIMULATE_SAMPLE, pure=False)


def test_ci_builds_the_compiled_core() -> None:
    """On CI (a machine with a C compiler) the install must have compiled the core: a type error that mypyc rejects
    makes setup.py fall back to the plain modules quietly, and only this test notices."""
    import shutil

    from escalator import build_info
    from escalator.build_info import COMPILED_MODULES, PURE_PYTHON_ENV, core_build, stale_sources

    if os.environ.get("CI") != "true" or shutil.which("gcc") is None:
        pytest.skip("only on CI: a developer machine may have installed the plain core on purpose")
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        # the plain pass of `make test` runs the plain modules on purpose: the build must still be there and current
        package = Path(build_info.__file__).parent
        core = package / "core"
        missing = [m for m in COMPILED_MODULES if not any(package.glob(m.split(".", 1)[1].replace(".", "/") + ".*.so"))]
        assert missing == [], f"mypyc did not compile {missing}: run `pip install -v -e .` to see why"
        assert stale_sources(core) == []
        return
    assert core_build() == "compiled", "mypyc did not compile the core: run `pip install -v -e .` to see why"


def test_a_compiled_core_is_used_only_while_it_matches_its_sources(tmp_path: Path) -> None:
    """An edit or a pull without a rebuild must not run the old program: a source that differs from the build's
    record (or no record) makes the plain modules run, and core_build says why."""
    import hashlib
    import json

    from escalator.build_info import SOURCES_FILE, stale_sources

    pkg = tmp_path / "escalator"
    core = pkg / "core"
    core.mkdir(parents=True)
    record = {}
    for name in COMPILED_MODULES:
        source = pkg.joinpath(*name.split(".")[1:]).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {name}\n")
        record["services/" + name.replace(".", "/") + ".py"] = hashlib.sha256(source.read_bytes()).hexdigest()
    assert stale_sources(core) == []  # no compiled module: nothing to check
    (core / "engine.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    assert stale_sources(core) == list(COMPILED_MODULES)  # compiled, but no record of what from
    (core / SOURCES_FILE).write_text(json.dumps(record))
    assert stale_sources(core) == []
    (core / "calendar.py").write_text("# edited\n")
    assert stale_sources(core) == ["escalator.core.calendar"]


def test_the_installed_compiled_core_matches_its_sources() -> None:
    """The development install: if a compiled core is there, it was built from these sources (else make setup)."""
    from escalator.build_info import stale_sources

    assert stale_sources() == [], "run make setup: the compiled core was built from other sources"
