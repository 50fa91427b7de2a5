"""Writes for verticals, sources, API keys and leads."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from leads.models import LEAD_TRANSITIONS, Lead, LeadStatus, Source, SourceApiKey, Vertical

API_KEY_PREFIX = "lsk_"
# last_used_at is a hint for ops, not an audit log: refresh it at most this often per key so that
# a busy partner does not turn every request into an extra UPDATE.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class InvalidTransition(Exception):
    """A status change that the lead state machine does not allow."""


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def source_api_key_create(*, source: Source, name: str = "") -> tuple[SourceApiKey, str]:
    """Mint an API key for a source; return the row and the key, which is never stored."""
    raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    api_key = SourceApiKey.objects.create(
        source=source,
        name=name,
        prefix=raw_key[: len(API_KEY_PREFIX) + 8],
        hashed_key=hash_api_key(raw_key),
    )
    return api_key, raw_key


def source_api_key_revoke(*, api_key: SourceApiKey) -> bool:
    """Revoke a key; return False when it was already revoked."""
    now = timezone.now()
    updated = SourceApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if updated:
        api_key.revoked_at = now
    return bool(updated)


def source_api_key_authenticate(*, raw_key: str) -> SourceApiKey | None:
    """Return the live key matching raw_key (with its source), or None."""
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    api_key = (
        SourceApiKey.objects.select_related("source")
        .filter(hashed_key=hash_api_key(raw_key), revoked_at__isnull=True)
        .first()
    )
    if api_key is None:
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        SourceApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


def source_get_or_create(
    *, name: str, verticals: list[Vertical], **defaults: Any
) -> tuple[Source, bool]:
    """Create the source if it does not exist and allow it the given verticals."""
    with transaction.atomic():
        source, created = Source.objects.get_or_create(name=name, defaults=defaults)
        if created:
            source.full_clean()
        source.verticals.add(*verticals)
    return source, created


def lead_transition(*, lead: Lead, to: LeadStatus, **fields: Any) -> bool:
    """Move a lead to status `to` if its current state allows it; return whether this call did.

    The UPDATE is conditional on the states `to` may be entered from, so of two workers racing
    for the same lead exactly one wins; the loser gets False and must leave the lead alone.
    """
    allowed_from = LEAD_TRANSITIONS.get(to)
    if allowed_from is None:
        raise InvalidTransition(f"no lead ever enters {to!r} after intake")
    updated = Lead.objects.filter(pk=lead.pk, status__in=allowed_from).update(
        status=to, updated_at=timezone.now(), **fields
    )
    if updated:
        lead.status = to
        for name, value in fields.items():
            setattr(lead, name, value)
        return True
    return False
