"""A lead's routing run: eligibility, parallel pings, selection, cap reservation, posts with
fallback, and settlement. Synchronous ORM code; the HTTP goes through outbound.http in parallel.

The run claims the lead with a conditional update (accepted -> routing), so of two deliveries of
the same task only one routes. Every ping and post is an Attempt row; the eligibility
explanation is kept on the Auction. A post is made only under a held cap reservation, and a sale
is a row the database allows once per lead and buyer.

The modules follow a run (route.py drives it, run.py is what it carries): claim.py,
eligibility.py, pings.py, selection.py, posts.py (with mapping.py for what is sent) and
settlement.py. store.py holds the run's writes, each PostgreSQL statement beside its ORM twin;
no other module asks which database it is on.
"""

from __future__ import annotations

from routing.engine.claim import DATABASE_LOST_NOTE, INTERRUPTED_NOTE, MAX_INTERRUPTED_RUNS
from routing.engine.posts import POST_DEADLINE_S, POST_RETRIES
from routing.engine.route import DATABASE_LOST, RUN_BUDGET_S, RunLostDatabase, lead_route

__all__ = [
    "DATABASE_LOST",
    "DATABASE_LOST_NOTE",
    "INTERRUPTED_NOTE",
    "MAX_INTERRUPTED_RUNS",
    "POST_DEADLINE_S",
    "POST_RETRIES",
    "RUN_BUDGET_S",
    "RunLostDatabase",
    "lead_route",
]
