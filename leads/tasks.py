"""Celery adapters for intake: the waiting-lead sweeper, postbacks, idempotency and raw-body
purges."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from celery import shared_task
from celery.exceptions import Retry
from django.conf import settings

from config.locks import one_at_a_time
from leads.models import FINAL_STATUSES, Lead, Postback, PostbackStatus
from leads.prices import prices_shown
from leads.services import (
    idempotency_records_purge,
    leads_missing_postbacks,
    leads_sweep_waiting,
    postback_enqueue,
)
from notifications import events as notify
from outbound import http
from outbound.rules import backoff, retryable

logger = logging.getLogger(__name__)
POSTBACK_MAX_ATTEMPTS = 6
POSTBACK_TIMEOUT = (2.0, 5.0)  # connect, read (seconds)
# Retries wait up to 2, 4, 8, 16 and 32 s (anywhere below; full jitter), never longer than this.
# A retry waits in its worker unacknowledged: it must be due before the broker's visibility
# timeout, or Redis hands it to a second worker.
POSTBACK_BACKOFF_BASE_S = 2.0
POSTBACK_BACKOFF_CAP_S = 300


@shared_task(name="leads.tasks.sweep_waiting_leads")
@one_at_a_time(skipped=0)  # it runs every 15 s: a slow run must not double every enqueue
def sweep_waiting_leads() -> int:
    """Re-enqueue accepted leads no routing run picked up (broker down at intake, lost task)."""
    count = leads_sweep_waiting(older_than=timedelta(seconds=settings.ROUTING_SWEEP_AFTER_SECONDS))
    if count:
        logger.info("re-enqueued waiting leads", extra={"count": count})
    return count


@shared_task(name="leads.tasks.sweep_missing_postbacks")
@one_at_a_time(skipped=0)
def sweep_missing_postbacks() -> int:
    """Queue the postbacks that never got queued (the broker was down when the lead settled)."""
    sent = sum(postback_enqueue(lead_id) for lead_id in leads_missing_postbacks())
    if sent:
        logger.info("queued missing postbacks", extra={"count": sent})
    return sent


@shared_task(name="leads.tasks.purge_idempotency_records")
def purge_idempotency_records() -> int:
    return idempotency_records_purge()


def postback_payload(lead: Lead) -> dict:
    """The outcome a source is told: its payout, and the buyer's price only if it may see it."""
    return {
        "id": str(lead.pk),
        "status": "rejected" if lead.status == "suppressed" else lead.status,
        "test": lead.is_test,
        "sub_id": lead.sub_id,
        "vertical": lead.vertical.slug if lead.vertical_id else None,
        "received_at": lead.received_at.isoformat(),
        **prices_shown(source=lead.source, payout=lead.payout, buyer_price=lead.sale_price),
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
    # Through the outbound seam: the address guard checks the address it connects to, and a
    # receiver that may have got it without answering is told again (it names the lead).
    outcome = http.send(
        "POST",
        lead.source.postback_url,
        body=body.encode(),
        headers={"Content-Type": "application/json", "User-Agent": "Leadswitch-Postback/1"},
        timeout=POSTBACK_TIMEOUT,
    )
    record.response_status = outcome.status
    record.response_body = outcome.body[:4096]
    record.latency_ms = outcome.latency_ms
    if outcome.status is not None and 200 <= outcome.status < 300:
        record.status = PostbackStatus.DELIVERED
    else:
        record.error = outcome.error or f"HTTP {outcome.status}"
        record.status = (
            PostbackStatus.PENDING
            if retryable(outcome, idempotent=True) and attempt < POSTBACK_MAX_ATTEMPTS
            else PostbackStatus.FAILED
        )
    record.save()
    if record.status == PostbackStatus.FAILED:
        notify.postback_failed(postback_id=record.pk)
    if record.status == PostbackStatus.PENDING:
        countdown = backoff(
            attempt, base_s=POSTBACK_BACKOFF_BASE_S, cap_s=POSTBACK_BACKOFF_CAP_S, jitter="full"
        )
        raise self.retry(countdown=countdown)
    return record.status
