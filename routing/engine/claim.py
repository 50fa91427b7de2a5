"""Claim: take an accepted lead for a run, or take over the run of a worker that was lost."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from buyers.models import CapReservation, EndpointKind, ReservationStatus
from buyers.services import cap_release
from leads.models import Lead, LeadStatus
from routing.engine import store
from routing.engine.run import Run, new_attempt
from routing.models import AttemptOutcome, Auction, AuctionStatus, Sale, SaleStatus

INTERRUPTED_NOTE = "interrupted: the worker was lost"
DATABASE_LOST_NOTE = "interrupted: the database was lost"
# A lead whose routing keeps killing its worker (a poison lead) is failed after this many tries.
MAX_INTERRUPTED_RUNS = 3


def claimed_run(lead_id: str, *, lost_run: int | None = None) -> Run | None:
    """Claim an accepted lead, or take over the run of a worker that was lost (or return None).

    The claim and the auction row are one transaction, so a lead in `routing` always has a
    running auction whose start says how long it has been at it. `lost_run` is a run that its
    own task knows lost the database: it is taken over at once, without waiting for it to turn
    stale, and does not count towards the interruptions that mark a poison lead.
    """
    now = timezone.now()
    run = store.claim_accepted(lead_id, now)
    if run is not None:
        return run
    with transaction.atomic():
        lead = (
            Lead.objects.select_for_update(of=("self",))
            .select_related("vertical", "source")
            .filter(pk=lead_id, status=LeadStatus.ROUTING)
            .first()
        )
        if lead is None:
            return None
        running = Auction.objects.filter(lead=lead, status=AuctionStatus.RUNNING)
        stale_before = now - timedelta(seconds=settings.ROUTING_STALE_SECONDS)
        live = running.filter(started_at__gte=stale_before)
        if lost_run is not None:
            live = live.exclude(pk=lost_run)
        if live.exists():
            return None  # another worker is routing it right now
        running.filter(pk=lost_run).update(
            status=AuctionStatus.FAILED, finished_at=now, note=DATABASE_LOST_NOTE
        )
        running.update(status=AuctionStatus.FAILED, finished_at=now, note=INTERRUPTED_NOTE)
        auction = Auction.objects.create(lead=lead, note="resumed after an interrupted run")
    return Run(lead=lead, auction=auction, resumed=True)


def recover(run: Run) -> tuple[list[Sale], set[int]]:
    """After a lost worker: keep its sales; never re-post where a post may have gone out.

    A reservation still held means the lost run may have posted to that contract and never
    read the answer. The lead must not be sent there again blindly: release the room, record
    the post as ambiguous for review, and leave the buyer out of this run.
    """
    sales = list(Sale.objects.filter(lead=run.lead, status=SaleStatus.SOLD))
    excluded = release_held(
        run,
        reason="the worker was lost while this post was in flight: not re-posted, "
        "marked for review",
    )
    excluded.update(sale.buyer_id for sale in sales)
    return sales, excluded


def release_held(run: Run, *, reason: str) -> set[int]:
    """Release the lead's held reservations as ambiguous posts; return the buyers they were for."""
    lead, auction = run.lead, run.auction
    excluded: set[int] = set()
    held = CapReservation.objects.filter(lead=lead, status=ReservationStatus.HELD).select_related(
        "contract"
    )
    for reservation in held:
        cap_release(reservation=reservation)
        excluded.add(reservation.contract.buyer_id)
        run.attempts.append(
            new_attempt(
                auction=auction,
                lead=lead,
                contract=reservation.contract,
                kind=EndpointKind.POST,
                outcome=AttemptOutcome.AMBIGUOUS,
                reason=reason,
            )
        )
    return excluded
