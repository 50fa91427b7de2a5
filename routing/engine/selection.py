"""Selection: the run's use of routing/selection.py. Bids are filtered by floor and margin and
ranked by the vertical's distribution mode; the plan is then driven through rounds of posts,
falling back on failures, pinging again the bids that expired, until sold or exhausted."""

from __future__ import annotations

import logging
import random
import time

from django.core.cache import cache

from buyers.models import DeliveryMethod
from config.admin_display import plural
from config.cache import CACHE_DOWN
from leads.models import DistributionMode, Lead, Vertical
from routing.engine.pings import ping_all
from routing.engine.posts import post_all
from routing.engine.run import ZERO, Offer, Run, record_round
from routing.engine.settlement import store_before_more_posts
from routing.models import Sale
from routing.selection import Bid, SalePlan, TierFloor, filter_bids, money, plan_sale, rank

logger = logging.getLogger(__name__)


def _tier_floor(lead: Lead) -> TierFloor | None:
    """The vertical's floor for the lead's tier (lead scoring), when it has one."""
    amount = lead.vertical.tier_floor(lead.tier) if lead.tier else None
    return TierFloor(lead.tier, amount) if amount is not None else None


def _rotation(vertical: Vertical) -> int:
    """The vertical's round-robin position (shared by every worker), for round-robin verticals.

    With the shared cache down, a random position: leads keep flowing, spread at random.
    """
    if vertical.distribution_mode != DistributionMode.ROUND_ROBIN:
        return 0
    key = f"round-robin:{vertical.pk}"
    try:
        if cache.add(key, 0, timeout=None):
            return 0
        try:
            return cache.incr(key)
        except ValueError:
            return 0
    except CACHE_DOWN:
        logger.warning("the shared cache is down: round robin picks at random")
        return random.randrange(1 << 30)  # noqa: S311


def usable_bids(run: Run, offers: list[Offer]) -> tuple[list[Bid], dict[int, str]]:
    """The offers' bids that clear their contract's floor, the vertical's minimum margin over
    the source's payout and the lead's tier floor; and, by contract, why each other was dropped."""
    lead = run.lead
    bids = [o.bid for o in offers if o.bid is not None]
    payout_for = (lambda price: ZERO) if lead.is_test else lead.source.payout_for
    return filter_bids(
        bids,
        floor_by_contract={o.contract.pk: o.contract.floor_price for o in offers},
        payout=payout_for,
        min_margin=ZERO if lead.is_test else lead.vertical.min_margin,
        tier_floor=_tier_floor(lead),
        # Internal teams: the lead is not resold, so no margin or tier floor applies.
        internal={
            o.contract.pk for o in offers if o.contract.delivery_method == DeliveryMethod.TEAM
        },
    )


def sale_plan(run: Run, bids: list[Bid]) -> SalePlan:
    """Rank the usable bids by the vertical's distribution mode and plan the sale."""
    vertical = run.lead.vertical
    ranked = rank(
        bids,
        mode=vertical.distribution_mode,
        rotation=_rotation(vertical),  # a weighted vertical's draw is unseeded
    )
    return plan_sale(ranked, max_buyers=vertical.max_buyers)


def _reping_expired(
    run: Run, offers: list[Offer], *, ping_fields, failed: list[int]
) -> list[Offer]:
    """Ping again the offers whose bid the buyer no longer honours; drop those that stop
    bidding or whose new bid falls below the floor or the margin (added to `failed`)."""
    now = time.time()
    expired = [o for o in offers if o.bid is not None and o.bid.expired(now)]
    if not expired:
        return offers
    stale = {o.contract.pk: o.bid for o in expired}
    for offer in expired:
        offer.bid = None
    lead = run.lead
    record_round(run, ping_all(run, expired, ping_fields))
    rebids = [o.bid for o in expired if o.bid is not None]
    kept, _ = filter_bids(
        rebids,
        floor_by_contract={o.contract.pk: o.contract.floor_price for o in expired},
        payout=(lambda price: ZERO) if lead.is_test else lead.source.payout_for,
        min_margin=ZERO if lead.is_test else lead.vertical.min_margin,
        tier_floor=_tier_floor(lead),
    )
    usable = {bid.contract_id for bid in kept}
    fresh = []
    for offer in offers:
        if offer.contract.pk in stale and offer.contract.pk not in usable:
            failed.append(offer.contract.pk)
            offer.bid = stale[offer.contract.pk]
            continue
        fresh.append(offer)
    return fresh


def sell(
    run: Run, plan: SalePlan, *, offers: dict[int, Offer], ping_fields, run_deadline: float
) -> str:
    """Post to the plan's candidates, falling back on failures, until sold, exhausted or out of
    time; return the run's note."""
    sold: list[int] = []
    failed: list[int] = []
    out_of_time = False
    while True:
        candidates = plan.next_candidates(sold=sold, failed=failed)
        if not candidates:
            break
        if not store_before_more_posts(run, sold=sold, failed=failed):
            continue
        if time.monotonic() >= run_deadline:
            out_of_time = True
            break
        offers_now = _reping_expired(
            run,
            [offers[b.contract_id] for b in candidates],
            ping_fields=ping_fields,
            failed=failed,
        )
        if not offers_now:
            continue
        for bid, sale in post_all(run, offers_now, deadline=run_deadline):
            if sale is None:
                failed.append(bid.contract_id)
            else:
                sold.append(bid.contract_id)
    note = _outcome_note(run.sales, failed=len(failed), plan_reason=plan.reason)
    if out_of_time and not run.sales:
        note = f"ran out of time after {len(failed)} failed posts"
    return note


def _outcome_note(sales: list[Sale], *, failed: int, plan_reason: str) -> str:
    if not sales:
        return "every buyer rejected or failed the post"
    total = sum((sale.price for sale in sales), ZERO)
    note = f"sold to {plural(len(sales), 'buyer')} for {money(total)}"
    if failed:
        note += f" after {plural(failed, 'failed post')}"
    return f"{note} (first plan: {plan_reason})"
