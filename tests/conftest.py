"""Fixtures shared by the unit and the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from escalator.broker import tansu_compat


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
