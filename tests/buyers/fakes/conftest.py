"""The fake buyers' tests: the end-to-end ones start real routing workers."""

from __future__ import annotations

from tests.workers import routing_queue, start_worker  # noqa: F401 - fixtures
