"""Celery adapters for routing: the routing run of a lead and the sweeper of lost runs. (The ops
notifications' tasks, registered under routing.tasks names, live in notifications.tasks.)"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.locks import one_at_a_time
from leads.models import Lead, LeadStatus
from leads.services import routing_enqueue
from notifications import events as notify
from routing.models import Auction, AuctionStatus

logger = logging.getLogger(__name__)


# A run that lost its database is retried this often, backing off to at most 30 s between tries
# (well below the broker's visibility timeout); after that the sweeper resumes it once stale.
DATABASE_RETRIES = 10
ROUTE_BACKOFF_CAP_S = 30.0


@shared_task(name="routing.tasks.route_lead", bind=True)
def route_lead(self, lead_id: str, lost_run: int | None = None) -> str:
    """Route one lead; a second delivery of the same lead finds it claimed and does nothing."""
    from routing.engine import DATABASE_LOST, RunLostDatabase, lead_route

    if not connection.in_atomic_block:
        # Connections are reused across tasks (CELERY_DB_REUSE_MAX): drop one that broke (a
        # restarted database) or outlived CONN_MAX_AGE before it fails this run. A run inside
        # its caller's transaction (in-process tasks) uses a connection not ours to close.
        close_old_connections()
    try:
        return lead_route(lead_id=lead_id, lost_run=lost_run)
    except (RunLostDatabase, *DATABASE_LOST) as error:
        if isinstance(error, RunLostDatabase):
            lost_run = error.auction_id
        countdown = min(ROUTE_BACKOFF_CAP_S, 2.0**self.request.retries) * random.uniform(0.5, 1.0)  # noqa: S311
        raise self.retry(
            kwargs={"lead_id": lead_id, "lost_run": lost_run},
            countdown=countdown,
            max_retries=DATABASE_RETRIES,
        ) from error
    except Exception:
        # A bug inside a run fails that run only: the lead stays where the run left it, and the
        # sweepers take it up again (a waiting lead is enqueued anew; a run lost half-way is
        # resumed and counted, so a lead that always fails ends failed after MAX_INTERRUPTED_RUNS).
        # Handled here rather than by Celery so that whoever enqueued an in-process run (the
        # embedded default: a partner's POST) gets the answer it gets with a broker, whatever
        # Celery's own setting for in-process errors says.
        logger.exception(
            "routing run failed; the lead is left for the sweepers", extra={"lead_id": lead_id}
        )
        return "failed"


def leads_stuck_in_routing(*, limit: int = 500) -> list:
    """Leads in routing whose run started longer ago than a live run can last."""
    cutoff = timezone.now() - timedelta(seconds=settings.ROUTING_STALE_SECONDS)
    live = Auction.objects.filter(
        lead=OuterRef("pk"), status=AuctionStatus.RUNNING, started_at__gte=cutoff
    )
    return list(
        Lead.objects.filter(status=LeadStatus.ROUTING, updated_at__lt=cutoff)
        .exclude(Exists(live))
        .order_by("updated_at")
        .values_list("id", flat=True)[:limit]
    )


@shared_task(name="routing.tasks.sweep_stuck_leads")
@one_at_a_time(skipped=0)
def sweep_stuck_leads() -> int:
    """Hand runs whose worker was lost (SIGKILL, OOM, a dead host) to a live worker."""
    ids = leads_stuck_in_routing()
    count = routing_enqueue(ids) if ids else 0
    if count:
        logger.warning("resuming routing runs whose worker was lost", extra={"count": count})
        notify.leads_stuck(lead_ids=ids)
    return count
