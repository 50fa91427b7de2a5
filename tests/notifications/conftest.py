"""Fixtures for notifications: events come from their real causes, so these are routing's
(a vertical, its source and buyers on the simulator, tasks in process) and the demo partner."""

from __future__ import annotations

from tests.routing.conftest import (  # noqa: F401
    _routing_runs_in_process,
    buyer_contract,
    demo,
    market,
    partner,
    simulator,
    start_simulator,
)
