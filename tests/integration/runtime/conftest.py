"""A sandbox per test module (module scope), with no background threads: tests run schedules and queues."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sandbox.runtime import Sandbox


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox(background=False, visibility=1)
    sandbox.start()
    try:
        yield sandbox
    finally:
        sandbox.stop()
