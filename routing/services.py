"""Writes of the routing app that are not a routing run itself."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Exists, OuterRef

from buyers.models import CapReservation, EndpointKind, ReservationStatus
from leads.models import Lead, LeadStatus
from leads.services import lead_transition, routing_enqueue
from routing.models import Attempt, AttemptOutcome, Sale

logger = logging.getLogger(__name__)

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
