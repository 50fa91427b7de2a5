"""A lead's routing run from its claim to its settlement, and what ends a run cut short."""

from __future__ import annotations

import logging
import time

from django.db import InterfaceError, OperationalError, connection

from leads.models import Lead
from routing.engine.claim import (
    INTERRUPTED_NOTE,
    MAX_INTERRUPTED_RUNS,
    claimed_run,
    recover,
    release_held,
)
from routing.engine.eligibility import eligible_offers
from routing.engine.held import held_bids, held_offers
from routing.engine.pings import ping_all
from routing.engine.run import Run, record_round
from routing.engine.selection import sale_plan, sell, usable_bids
from routing.engine.settlement import finish, store_unstored
from routing.models import Auction, AuctionStatus, Sale, SaleStatus
from routing.selection import SalePlan, plan_sale

logger = logging.getLogger(__name__)
# A run must end before the task's soft time limit (60 s), fallbacks and retries included.
RUN_BUDGET_S = 50
# The database went away (a restart, a failover, a cut connection): not the lead's fault.
DATABASE_LOST = (OperationalError, InterfaceError)


class RunLostDatabase(Exception):
    """A run lost its database mid-way; `auction_id` names the run to take over when it is back."""

    def __init__(self, auction_id: int | None) -> None:
        super().__init__(f"routing run {auction_id} lost its database")
        self.auction_id = auction_id


def lead_route(*, lead_id: str, lost_run: int | None = None) -> str:
    """Route one accepted lead to a final state (sold or unsold); return what happened.

    A run that loses its database raises RunLostDatabase instead of ending the lead: the task
    retries it with `lost_run`, and the sweeper resumes it if the retries run out.
    """
    run = claimed_run(lead_id, lost_run=lost_run)
    if run is None:
        status = Lead.objects.filter(pk=lead_id).values_list("status", flat=True).first()
        return f"not routed: the lead is {status or 'gone'}"
    lead = run.lead
    try:
        if not run.resumed:
            return _route(run)
        interrupted = Auction.objects.filter(lead=lead, note=INTERRUPTED_NOTE).count()
        sales, excluded = recover(run)
        if sales:
            run.sales = sales
            return finish(run, note="sold before the worker was lost")
        if interrupted >= MAX_INTERRUPTED_RUNS:
            logger.error(
                "a lead keeps losing its worker; giving up", extra={"lead_id": str(lead.pk)}
            )
            return finish(
                run,
                status=AuctionStatus.FAILED,
                note=f"routing was interrupted {interrupted} times; given up, needs review",
            )
        return _route(run, excluded_buyers=excluded)
    except DATABASE_LOST as error:
        # Ending the lead as failed would be wrong (and may be impossible): leave its run as it
        # is, held reservations included, for the retry to take over as after a lost worker.
        logger.warning(
            "routing run lost its database; it will be resumed",
            extra={"lead_id": str(lead.pk), "error": type(error).__name__},
        )
        _store_unstored_if_possible(run)
        raise RunLostDatabase(run.auction.pk) from error
    except Exception:
        logger.exception("routing run failed", extra={"lead_id": str(lead.pk)})
        try:
            _abandon(run)
        except DATABASE_LOST as error:
            raise RunLostDatabase(run.auction.pk) from error
        raise


def _store_unstored_if_possible(run: Run) -> None:
    """A sale a buyer accepted is the buyer's: try once more to store it on a fresh connection
    (the error may have been a lock or statement timeout, or a dropped connection). Otherwise
    its held reservation makes the post ambiguous for the run that takes over."""
    if not run.unstored or connection.in_atomic_block:  # a caller's transaction is broken
        return
    connection.close()
    try:
        store_unstored(run)
    except Exception:
        logger.warning(
            "an accepted sale could not be stored; its post will be marked ambiguous",
            extra={"lead_id": str(run.lead.pk)},
            exc_info=True,
        )


def _abandon(run: Run) -> None:
    """End a run cut short by an error: give back the cap room it held, keep its sales.

    A held reservation may stand for a post that went out: it is recorded as ambiguous, as after
    a lost worker. A sale already made is the buyer's: the lead stays sold to it.
    """
    store_unstored(run)  # a buyer that accepted has bought the lead, whatever failed after
    release_held(run, reason="routing failed while this post was in flight: marked for review")
    run.sales = list(Sale.objects.filter(lead=run.lead, status=SaleStatus.SOLD))
    if run.sales:
        finish(run, note="internal error after a sale; needs review")
    else:
        finish(run, status=AuctionStatus.FAILED, note="internal error")


def _route(run: Run, *, excluded_buyers: frozenset[int] | set[int] = frozenset()) -> str:
    run_deadline = time.monotonic() + RUN_BUDGET_S
    offers, ping_fields = eligible_offers(run, excluded_buyers=excluded_buyers)
    if not run.auction.eligible_count:
        return finish(run, note="no eligible contract")

    held = held_bids(run.lead)
    if held is None:
        attempts = ping_all(run, offers, ping_fields)
        kept, dropped = usable_bids(run, offers)
        record_round(run, attempts)
    else:
        # An inbound ping's bids: its buyers are not pinged again, and are posted to in the
        # order the ping ranked them (re-pinged only when a bid expires, as in any run).
        offers, ranked = held_offers(offers, held)
        kept, dropped = usable_bids(run, offers)
        if not offers:
            return finish(run, note="no contract that bid on the ping is eligible for the lead")
    if not kept:
        reasons = "; ".join(dropped.values())
        return finish(run, note=f"no usable bid{': ' + reasons if reasons else ''}")

    plan: SalePlan
    if held is None:
        plan = sale_plan(run, kept)
    else:
        usable = {bid.contract_id for bid in kept}
        ranked = [bid for bid in ranked if bid.contract_id in usable]
        plan = plan_sale(ranked, max_buyers=run.lead.vertical.max_buyers)
    note = sell(
        run,
        plan,
        offers={o.contract.pk: o for o in offers},
        ping_fields=ping_fields,
        run_deadline=run_deadline,
    )
    return finish(run, note=note)
