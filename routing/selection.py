"""Who is offered a lead, in what order, and whether it is sold exclusive or shared (pure).

`filter_bids` drops bids under their contract's floor, the vertical's floor for the lead's tier
(lead scoring) or the vertical's minimum margin; `rank`
orders the rest by the vertical's distribution mode; `plan_sale` chooses between one exclusive
sale and up to max_buyers shared ones, and its `SalePlan.next_candidates` says what to post next
after a post is rejected. Nothing here touches the database.

The exclusive/shared rule, as `plan_sale` applies it to the bids still in play:

- the exclusive option is the first exclusive bid in ranked order;
- the shared option is the first max_buyers shared bids of distinct buyers in ranked order;
- the option worth more wins (the exclusive price against the sum of the shared prices); a tie
  goes to exclusive: one delivery, one buyer to keep happy, the same money.

In auction mode "first" means "highest"; in the other modes it means first in that mode's order,
so a ping tree still prefers its top tier and compares money only between the offers it reaches.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from leads.models import DistributionMode

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Bid:
    """One contract's offer for a lead: its ping answer, or its fixed price."""

    contract_id: int
    buyer_id: int
    price: Decimal
    priority: int
    weight: int
    exclusive: bool
    expires_at: float | None = None  # epoch seconds after which the buyer no longer honours it

    def expired(self, now: float | None) -> bool:
        return now is not None and self.expires_at is not None and self.expires_at <= now


def money(amount: Decimal) -> str:
    """Return an amount as people read it: $1,234.50, -$0.50."""
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.2f}"


# --- Floor and margin ---


@dataclass(frozen=True, slots=True)
class TierFloor:
    """The vertical's lowest price for a lead of the lead's tier (Vertical.tier_floor)."""

    tier: str
    amount: Decimal

    def describe(self) -> str:
        return f"the {self.tier.capitalize()}-lead floor {money(self.amount)}"


def filter_bids(
    bids: Iterable[Bid],
    *,
    floor_by_contract: Mapping[int, Decimal],
    payout: Callable[[Decimal], Decimal],
    min_margin: Decimal,
    tier_floor: TierFloor | None = None,
    internal: Collection[int] = frozenset(),
) -> tuple[list[Bid], dict[int, str]]:
    """Drop bids below their floor or the minimum margin; say why for each one.

    A bid's floor is the higher of its contract's floor and the vertical's floor for the lead's
    tier; the reason names the one that binds. payout is the source's payout for a sale price
    (Source.payout_for): under a revenue share the margin depends on the price, so it is worked
    out per bid. `internal` contracts deliver to the company's own sales team: the lead is not
    resold, so the vertical's tier floor and minimum margin do not apply to them (their own
    floor does).
    """
    kept: list[Bid] = []
    dropped: dict[int, str] = {}
    for bid in bids:
        floor = floor_by_contract.get(bid.contract_id, ZERO)
        resold = bid.contract_id not in internal
        if (
            resold
            and tier_floor is not None
            and tier_floor.amount > floor
            and bid.price < tier_floor.amount
        ):
            dropped[bid.contract_id] = f"bid {money(bid.price)} below {tier_floor.describe()}"
            continue
        if bid.price < floor:
            dropped[bid.contract_id] = f"bid {money(bid.price)} below floor {money(floor)}"
            continue
        margin = bid.price - payout(bid.price)
        if resold and margin < min_margin:
            dropped[bid.contract_id] = (
                f"margin {money(margin)} below the minimum {money(min_margin)}"
            )
            continue
        kept.append(bid)
    return kept, dropped


# --- Order ---


def rank(
    bids: Iterable[Bid],
    *,
    mode: str,
    rotation: int = 0,
    rng: random.Random | None = None,
) -> list[Bid]:
    """Return every bid in the order the vertical's distribution mode offers it the lead.

    auction: highest price first; ties to the lower priority number, then the lower contract id.
    priority: tier by tier (1 first), highest price first within a tier.
    round_robin: by contract id, rotated by `rotation` (the caller's counter for the vertical).
    weighted: a weighted random draw without replacement, from rng (seed it to reproduce).
    """
    bids = list(bids)
    if mode == DistributionMode.AUCTION:
        return sorted(bids, key=lambda b: (-b.price, b.priority, b.contract_id))
    if mode == DistributionMode.PRIORITY:
        return sorted(bids, key=lambda b: (b.priority, -b.price, b.contract_id))
    if mode == DistributionMode.ROUND_ROBIN:
        ordered = sorted(bids, key=lambda b: b.contract_id)
        if not ordered:
            return []
        start = rotation % len(ordered)
        return ordered[start:] + ordered[:start]
    if mode == DistributionMode.WEIGHTED:
        # Not for secrets: an unseeded draw only spreads leads between buyers.
        return _weighted_order(bids, rng if rng is not None else random.Random())  # noqa: S311
    raise ValueError(f"Unknown distribution mode {mode!r}.")


def _weighted_order(bids: list[Bid], rng: random.Random) -> list[Bid]:
    # Sorting first makes the draw depend on the bids and the seed only, not on the order in
    # which ping answers happened to arrive.
    pool = sorted(bids, key=lambda b: b.contract_id)
    if any(b.weight < 1 for b in pool):
        raise ValueError("Weights must be at least 1.")
    order: list[Bid] = []
    while pool:
        # Integer weights and randrange keep the draw exact: no float rounding at the edges.
        pick = rng.randrange(sum(b.weight for b in pool))
        for index, bid in enumerate(pool):
            pick -= bid.weight
            if pick < 0:
                order.append(pool.pop(index))
                break
    return order


# --- Exclusive or shared ---


@dataclass(frozen=True)
class SalePlan:
    """What to post first, and what to post next as answers come back.

    candidates are the ranked bids with each buyer's second-best bid of the same kind
    (exclusive or shared) removed: it could add nothing the better one does not. A buyer is
    posted to at most once: once one of its contracts has been sold, failed or is in flight, its
    other bids are skipped.
    """

    exclusive: bool  # the first decision; a fallback may decide afresh (see next_candidates)
    chosen: tuple[Bid, ...]
    candidates: tuple[Bid, ...]
    max_buyers: int
    reason: str

    @property
    def value(self) -> Decimal:
        return sum((bid.price for bid in self.chosen), ZERO)

    def next_candidates(
        self,
        *,
        sold: Collection[int] = (),
        failed: Collection[int] = (),
        pending: Collection[int] = (),
        now: float | None = None,
    ) -> list[Bid]:
        """Return the bids to post now, given the contract ids sold, failed and still in flight.

        - Something exclusive sold or in flight: nothing more.
        - Something shared sold or in flight: the next shared bids of untried buyers, enough
          to fill max_buyers.
        - Nothing sold or in flight: decide afresh among the untried bids by the module's rule,
          so a rejected exclusive post falls back to the next bid of any kind. An unsold lead
          promised to no one may still go exclusive even after shared posts all failed.

        Bids that have expired by `now` are skipped. With nothing given this returns `chosen`.
        """
        by_contract = {bid.contract_id: bid for bid in self.candidates}
        unknown = sorted((set(sold) | set(failed) | set(pending)) - by_contract.keys())
        if unknown:
            raise ValueError(f"Not among this plan's candidates: contracts {unknown}.")
        sold_bids = [by_contract[c] for c in sold]
        pending_bids = [by_contract[c] for c in pending]
        committed = sold_bids + pending_bids
        if any(bid.exclusive for bid in committed):
            return []
        tried = {by_contract[c].buyer_id for c in (*sold, *failed, *pending)}
        left = [b for b in self.candidates if b.buyer_id not in tried and not b.expired(now)]
        if committed:
            room = max(self.max_buyers - len(committed), 0)
            return [bid for bid in left if not bid.exclusive][:room]
        _, chosen, _ = _decide(left, self.max_buyers)
        return list(chosen)


def plan_sale(ranked: Sequence[Bid], *, max_buyers: int) -> SalePlan:
    """Choose between one exclusive sale and up to max_buyers shared ones (see the module doc)."""
    if max_buyers < 1:
        raise ValueError("max_buyers must be at least 1.")
    seen_contracts: set[int] = set()
    seen_kinds: set[tuple[int, bool]] = set()
    candidates: list[Bid] = []
    for bid in ranked:
        if bid.contract_id in seen_contracts:
            raise ValueError(f"Contract {bid.contract_id} bids twice.")
        seen_contracts.add(bid.contract_id)
        if (bid.buyer_id, bid.exclusive) not in seen_kinds:
            seen_kinds.add((bid.buyer_id, bid.exclusive))
            candidates.append(bid)
    exclusive, chosen, reason = _decide(candidates, max_buyers)
    return SalePlan(
        exclusive=exclusive,
        chosen=chosen,
        candidates=tuple(candidates),
        max_buyers=max_buyers,
        reason=reason,
    )


def _decide(bids: Sequence[Bid], max_buyers: int) -> tuple[bool, tuple[Bid, ...], str]:
    first_exclusive = next((bid for bid in bids if bid.exclusive), None)
    shared: list[Bid] = []
    buyers: set[int] = set()
    for bid in bids:
        if len(shared) == max_buyers:
            break
        if not bid.exclusive and bid.buyer_id not in buyers:
            buyers.add(bid.buyer_id)
            shared.append(bid)
    shared_value = sum((bid.price for bid in shared), ZERO)
    plural = "s" if len(shared) != 1 else ""
    shared_words = f"shared with {len(shared)} buyer{plural} for {money(shared_value)}"
    if first_exclusive is None:
        if not shared:
            return False, (), "no bids left"
        return False, tuple(shared), f"{shared_words}; no exclusive bid"
    exclusive_words = f"exclusive for {money(first_exclusive.price)}"
    if not shared:
        return True, (first_exclusive,), f"{exclusive_words}; no shared bid"
    if first_exclusive.price >= shared_value:
        return True, (first_exclusive,), f"{exclusive_words} is worth at least {shared_words}"
    return False, tuple(shared), f"{shared_words} is worth more than {exclusive_words}"
