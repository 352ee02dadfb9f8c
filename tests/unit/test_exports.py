"""``__all__`` drift (as httpx checks its own): every module of the package says what it exports, exports only
names it has, and every public class or function it defines is exported -- so a new public name cannot slip in
unannounced, and a renamed one cannot leave a stale entry behind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import escalator

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(escalator.__path__, "escalator.")
    if not m.name.endswith("__main__") and "__mypyc" not in m.name
)


def test_the_walk_finds_the_package() -> None:
    assert {"escalator.core.engine", "escalator.stream.runtime", "escalator.service.app"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_exactly_the_public_names_defined_here(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(module, n)]
    assert missing == [], f"{name}.__all__ names what the module does not have: {missing}"
    defined_here = [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(obj) or inspect.isfunction(obj) or type(obj).__name__ == "builtin_function_or_method")
        and getattr(obj, "__module__", None) == name
    ]
    unlisted = sorted(set(defined_here) - set(exported))
    assert unlisted == [], f"{name} defines public {unlisted} without listing them in __all__ (or make them _private)"
