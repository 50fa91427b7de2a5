"""Writes of the routing app that are not a routing run itself."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import connection, models, transaction
from django.db.models import Exists, OuterRef

from buyers.models import CapReservation, EndpointKind, ReservationStatus
from config.rows import json_ready_fields, json_rows, quoted, storable_text, stored_fields
from leads.models import Lead, LeadStatus
from leads.services import lead_transition, routing_enqueue
from routing.models import Attempt, AttemptOutcome, Sale

logger = logging.getLogger(__name__)

# Every column but the id, in model order: what an attempt row is made of.
_ATTEMPT_FIELDS = json_ready_fields(stored_fields(Attempt))
_ATTEMPT_TEXT_FIELDS = [
    f for f in _ATTEMPT_FIELDS if isinstance(f, models.CharField | models.TextField)
]


def _scrub_unstorable(attempts: Sequence[Attempt]) -> None:
    # A buyer's answer may hold NUL bytes or (parsed from JSON) lone surrogates, which
    # PostgreSQL cannot store: the attempt is stored with U+FFFD in their place rather than the
    # whole run failing to settle (and the lead going to that buyer again after it).
    for attempt in attempts:
        for field in _ATTEMPT_TEXT_FIELDS:
            value = getattr(attempt, field.attname)
            if value:
                setattr(attempt, field.attname, storable_text(value))


def attempts_insert_sql(attempts: Sequence[Attempt]) -> tuple[str, list[str]]:
    """The INSERT that stores new attempts (PostgreSQL), and its one parameter: the rows as JSON.

    A routing run writes one attempt per buyer pinged and posted. From JSON, PostgreSQL reads
    each value with its column's own input, so Python builds one string instead of a row of
    parameters per attempt, and the statement can ride in another. The rows get no ids back;
    nothing of a run needs them.
    """
    _scrub_unstorable(attempts)
    table = quoted(Attempt._meta.db_table)
    columns = ", ".join(quoted(f.column) for f in _ATTEMPT_FIELDS)
    sql = (
        f"INSERT INTO {table} ({columns}) SELECT {columns} "  # noqa: S608 - names of the model
        f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
    )
    return sql, [json_rows(attempts, _ATTEMPT_FIELDS)]


def attempts_insert(attempts: Sequence[Attempt]) -> None:
    """Store new attempts."""
    if connection.vendor != "postgresql":
        _scrub_unstorable(attempts)
        Attempt.objects.bulk_create(attempts)
        return
    sql, params = attempts_insert_sql(attempts)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


# Only a lead that no buyer has, and that no post may have reached, is routed again (each may
# go back to accepted: leads.models.LEAD_TRANSITIONS).
REROUTABLE_STATUSES = (LeadStatus.UNSOLD, LeadStatus.FAILED)


class RerouteRefused(Exception):
    """The lead may not be routed again; the message says why, in words for ops."""


def lead_reroute(*, lead: Lead, actor: str) -> None:
    """Hand an unsold or failed lead back to routing, once; raise RerouteRefused if it may not go.

    Never sells a lead twice: the lead goes back to `accepted` (a conditional update, under a row
    lock on PostgreSQL) only while it has no sale, no held cap reservation and no post that may
    have reached a buyer unanswered. Of two ops clicking at once, one wins; the other is refused.
    The routing task is enqueued when the transaction commits, and its run claims the lead as it
    claims a new one.
    """
    if lead.status not in REROUTABLE_STATUSES:
        raise RerouteRefused(
            f"The lead is {lead.get_status_display().lower()}: only unsold or failed leads are "
            "routed again."
        )
    if lead.erased_at is not None:
        raise RerouteRefused("The consumer's personal data was erased: there is nothing to sell.")
    ambiguous = (
        Attempt.objects.filter(lead=lead, kind=EndpointKind.POST, outcome=AttemptOutcome.AMBIGUOUS)
        .select_related("contract__buyer")
        .first()
    )
    if ambiguous is not None:
        raise RerouteRefused(
            f"A post to {ambiguous.contract} may have reached the buyer without an answer: "
            "settle that with the buyer before routing the lead again."
        )
    sales = Sale.objects.filter(lead=OuterRef("pk"))
    held = CapReservation.objects.filter(lead=OuterRef("pk"), status=ReservationStatus.HELD)
    with transaction.atomic():
        locked = (
            Lead.objects.select_for_update()
            .filter(pk=lead.pk, status__in=REROUTABLE_STATUSES, erased_at__isnull=True)
            .exclude(Exists(sales))
            .exclude(Exists(held))
            .first()
        )
        # lead_transition's UPDATE is conditional on the status again: a lead that left unsold
        # or failed in between (SQLite takes no row lock) stays where it is.
        if locked is None or not lead_transition(lead=locked, to=LeadStatus.ACCEPTED):
            lead.refresh_from_db(fields=["status"])
            raise RerouteRefused(
                f"The lead is {lead.get_status_display().lower()} and was not routed again: "
                "it changed meanwhile, or a buyer holds it."
            )
        lead.status = LeadStatus.ACCEPTED
        lead_id = lead.pk
        transaction.on_commit(lambda: routing_enqueue([lead_id]))
    logger.info("lead re-routed by hand", extra={"lead_id": str(lead.pk), "actor": actor})
