"""Team contracts are routed like any other: routing's in-process tasks, market and simulator,
and the demo's partner for leads submitted through the API."""

from __future__ import annotations

from tests.leads.conftest import demo, partner  # noqa: F401
from tests.routing.conftest import (  # noqa: F401
    _routing_runs_in_process,
    market,
    simulator,
)
