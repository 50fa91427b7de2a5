"""Settlement: each sale stored with its reservation's charge, the lead and its auction settled
with every attempt of the run, the source's postback queued, and the buyers' answers counted
towards their breakers."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from buyers.models import CapReservation
from buyers.services import cap_release
from config.admin_display import plural
from leads.models import LeadStatus
from leads.outcomes import lead_outcome_publish
from leads.services import postback_schedule
from routing.engine import store
from routing.engine.run import ZERO, Run
from routing.health import health_record
from routing.models import AuctionStatus, Sale

logger = logging.getLogger(__name__)


def sale_store_or_refuse(run: Run, sale: Sale, reservation: CapReservation) -> bool:
    """Store the sale; return False when the database refuses it (the buyer has bought the lead
    already), giving its reservation's room back."""
    try:
        store.sale_store(sale, reservation=reservation)
    except IntegrityError:
        logger.error("a second sale to one buyer was refused", extra={"lead_id": str(run.lead.pk)})
        cap_release(reservation=reservation)
        return False
    return True


def store_before_more_posts(run: Run, *, sold: list[int], failed: list[int]) -> bool:
    """Store the run's sales so far before more posts go out. Return False when the database
    refused one (its contract moves from sold to failed, and the plan must be asked again)."""
    refused = store_unstored(run)
    for sale in refused:
        sold.remove(sale.contract_id)
        failed.append(sale.contract_id)
    return not refused


def store_unstored(run: Run) -> list[Sale]:
    """Store the run's unstored sales one by one; return those the database refused (a second
    sale to one buyer), which leave run.sales."""
    refused = []
    while run.unstored:
        sale, reservation = run.unstored[0]
        stored = sale_store_or_refuse(run, sale, reservation)
        run.unstored.pop(0)  # only once it is stored or refused: a failure leaves it on the run
        if not stored:
            run.sales.remove(sale)
            refused.append(sale)
    return refused


def finish(run: Run, *, note: str, status: str | None = None) -> str:
    """Settle the lead and its auction, with every attempt of the run, in one transaction."""
    lead = run.lead
    try:
        settled, changes = _settle(run, note=note, status=status)
    except IntegrityError:
        if not run.unstored:
            raise
        # A sale the database refuses (a second sale to one buyer): the sale goes on its
        # own and the lead settles with what was stored.
        refused = store_unstored(run)
        if refused:
            note = (
                f"{note}; {plural(len(refused), 'second sale')} to one buyer refused"
                if run.sales
                else f"the buyer that accepted had bought the lead already ({note})"
            )
        settled, changes = _settle(run, note=note, status=status)
    if settled:
        for name, value in changes.items():
            setattr(lead, name, value)
    else:  # settled elsewhere (by hand, say): report what the lead really is
        lead.refresh_from_db(fields=["status", "sale_price", "payout", "sold_at"])
    # Now, or when a caller's transaction commits.
    postback_schedule(lead=lead)
    transaction.on_commit(lambda: lead_outcome_publish(lead.pk))
    _record_health(run)
    return f"{lead.status}: {note}"


def _settle(run: Run, *, note: str, status: str | None) -> tuple[int, dict]:
    """Settle the lead and end the auction (store.run_settle); return 1 when the lead was
    settled, and the lead's changes."""
    changes, ending = _settlement(run, note=note, status=status)
    return store.run_settle(run, changes=changes, ending=ending), changes


def _settlement(run: Run, *, note: str, status: str | None) -> tuple[dict, dict]:
    """The changes that settle the lead (if still routing) and end its auction."""
    sales = run.sales
    now = timezone.now()
    if sales:
        final = AuctionStatus.SOLD
        changes = {
            "status": LeadStatus.SOLD,
            "sale_price": sum((s.price for s in sales), ZERO),
            "payout": sum((s.payout for s in sales), ZERO),
            "sold_at": now,
        }
    else:
        final = status or AuctionStatus.UNSOLD
        failed = final == AuctionStatus.FAILED
        changes = {"status": LeadStatus.FAILED if failed else LeadStatus.UNSOLD}
    ending = {
        "status": final,
        "finished_at": now,
        "note": note[:500],
        "explanation": run.auction.explanation,
        "eligible_count": run.auction.eligible_count,
    }
    return {"updated_at": now, **changes}, ending


def _record_health(run: Run) -> None:
    """Count the run's answers towards its contracts' breakers, after the lead is settled.

    Outside the settling transaction: breaker rows are locked one at a time, never several
    across a transaction (two runs could take them in opposite orders). Health is advice to
    later runs: failing to count it must not undo or fail a settled lead.
    """
    observations, run.observations = run.observations, []
    rows, run.health_after = run.health_after, None
    try:
        health_record(observations, rows=rows)
    except Exception:
        logger.exception("recording buyer health failed", extra={"lead_id": str(run.lead.pk)})
