"""Celery adapters for privacy: the daily purge of raw bodies past their retention."""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from config.locks import one_at_a_time
from privacy.services import raw_bodies_purge

logger = logging.getLogger(__name__)


# Registered under its first name: the beat schedule and messages in flight keep working.
@shared_task(name="leads.tasks.purge_raw_bodies")
@one_at_a_time(skipped=0)  # daily, bounded per run: a backlog takes a few runs, not a race
def purge_raw_bodies() -> int:
    """Empty the raw bodies of leads and inbound pings older than RAW_BODY_RETENTION_DAYS (0:
    keep them forever)."""
    days = settings.RAW_BODY_RETENTION_DAYS
    if not days:
        return 0
    count = raw_bodies_purge(older_than=timedelta(days=days))
    logger.info("purged raw bodies past retention", extra={"count": count, "days": days})
    return count
