"""Celery adapters for routing: the routing run of a lead, the sweeper of lost runs, and the
notifications for ops."""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import shared_task
from celery.exceptions import Retry
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Exists, OuterRef
from django.utils import timezone

from config.locks import run_alone
from leads.models import Lead, LeadStatus
from leads.services import routing_enqueue
from outbound.rules import backoff
from routing import notifications
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
def sweep_stuck_leads() -> int:
    """Hand runs whose worker was lost (SIGKILL, OOM, a dead host) to a live worker."""
    with run_alone("sweep_stuck_leads") as alone:
        if not alone:
            return 0
        ids = leads_stuck_in_routing()
        count = routing_enqueue(ids) if ids else 0
    if count:
        logger.warning("resuming routing runs whose worker was lost", extra={"count": count})
        notifications.leads_stuck(lead_ids=ids)
    return count


# --- Notifications for ops (routing/notifications.py) -------------------------------------------

# Retries wait up to 10, 20, 40, 80 and 160 s (a random point in the upper half of each), never
# longer than this: well below the broker's visibility timeout (600 s), past which Redis would
# hand a retry still waiting in one worker to a second one.
NOTIFY_BACKOFF_CAP_S = 300


@shared_task(name="routing.tasks.dispatch_notification")
def dispatch_notification(kind: str, params: dict) -> int:
    """Tell every subscription that wants it of an event a part of the platform reported."""
    return len(notifications.notification_dispatch(kind=kind, params=params))


@shared_task(
    name="routing.tasks.send_notification",
    bind=True,
    max_retries=notifications.MAX_ATTEMPTS,
)
def send_notification(self, delivery_id: int) -> str | Retry:
    """Send one recorded notification (Slack or e-mail); retry transient failures."""
    outcome = notifications.delivery_send(delivery_id=delivery_id)
    return outcome if outcome != "retry" else _notify_again_later(self)


def _notify_again_later(task) -> Retry:
    """Retry a message send with exponential backoff and jitter (half fixed, half random)."""
    countdown = backoff(task.request.retries + 1, base_s=10, cap_s=NOTIFY_BACKOFF_CAP_S)
    if task.request.is_eager:
        # In-process (no broker) the retries run at once; a raised Retry would escape through
        # on_commit into whatever reported the event.
        return task.retry(countdown=countdown, throw=False)
    raise task.retry(countdown=countdown)


@shared_task(name="routing.tasks.notify_source_rates")
def notify_source_rates() -> int:
    """Tell subscribers of sources whose error or duplicate rate reached their threshold."""
    with run_alone("notify_source_rates") as alone:
        if not alone:
            return 0
        return notifications.source_rates_check()


@shared_task(name="routing.tasks.sweep_notifications")
def sweep_notifications() -> dict[str, int]:
    """Tell repeats held back by closed windows; queue deliveries whose task was lost."""
    with run_alone("sweep_notifications") as alone:
        if not alone:
            return {}
        return notifications.notifications_sweep()
