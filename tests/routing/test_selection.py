"""Floor and margin, the four distribution modes, and exclusive or shared sales (no database)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leads.models import DistributionMode
from routing.selection import Bid, TierFloor, filter_bids, money, plan_sale, rank

PROPERTY_SETTINGS = settings(deadline=None, derandomize=True, database=None)
MODES = list(DistributionMode.values)


def bid(
    contract_id: int,
    price: str | int = 10,
    *,
    buyer_id: int | None = None,
    priority: int = 1,
    weight: int = 1,
    exclusive: bool = True,
    expires_at: float | None = None,
) -> Bid:
    return Bid(
        contract_id=contract_id,
        buyer_id=contract_id if buyer_id is None else buyer_id,
        price=Decimal(str(price)),
        priority=priority,
        weight=weight,
        exclusive=exclusive,
        expires_at=expires_at,
    )


def shared(contract_id: int, price: str | int = 10, **kwargs) -> Bid:
    return bid(contract_id, price, exclusive=False, **kwargs)


def ids(bids) -> list[int]:
    return [b.contract_id for b in bids]


# --- Floor and margin ---


def fixed_payout(amount: str):
    return lambda _price: Decimal(amount)


def filtered(
    bids: list[Bid],
    *,
    floors: Mapping[int, str | Decimal] | None = None,
    payout: str | Callable[[Decimal], Decimal] = "0",
    min_margin: str = "0",
    tier_floor: TierFloor | None = None,
) -> tuple[list[Bid], dict[int, str]]:
    """`filter_bids` with each contract's floor, a fixed payout (or a payout rule) and the
    minimum margin in dollars: no floor, no payout and no margin unless named."""
    return filter_bids(
        bids,
        floor_by_contract={contract: Decimal(floor) for contract, floor in (floors or {}).items()},
        payout=fixed_payout(payout) if isinstance(payout, str) else payout,
        min_margin=Decimal(min_margin),
        tier_floor=tier_floor,
    )


def test_it_drops_a_bid_below_its_contracts_floor_and_says_so():
    kept, dropped = filtered([bid(1, "3.00"), bid(2, "5.00")], floors={1: "5.00", 2: "5.00"})
    assert ids(kept) == [2]
    assert dropped == {1: "bid $3.00 below floor $5.00"}


def test_it_drops_a_bid_whose_margin_over_the_payout_is_too_small():
    kept, dropped = filtered([bid(1, "4.50"), bid(2, "5.00")], payout="4.00", min_margin="1.00")
    assert ids(kept) == [2]
    assert dropped == {1: "margin $0.50 below the minimum $1.00"}


def test_it_works_the_margin_out_per_price_under_a_revenue_share():
    def seventy_percent(price: Decimal) -> Decimal:
        return (price * Decimal("0.70")).quantize(Decimal("0.01"))

    kept, dropped = filtered(
        [bid(1, "10.00"), bid(2, "2.00")], payout=seventy_percent, min_margin="1.00"
    )
    assert ids(kept) == [1]
    assert dropped == {2: "margin $0.60 below the minimum $1.00"}


def test_it_says_a_negative_margin_with_its_sign():
    _, dropped = filtered([bid(1, "2.00")], payout="2.50")
    assert dropped == {1: "margin -$0.50 below the minimum $0.00"}


def test_it_keeps_a_bid_exactly_at_the_floor_and_exactly_at_the_margin():
    kept, dropped = filtered([bid(1, "5.00")], floors={1: "5.00"}, payout="4.00", min_margin="1.00")
    assert ids(kept) == [1]
    assert dropped == {}


def test_a_bid_under_the_verticals_floor_for_the_leads_tier_is_dropped_naming_it():
    kept, dropped = filtered(
        [bid(1, "19.99"), bid(2, "20.00"), bid(3, "12.00")],
        floors={1: "5.00", 2: "5.00", 3: "15.00"},
        tier_floor=TierFloor("hot", Decimal("20.00")),
    )
    assert ids(kept) == [2]
    assert dropped == {
        1: "bid $19.99 below the Hot-lead floor $20.00",
        3: "bid $12.00 below the Hot-lead floor $20.00",
    }


def test_the_higher_of_the_contracts_floor_and_the_tier_floor_binds_and_is_named():
    kept, dropped = filtered(
        [bid(1, "24.00"), bid(2, "26.00")],
        floors={1: "25.00", 2: "25.00"},
        tier_floor=TierFloor("warm", Decimal("10.00")),
    )
    assert ids(kept) == [2]
    assert dropped == {1: "bid $24.00 below floor $25.00"}


@PROPERTY_SETTINGS
@given(
    prices=st.lists(st.decimals(0, 100, places=2), min_size=1, max_size=10),
    contract_floor=st.decimals(0, 100, places=2),
    tier_floor=st.none() | st.decimals(0, 100, places=2),
)
def test_every_kept_bid_is_at_or_above_both_floors(prices, contract_floor, tier_floor):
    bids = [bid(n, price) for n, price in enumerate(prices, start=1)]
    kept, dropped = filtered(
        bids,
        floors=dict.fromkeys(range(1, len(bids) + 1), contract_floor),
        tier_floor=None if tier_floor is None else TierFloor("cold", tier_floor),
    )
    floor = max(contract_floor, tier_floor or Decimal(0))
    assert all(b.price >= floor for b in kept)
    assert len(kept) + len(dropped) == len(bids)
    assert all(b.price < floor for b in bids if b.contract_id in dropped)


def test_money_reads_as_dollars():
    assert money(Decimal("1234.5")) == "$1,234.50"
    assert money(Decimal("-0.5")) == "-$0.50"


# --- Order ---


def test_auction_puts_the_highest_bid_first():
    ranked = rank([bid(1, 8), bid(2, 12), bid(3, 10)], mode=DistributionMode.AUCTION)
    assert ids(ranked) == [2, 3, 1]


def test_auction_breaks_a_tie_by_priority_then_by_contract_id():
    bids = [bid(4, 10, priority=2), bid(3, 10, priority=1), bid(2, 10, priority=2), bid(1, 9)]
    assert ids(rank(bids, mode=DistributionMode.AUCTION)) == [3, 2, 4, 1]
    assert ids(rank(reversed(bids), mode=DistributionMode.AUCTION)) == [3, 2, 4, 1]


def test_priority_mode_goes_tier_by_tier_and_by_price_within_a_tier():
    bids = [
        bid(1, 30, priority=2),
        bid(2, 10, priority=1),
        bid(3, 15, priority=1),
        bid(4, 5, priority=3),
        bid(5, 15, priority=1),
    ]
    assert ids(rank(bids, mode=DistributionMode.PRIORITY)) == [3, 5, 2, 1, 4]


def test_round_robin_rotates_over_the_bids_by_contract_id():
    bids = [bid(3), bid(1), bid(2)]
    orders = [ids(rank(bids, mode=DistributionMode.ROUND_ROBIN, rotation=n)) for n in range(4)]
    assert orders == [[1, 2, 3], [2, 3, 1], [3, 1, 2], [1, 2, 3]]


def test_round_robin_ignores_price():
    bids = [bid(1, 5), bid(2, 50)]
    assert ids(rank(bids, mode=DistributionMode.ROUND_ROBIN)) == [1, 2]


def test_every_mode_ranks_nothing_as_nothing():
    for mode in MODES:
        assert rank([], mode=mode, rotation=5, rng=random.Random(1)) == []


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="Unknown distribution mode"):
        rank([bid(1)], mode="lottery")


def test_weighted_mode_with_a_seed_is_reproducible_whatever_order_the_bids_came_in():
    bids = [bid(n, weight=n) for n in range(1, 8)]
    first = rank(bids, mode=DistributionMode.WEIGHTED, rng=random.Random(42))
    again = rank(reversed(bids), mode=DistributionMode.WEIGHTED, rng=random.Random(42))
    assert first == again


def test_weighted_mode_puts_a_weight_3_bid_first_about_3_times_as_often_as_a_weight_1_bid():
    bids = [bid(1, weight=3), bid(2, weight=1), bid(3, weight=1)]
    firsts = Counter(
        rank(bids, mode=DistributionMode.WEIGHTED, rng=random.Random(seed))[0].contract_id
        for seed in range(3000)
    )
    # Expected 1800 / 600 / 600; the seeds are fixed, the bounds allow well over 4 sigma.
    for light in (2, 3):
        assert 2.4 < firsts[1] / firsts[light] < 3.6


def test_weighted_mode_refuses_a_weight_below_1():
    with pytest.raises(ValueError, match="at least 1"):
        rank([bid(1, weight=0)], mode=DistributionMode.WEIGHTED, rng=random.Random(1))


# --- Exclusive or shared ---


def test_it_sells_exclusive_when_the_exclusive_bid_beats_the_shared_ones_together():
    ranked = rank(
        [bid(1, 30), shared(2, 12), shared(3, 10), shared(4, 5)],
        mode=DistributionMode.AUCTION,
    )
    plan = plan_sale(ranked, max_buyers=2)
    assert plan.exclusive
    assert ids(plan.chosen) == [1]
    assert plan.value == Decimal("30")
    assert plan.reason == "exclusive for $30.00 is worth at least shared with 2 buyers for $22.00"


def test_it_sells_shared_when_the_shared_bids_together_are_worth_more():
    ranked = rank(
        [bid(1, 20), shared(2, 12), shared(3, 10), shared(4, 5)],
        mode=DistributionMode.AUCTION,
    )
    plan = plan_sale(ranked, max_buyers=3)
    assert not plan.exclusive
    assert ids(plan.chosen) == [2, 3, 4]
    assert plan.value == Decimal("27")
    assert plan.reason == "shared with 3 buyers for $27.00 is worth more than exclusive for $20.00"


def test_a_tie_between_exclusive_and_shared_goes_to_exclusive():
    plan = plan_sale([bid(1, 20), shared(2, 10), shared(3, 10)], max_buyers=2)
    assert plan.exclusive
    assert ids(plan.chosen) == [1]


def test_it_sells_exclusive_or_shared_when_only_one_kind_bid():
    assert ids(plan_sale([bid(1, 5), bid(2, 4)], max_buyers=3).chosen) == [1]
    only_shared = plan_sale([shared(1, 5), shared(2, 4)], max_buyers=3)
    assert not only_shared.exclusive
    assert ids(only_shared.chosen) == [1, 2]
    assert only_shared.reason == "shared with 2 buyers for $9.00; no exclusive bid"


def test_a_plan_without_bids_chooses_nothing():
    plan = plan_sale([], max_buyers=2)
    assert plan.chosen == ()
    assert plan.reason == "no bids left"
    assert plan.next_candidates() == []


def test_max_buyers_of_1_compares_the_exclusive_bid_with_the_best_shared_one():
    plan = plan_sale([shared(1, 12), bid(2, 10)], max_buyers=1)
    assert not plan.exclusive
    assert ids(plan.chosen) == [1]


def test_in_priority_mode_the_choice_follows_the_tiers_not_the_highest_price():
    ranked = rank(
        [bid(1, 10, priority=1), bid(2, 50, priority=2), shared(3, 6, priority=1)],
        mode=DistributionMode.PRIORITY,
    )
    plan = plan_sale(ranked, max_buyers=2)
    assert ids(plan.chosen) == [1]


def test_one_buyer_with_two_contracts_is_chosen_once_with_its_best_bid():
    ranked = rank(
        [shared(1, 9, buyer_id=7), shared(2, 12, buyer_id=7), shared(3, 8)],
        mode=DistributionMode.AUCTION,
    )
    plan = plan_sale(ranked, max_buyers=3)
    assert ids(plan.chosen) == [2, 3]
    assert ids(plan.candidates) == [2, 3]


def test_a_buyers_shared_bid_counts_when_its_exclusive_bid_loses():
    # Buyer 7 bids exclusive and shared; shared wins and still includes buyer 7's shared bid.
    ranked = rank(
        [bid(1, 20, buyer_id=7), shared(2, 8, buyer_id=7), shared(3, 15), shared(4, 10)],
        mode=DistributionMode.AUCTION,
    )
    plan = plan_sale(ranked, max_buyers=3)
    assert ids(plan.chosen) == [3, 4, 2]


def test_a_contract_bidding_twice_is_refused():
    with pytest.raises(ValueError, match="bids twice"):
        plan_sale([bid(1), bid(1)], max_buyers=1)


def test_max_buyers_below_1_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        plan_sale([bid(1)], max_buyers=0)


# --- Fallback after a rejected post ---


def test_with_nothing_posted_the_next_candidates_are_the_chosen_ones():
    plan = plan_sale([bid(1, 20), shared(2, 12), shared(3, 10)], max_buyers=2)
    assert plan.next_candidates() == list(plan.chosen)


def test_a_rejected_exclusive_post_falls_back_to_the_next_bid_of_any_kind():
    plan = plan_sale([bid(1, 30), bid(2, 18), shared(3, 12), shared(4, 10)], max_buyers=2)
    assert ids(plan.chosen) == [1]
    # Next: exclusive 18 against shared 12 + 10 = 22.
    assert ids(plan.next_candidates(failed={1})) == [3, 4]
    # And if buyer 3 is not shared with after all, the next exclusive bid comes back in play.
    assert ids(plan.next_candidates(failed={1, 3, 4})) == [2]


def test_a_rejected_exclusive_post_may_fall_back_to_another_exclusive_bid():
    plan = plan_sale([bid(1, 30), bid(2, 25), shared(3, 12)], max_buyers=3)
    assert ids(plan.next_candidates(failed={1})) == [2]
    assert plan.next_candidates(failed={1, 2}) == [plan.candidates[2]]
    assert plan.next_candidates(failed={1, 2, 3}) == []


def test_nothing_follows_a_sold_or_pending_exclusive_post():
    plan = plan_sale([bid(1, 30), shared(2, 12), shared(3, 10)], max_buyers=2)
    assert plan.next_candidates(sold={1}) == []
    assert plan.next_candidates(pending={1}) == []


def test_a_rejected_shared_post_falls_back_to_shared_bids_of_buyers_not_yet_sold():
    plan = plan_sale(
        [bid(1, 40), shared(2, 20), shared(3, 15), bid(4, 14), shared(5, 12), shared(6, 5)],
        max_buyers=3,
    )
    assert ids(plan.chosen) == [2, 3, 5]
    # 2 sold, 3 rejected, 5 still out: one seat left, and only a shared bid may take it.
    assert ids(plan.next_candidates(sold={2}, failed={3}, pending={5})) == [6]
    assert plan.next_candidates(sold={2}, failed={3, 6}, pending={5}) == []


def test_shared_fallback_stops_at_max_buyers_sales():
    plan = plan_sale([shared(n, 10 - n) for n in range(1, 6)], max_buyers=2)
    assert plan.next_candidates(sold={1, 2}) == []
    assert plan.next_candidates(sold={1}, pending={2}) == []
    assert ids(plan.next_candidates(sold={1}, failed={2})) == [3]


def test_a_buyer_that_was_posted_to_is_not_offered_the_lead_again_through_another_contract():
    plan = plan_sale(
        [bid(1, 30, buyer_id=7), shared(2, 12, buyer_id=7), shared(3, 10)], max_buyers=2
    )
    assert ids(plan.chosen) == [1]
    assert ids(plan.next_candidates(failed={1})) == [3]
    # The other way round: buyer 7 turned the shared lead down, so its exclusive bid is out too.
    went_shared = plan_sale(
        [bid(1, 20, buyer_id=7), shared(2, 12, buyer_id=7), shared(3, 10), shared(4, 9)],
        max_buyers=3,
    )
    assert ids(went_shared.chosen) == [2, 3, 4]
    assert went_shared.next_candidates(failed={2, 3, 4}) == []


def test_when_every_shared_post_failed_an_exclusive_bid_may_still_take_the_lead():
    plan = plan_sale([shared(1, 12), shared(2, 10), bid(3, 15)], max_buyers=2)
    assert ids(plan.chosen) == [1, 2]
    assert ids(plan.next_candidates(failed={1}, pending={2})) == []
    assert ids(plan.next_candidates(failed={1, 2})) == [3]


def test_expired_bids_are_skipped_in_fallback():
    plan = plan_sale([bid(1, 30), bid(2, 20, expires_at=100.0), bid(3, 10)], max_buyers=1)
    assert ids(plan.next_candidates(failed={1}, now=99.0)) == [2]
    assert ids(plan.next_candidates(failed={1}, now=100.0)) == [3]


def test_contracts_the_plan_does_not_know_are_refused():
    plan = plan_sale([bid(1)], max_buyers=1)
    with pytest.raises(ValueError, match=r"contracts \[9\]"):
        plan.next_candidates(failed={9})


# --- Properties ---

bids_strategy = st.lists(
    st.builds(
        Bid,
        contract_id=st.integers(min_value=1, max_value=10_000),
        buyer_id=st.integers(min_value=1, max_value=6),
        price=st.decimals(min_value=0, max_value=100, places=2),
        priority=st.integers(min_value=1, max_value=4),
        weight=st.integers(min_value=1, max_value=5),
        exclusive=st.booleans(),
    ),
    max_size=12,
    unique_by=lambda b: b.contract_id,
)


@PROPERTY_SETTINGS
@given(
    bids=bids_strategy,
    mode=st.sampled_from(MODES),
    rotation=st.integers(min_value=0, max_value=50),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_rank_returns_a_permutation_of_its_input(bids, mode, rotation, seed):
    ranked = rank(bids, mode=mode, rotation=rotation, rng=random.Random(seed))
    assert sorted(ids(ranked)) == sorted(ids(bids))
    assert set(ranked) == set(bids)


@PROPERTY_SETTINGS
@given(bids=bids_strategy)
def test_priority_mode_never_puts_a_higher_tier_before_a_lower_one(bids):
    tiers = [b.priority for b in rank(bids, mode=DistributionMode.PRIORITY)]
    assert tiers == sorted(tiers)


@PROPERTY_SETTINGS
@given(bids=bids_strategy, seed=st.integers(min_value=0, max_value=2**32))
def test_weighted_mode_with_a_fixed_seed_gives_the_same_order_twice(bids, seed):
    first = rank(bids, mode=DistributionMode.WEIGHTED, rng=random.Random(seed))
    assert rank(bids[::-1], mode=DistributionMode.WEIGHTED, rng=random.Random(seed)) == first


@PROPERTY_SETTINGS
@given(bids=bids_strategy, max_buyers=st.integers(min_value=1, max_value=4))
def test_a_plan_never_exceeds_max_buyers_nor_mixes_exclusive_with_shared(bids, max_buyers):
    plan = plan_sale(rank(bids, mode=DistributionMode.AUCTION), max_buyers=max_buyers)
    assert len(plan.chosen) <= max_buyers
    kinds = {b.exclusive for b in plan.chosen}
    assert len(kinds) <= 1
    if plan.exclusive:
        assert len(plan.chosen) == 1
    assert len({b.buyer_id for b in plan.chosen}) == len(plan.chosen)
    if bids:
        assert plan.chosen


@PROPERTY_SETTINGS
@given(
    bids=bids_strategy,
    max_buyers=st.integers(min_value=1, max_value=4),
    mode=st.sampled_from(MODES),
    answers=st.lists(st.booleans(), max_size=30),
)
def test_a_whole_fallback_run_sells_within_the_rules(bids, max_buyers, mode, answers):
    """Drive the plan as an engine would, posts answering one at a time, accepted or not."""
    plan = plan_sale(rank(bids, mode=mode, rng=random.Random(0)), max_buyers=max_buyers)
    sold: list[Bid] = []
    failed: list[Bid] = []
    pending = list(plan.chosen)
    posted = list(plan.chosen)
    outcomes = iter(answers)
    while pending:
        answer = pending.pop(0)
        (sold if next(outcomes, False) else failed).append(answer)
        more = plan.next_candidates(
            sold={b.contract_id for b in sold},
            failed={b.contract_id for b in failed},
            pending={b.contract_id for b in pending},
        )
        pending += more
        posted += more

    assert len(sold) <= max_buyers
    assert len({b.exclusive for b in sold}) <= 1
    if any(b.exclusive for b in sold):
        assert len(sold) == 1
    # A buyer is posted to once at most, so it can never be sold twice.
    assert len({b.buyer_id for b in posted}) == len(posted)
    # Nothing is left unsold while some untried bid could still have taken the lead.
    if not sold:
        assert {b.buyer_id for b in posted} == {b.buyer_id for b in bids}
