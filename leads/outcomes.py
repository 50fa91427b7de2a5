"""Tell a waiting intake request that its lead's routing has finished (Redis pub/sub).

`Prefer: wait=N` keeps the partner's request open until the routing run settles the lead. The
routing worker publishes on the lead's channel when it settles; the web process subscribes
before it looks at the lead's status, so an outcome published in between is never missed.
Without Redis (the embedded default, where routing runs in-process) there is nothing to wait for.
"""

from __future__ import annotations

import logging
import time
from functools import cache

import redis
from django.conf import settings

from leads.models import FINAL_STATUSES, Lead

logger = logging.getLogger(__name__)
CHANNEL_PREFIX = "leadswitch:lead-outcome:"


@cache
def _client() -> redis.Redis | None:
    url = settings.CACHE_URL if settings.CACHE_URL.startswith(("redis://", "rediss://")) else ""
    if not url:
        return None
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)


def lead_outcome_publish(lead_id: object) -> None:
    """Wake whoever waits for this lead (call after the settling transaction commits)."""
    client = _client()
    if client is None:
        return
    try:
        client.publish(f"{CHANNEL_PREFIX}{lead_id}", b"1")
    except redis.RedisError:
        # The waiter also re-reads the lead when its deadline passes: a lost wake-up costs time.
        logger.warning("could not publish a lead outcome", extra={"lead_id": str(lead_id)})


def _status(lead_id: object) -> str | None:
    return Lead.objects.filter(pk=lead_id).values_list("status", flat=True).first()


def lead_outcome_wait(lead_id: object, *, seconds: float) -> str | None:
    """Wait up to `seconds` for the lead to reach a final status; return the status seen last."""
    client = _client()
    if client is None or seconds <= 0:
        return _status(lead_id)
    deadline = time.monotonic() + seconds
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(f"{CHANNEL_PREFIX}{lead_id}")
        status = _status(lead_id)
        while status not in FINAL_STATUSES:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            message = pubsub.get_message(timeout=min(remaining, 1.0))
            if message is not None or remaining <= 1.0:
                status = _status(lead_id)
        return status
    except redis.RedisError:
        logger.warning("waiting for a lead outcome failed", extra={"lead_id": str(lead_id)})
        return _status(lead_id)
    finally:
        pubsub.close()
