"""The whole local stack for the end-to-end tests, started once for this package.

Two detector processes in one consumer group, so every scenario also shows that the
group splits the work without losing or doubling a transaction.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.devstack_helpers import start_test_stack
from tools.devstack import DevStack


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    running = start_test_stack(tmp_path_factory.mktemp("devstack"), detectors=2)
    print(running.ready_line())
    try:
        print(f"pipeline warm after {running.warm_up():.1f} s")
    except BaseException:
        running.stop()
        raise
    yield running
    running.stop()
