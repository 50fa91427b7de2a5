"""Celery adapters for intake: the waiting-lead sweeper, postbacks, idempotency and raw-body
purges."""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import timedelta

import requests
from celery import shared_task
from celery.exceptions import Retry
from django.conf import settings

from config.locks import run_alone
from leads.models import FINAL_STATUSES, Lead, Postback, PostbackStatus
from leads.privacy import raw_bodies_purge
from leads.services import (
    idempotency_records_purge,
    leads_missing_postbacks,
    leads_sweep_waiting,
    postback_enqueue,
)
from routing import notifications
from routing.netguard import ForbiddenAddressError, check_resolved

logger = logging.getLogger(__name__)
POSTBACK_MAX_ATTEMPTS = 6
POSTBACK_TIMEOUT = (2, 5)
# The longest wait before a postback's retry. A retry waits in its worker unacknowledged: it
# must be due before the broker's visibility timeout, or Redis hands it to a second worker.
POSTBACK_BACKOFF_CAP_S = 300
_session = requests.Session()


@shared_task(name="leads.tasks.sweep_waiting_leads")
def sweep_waiting_leads() -> int:
    """Re-enqueue accepted leads no routing run picked up (broker down at intake, lost task)."""
    # Runs every 15 s; never two at once (a slow run must not double every enqueue).
    with run_alone("sweep_waiting_leads") as alone:
        if not alone:
            return 0
        count = leads_sweep_waiting(
            older_than=timedelta(seconds=settings.ROUTING_SWEEP_AFTER_SECONDS)
        )
    if count:
        logger.info("re-enqueued waiting leads", extra={"count": count})
    return count


@shared_task(name="leads.tasks.sweep_missing_postbacks")
def sweep_missing_postbacks() -> int:
    """Queue the postbacks that never got queued (the broker was down when the lead settled)."""
    with run_alone("sweep_missing_postbacks") as alone:
        if not alone:
            return 0
        sent = sum(postback_enqueue(lead_id) for lead_id in leads_missing_postbacks())
    if sent:
        logger.info("queued missing postbacks", extra={"count": sent})
    return sent


@shared_task(name="leads.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return idempotency_records_purge()


@shared_task(name="leads.tasks.purge_raw_bodies")
def purge_raw_bodies() -> int:
    """Empty the raw bodies of leads older than RAW_BODY_RETENTION_DAYS (0: keep them forever)."""
    days = settings.RAW_BODY_RETENTION_DAYS
    if not days:
        return 0
    # Daily, and bounded per run; never two at once (a backlog takes a few runs, not a race).
    with run_alone("purge_raw_bodies") as alone:
        if not alone:
            return 0
        count = raw_bodies_purge(older_than=timedelta(days=days))
    logger.info("purged raw bodies past retention", extra={"count": count, "days": days})
    return count


def postback_payload(lead: Lead) -> dict:
    return {
        "id": str(lead.pk),
        "status": "rejected" if lead.status == "suppressed" else lead.status,
        "test": lead.is_test,
        "sub_id": lead.sub_id,
        "vertical": lead.vertical.slug if lead.vertical_id else None,
        "received_at": lead.received_at.isoformat(),
        "price": str(lead.sale_price) if lead.sale_price is not None else None,
        "payout": str(lead.payout) if lead.payout is not None else None,
        "score": lead.score,
        "tier": lead.tier or None,
    }


@shared_task(name="leads.tasks.send_postback", bind=True, max_retries=POSTBACK_MAX_ATTEMPTS - 1)
def send_postback(self, lead_id: str) -> str | Retry:
    """POST a lead's final outcome to its source's postback URL; retry transient failures."""
    lead = Lead.objects.select_related("source", "vertical").filter(pk=lead_id).first()
    if lead is None or not lead.source.postback_url or lead.status not in FINAL_STATUSES:
        return "skipped"
    attempt = self.request.retries + 1
    body = json.dumps(postback_payload(lead), separators=(",", ":"))
    record = Postback(
        lead=lead,
        url=lead.source.postback_url,
        lead_status=lead.status,
        attempt=attempt,
        request_body=body,
        status=PostbackStatus.PENDING,
    )
    started = time.monotonic()
    retry = False
    try:
        check_resolved(lead.source.postback_url)
        response = _session.post(
            lead.source.postback_url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "Leadswitch-Postback/1"},
            timeout=POSTBACK_TIMEOUT,
            allow_redirects=False,
        )
    except ForbiddenAddressError as exc:
        record.error = f"refused: {exc}"[:500]  # never retried: it would be refused again
    except requests.RequestException as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:500]
        retry = True
    else:
        record.response_status = response.status_code
        record.response_body = response.text[:4096]
        if 200 <= response.status_code < 300:
            record.status = PostbackStatus.DELIVERED
        else:
            # The partner's server erred or throttled: try again. Other 4xx will not improve.
            retry = response.status_code >= 500 or response.status_code in {408, 429}
            record.error = f"HTTP {response.status_code}"
    record.latency_ms = round((time.monotonic() - started) * 1000)
    if record.status != PostbackStatus.DELIVERED:
        record.status = (
            PostbackStatus.PENDING
            if retry and attempt < POSTBACK_MAX_ATTEMPTS
            else PostbackStatus.FAILED
        )
    record.save()
    if record.status == PostbackStatus.FAILED:
        notifications.postback_failed(postback_id=record.pk)
    if record.status == PostbackStatus.PENDING:
        # Exponential backoff with full jitter: 2, 4, 8 … s, capped at 5 minutes.
        countdown = random.uniform(0, min(POSTBACK_BACKOFF_CAP_S, 2**attempt))  # noqa: S311
        if self.request.is_eager:
            # In-process (no broker): Celery runs the retries at once, one after the other. A
            # raised Retry would escape through on_commit into the routing run and the
            # partner's request.
            return self.retry(countdown=countdown, throw=False)
        raise self.retry(countdown=countdown)
    return record.status
