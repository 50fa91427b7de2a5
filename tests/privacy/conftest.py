"""Masking is probed on leads routed to simulated buyers: routing's fixtures (a market; the
routing runs in process where a test asks for eager_celery)."""

from __future__ import annotations

from tests.routing.conftest import (  # noqa: F401
    market,
    simulator,
    start_simulator,
)
