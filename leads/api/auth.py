"""Partner API authentication (source API keys), permissions and per-source throttling."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCacheClient
from django.http import HttpRequest
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from config.api_keys import BearerKeyAuthentication, KeyPrincipal
from config.cache import CACHE_DOWN
from leads import profiles
from leads.models import Source, SourceApiKey
from leads.profiles import BEARER, DEFAULT_PROFILE, HEADER, PARAMETER, Profile
from leads.selectors import key_places, posting_profile
from leads.services import source_api_key_authenticate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourcePrincipal(KeyPrincipal):
    """The caller of a partner endpoint: a source, through one of its keys."""

    source: Source
    api_key: SourceApiKey
    profile: Profile = DEFAULT_PROFILE
    # The key as sent, when it came in a parameter: masked wherever the request is stored.
    sent_key: str = field(default="", repr=False)

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


def body_kind(content_type: str) -> str:
    """The flat format a body of this content type is read as ("" for none)."""
    if content_type == "application/x-www-form-urlencoded":
        return profiles.FORM
    if content_type == "application/json" or content_type.endswith("+json"):
        return profiles.FLAT_JSON
    if content_type in ("application/xml", "text/xml") or content_type.endswith("+xml"):
        return profiles.XML
    return ""


_READERS = {
    profiles.FORM: profiles.parameters_from_form,
    profiles.FLAT_JSON: profiles.parameters_from_json,
    profiles.XML: profiles.parameters_from_xml,
}


def body_parameters(http: HttpRequest) -> tuple[dict[str, Any], profiles.Errors]:
    """The body's parameters by its content type, read once per request (authentication looks
    for a key among them, intake reads the lead from them); none for a body over the limit."""
    cached = getattr(http, "_leadswitch_parameters", None)
    if cached is not None:
        return cached
    kind = body_kind(http.content_type or "")
    try:
        length = int(http.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if not kind or length > settings.INTAKE_MAX_BODY_BYTES:
        return {}, {}
    read = _READERS[kind](http.body)
    http._leadswitch_parameters = read  # type: ignore[attr-defined]
    return read


def _text_parameter(parameters: dict[str, Any], names: frozenset[str]) -> tuple[str, str] | None:
    for name, value in parameters.items():
        if name.lower() in names and isinstance(value, str) and value:
            return name, value
    return None


def _key_elsewhere(http: HttpRequest) -> tuple[str, str, str] | None:
    """Find a key outside the Authorization header: (location, name, key), or None.

    Authentication comes before the source (and so its profile) is known, so it looks in the
    few places some active source's profile names: each such header, then each such query or
    body parameter. The source found then says whether that was its place (`authenticate`).
    """
    header_names, parameter_names = key_places()
    for name in header_names:
        value = http.headers.get(name)
        if value:
            return HEADER, name, value
    if not parameter_names:
        return None
    for parameters in (http.GET, body_parameters(http)[0]):
        found = _text_parameter(dict(parameters.items()), parameter_names)
        if found is not None:
            return PARAMETER, found[0], found[1]
    return None


def _place_words(location: str, name: str) -> str:
    if location == BEARER:
        return "the Authorization header"
    return f"the {name} {location}"


class SourceKeyAuthentication(BearerKeyAuthentication):
    """A live key of a source, where the source's posting profile puts it: `Authorization:
    Bearer lsk_…` (the default), a header of its own, or a query or body parameter."""

    def find_key(self, raw_key: str) -> SourceApiKey | None:
        return source_api_key_authenticate(raw_key=raw_key)

    def principal_for(self, api_key: SourceApiKey) -> SourcePrincipal:
        return SourcePrincipal(source=api_key.source, api_key=api_key)

    def refused(self, reason: str) -> None:
        count_unauthenticated(reason)

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        http = request._request
        sent_key = ""
        if http.META.get("HTTP_AUTHORIZATION"):
            found = super().authenticate(request)
            if found is None:
                return None
            principal, api_key = found
            location, name = BEARER, ""
        else:
            elsewhere = _key_elsewhere(http)
            if elsewhere is None:
                self.refused("no credentials")
                return None
            location, name, sent_key = elsewhere
            api_key = self.find_key(sent_key)
            if api_key is None:
                self.refused("unknown or revoked key")
                raise exceptions.AuthenticationFailed(
                    f"The {self.what} is unknown or has been revoked."
                )
            principal = self.principal_for(api_key)
        profile = posting_profile(source=principal.source)
        # A key somewhere its source does not send it (a Bearer source's key in a query string)
        # is refused: accepting it would teach a partner to leak it into logs and proxies.
        if not profile.takes_key_from(location, name):
            self.refused("key in the wrong place")
            raise exceptions.AuthenticationFailed(
                f"This source sends its key in {profile.key_place()}, not in "
                f"{_place_words(location, name)}."
            )
        principal = SourcePrincipal(
            source=principal.source, api_key=api_key, profile=profile, sent_key=sent_key
        )
        return principal, api_key


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
