"""The guard's end-to-end tests route leads: routing's fixtures (a market of simulated buyers)."""

from __future__ import annotations

from tests.routing.conftest import (  # noqa: F401
    _routing_runs_in_process,
    market,
    simulator,
    start_simulator,
)
