"""The fake buyers' tests: the end-to-end ones start real routing workers."""

from __future__ import annotations

import pytest

from tests.buyers.fakes.fake_server import ManualClock
from tests.workers import routing_queue, start_worker  # noqa: F401 - fixtures


@pytest.fixture
def clock() -> ManualClock:
    """The clock a test hands a fake, to expire its ping ids without sleeping."""
    return ManualClock(1000.0)
