"""Partner API authentication (source API keys), permissions and per-source throttling."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.core.cache.backends.redis import RedisCacheClient
from django.utils import timezone
from rest_framework.permissions import BasePermission
from rest_framework.throttling import BaseThrottle

from config.api_keys import BearerKeyAuthentication
from config.cache import CACHE_DOWN
from leads.models import Source, SourceApiKey
from leads.services import source_api_key_authenticate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourcePrincipal:
    """The caller of a partner endpoint: a source, through one of its keys."""

    source: Source
    api_key: SourceApiKey
    is_authenticated: bool = True
    is_active: bool = True

    @property
    def pk(self) -> int:
        return self.source.pk


def count_unauthenticated(reason: str) -> None:
    """Count refused requests per hour (they are not stored: anyone can send them)."""
    key = f"intake:unauthenticated:{timezone.now():%Y%m%d%H}"
    try:
        if not cache.add(key, 1, timeout=2 * 24 * 3600):
            try:
                cache.incr(key)
            except ValueError:
                cache.add(key, 1, timeout=2 * 24 * 3600)
    except CACHE_DOWN:
        logger.warning("the shared cache is down: an unauthenticated request went uncounted")
    logger.debug("unauthenticated API request", extra={"reason": reason})


def unauthenticated_count(hour: str) -> int:
    return cache.get(f"intake:unauthenticated:{hour}", 0)


class SourceKeyAuthentication(BearerKeyAuthentication):
    """`Authorization: Bearer lsk_…` with a live key of a source."""

    def find_key(self, raw_key: str) -> SourceApiKey | None:
        return source_api_key_authenticate(raw_key=raw_key)

    def principal_for(self, api_key: SourceApiKey) -> SourcePrincipal:
        return SourcePrincipal(source=api_key.source, api_key=api_key)

    def refused(self, reason: str) -> None:
        count_unauthenticated(reason)


class IsSource(BasePermission):
    """Any authenticated source, active or not (intake stores an inactive source's leads)."""

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, SourcePrincipal)


class IsActiveSource(IsSource):
    message = "This source is inactive; ask your account manager to reactivate it."

    def has_permission(self, request, view) -> bool:
        return super().has_permission(request, view) and request.user.source.active


def _count(key: str) -> int:
    """Add one to a short-lived counter and return it, atomically."""
    if isinstance(getattr(cache, "_cache", None), RedisCacheClient):
        # One round trip (INCR and EXPIRE pipelined) instead of Django's add-then-incr three.
        client = cache._cache.get_client(key, write=True)
        pipe = client.pipeline()
        full_key = cache.make_and_validate_key(key)
        pipe.incr(full_key)
        pipe.expire(full_key, 5)
        return int(pipe.execute()[0])
    if cache.add(key, 1, timeout=5):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=5)
        return 1


class SourceRateThrottle(BaseThrottle):
    """At most `Source.rate_limit_per_second` requests in each wall-clock second, per source.

    A fixed one-second window counted with one atomic increment: concurrent requests from
    several web workers cannot overshoot the limit, which a read-then-write history can.
    """

    def allow_request(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, SourcePrincipal):
            return True
        now = time.time()
        window = int(now)
        self._wait = window + 1 - now
        try:
            count = _count(f"throttle:{principal.source.pk}:{window}")
        except CACHE_DOWN:
            # Leads are the business: with the shared cache down, take them unthrottled rather
            # than refuse every partner (the cache is back within seconds in a healthy setup).
            logger.warning("the shared cache is down: intake is not throttled")
            return True
        return count <= principal.source.rate_limit_per_second

    def wait(self) -> float:
        return getattr(self, "_wait", 1.0)
