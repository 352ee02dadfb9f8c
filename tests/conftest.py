"""Fixtures shared by the unit and the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from escalator.broker import tansu_compat


@pytest.fixture(autouse=True, scope="session")
def _shared_empties_stay_empty() -> Iterator[None]:
    """New ticket states share four empty containers (the engine replaces a state's fields, trigger counts and
    escalation records, never changes them, and gives a state its own agreements dict before adding an instance):
    a change to one anywhere in the suite would show in every state."""
    from escalator.core import state

    yield
    assert state.NO_FIELDS == {} and state.NO_FIRES == {} and state.NO_ESCALATIONS == []
    assert state.NO_AGREEMENTS == {}


@pytest.fixture
def compat_off() -> Iterator[None]:
    """Run the test without the workarounds in this process, restoring the previous state afterwards."""
    before = tansu_compat.installed()
    tansu_compat.uninstall()
    try:
        yield
    finally:
        tansu_compat.uninstall()
        if before:
            tansu_compat.install(only=before)
