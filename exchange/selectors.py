"""Reads for inbound pings: the pre-ping duplicate check by hashed e-mail and phone."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from config.admin_display import plural
from exchange.models import InboundPing
from leads.models import DuplicateScope, Lead
from leads.store import INTAKE_ACCEPTED_STATES

# The duplicate fields a ping can name by hash, and the lead columns holding their hashes.
HASHED_FIELDS = {"email": "email_sha256", "phone": "phone_sha256"}


def consumer_seen(ping: InboundPing) -> str:
    """Say why a ping's consumer duplicates an earlier lead by its vertical's duplicate rules
    (fields, look-back and scope), matched by the ping's hashes; '' when it does not.

    Only the vertical's `email` and `phone` duplicate fields can be matched by hash: against
    the hashes intake stored with each lead, through their indexes (hash, vertical, received).
    """
    vertical, source, is_test = ping.vertical, ping.source, ping.is_test
    days = vertical.duplicate_lookback_days
    match = Q()
    named = []
    for name, column in HASHED_FIELDS.items():
        wanted = getattr(ping, column)
        if wanted and name in (vertical.duplicate_fields or ()):
            match |= Q(**{column: wanted})
            named.append(name)
    if not days or not named:
        return ""
    earlier = Lead.objects.filter(
        match,
        vertical=vertical,
        is_test=is_test,
        received_at__gte=timezone.now() - timedelta(days=days),
        status__in=INTAKE_ACCEPTED_STATES,
    )
    if vertical.duplicate_scope == DuplicateScope.SOURCE:
        earlier = earlier.filter(source=source)
    if not earlier.exists():
        return ""
    return (
        f"A lead with the same {' or '.join(named)} was accepted in the last {plural(days, 'day')}."
    )
