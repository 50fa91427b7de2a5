"""Reads for inbound pings: the pre-ping duplicate check by hashed e-mail and phone."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.db.models.functions import SHA256
from django.utils import timezone

from config.admin_display import plural
from exchange.models import InboundPing
from leads.models import DuplicateScope, Lead
from leads.store import INTAKE_ACCEPTED_STATES


class Sha256Hex(SHA256):
    """A text's SHA-256 in lower-case hex. PostgreSQL computes it with its built-in sha256()
    (Django's SHA256 there needs the pgcrypto extension); SQLite with Django's own function."""

    def as_postgresql(self, compiler, connection, **extra):
        return self.as_sql(
            compiler,
            connection,
            template="encode(sha256(convert_to(%(expressions)s, 'UTF8')), 'hex')",
            **extra,
        )


# The denormalised columns intake fills with the normalised e-mail and E.164 phone.
HASHED_COLUMNS = {"email_sha256": "email", "phone_sha256": "phone"}


def consumer_seen(ping: InboundPing) -> str:
    """Say why a ping's consumer duplicates an earlier lead by its vertical's duplicate rules
    (fields, look-back and scope), matched by the ping's hashes; '' when it does not.

    Only the vertical's `email` and `phone` duplicate fields can be matched by hash. The hash
    is computed by the database over the vertical's leads of the look-back window (the index on
    vertical and received time bounds the scan).
    """
    vertical, source, is_test = ping.vertical, ping.source, ping.is_test
    days = vertical.duplicate_lookback_days
    wanted = {"email_sha256": ping.email_sha256, "phone_sha256": ping.phone_sha256}
    match = Q()
    named = []
    for key, column in HASHED_COLUMNS.items():
        if wanted[key] and column in (vertical.duplicate_fields or ()):
            match |= Q(**{f"{column}_hash": wanted[key]})
            named.append(column)
    if not days or not named:
        return ""
    earlier = Lead.objects.filter(
        vertical=vertical,
        is_test=is_test,
        received_at__gte=timezone.now() - timedelta(days=days),
        status__in=INTAKE_ACCEPTED_STATES,
    )
    if vertical.duplicate_scope == DuplicateScope.SOURCE:
        earlier = earlier.filter(source=source)
    earlier = earlier.annotate(**{f"{column}_hash": Sha256Hex(column) for column in named}).filter(
        match
    )
    if not earlier.exists():
        return ""
    return (
        f"A lead with the same {' or '.join(named)} was accepted in the last {plural(days, 'day')}."
    )
