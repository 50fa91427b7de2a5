"""Buyers that misbehave: slow, black-holed, erroring, malformed, huge (10 MiB) and redirecting
answers, to pings and to posts. Every lead still ends sold to the buyer that behaves, nothing is
posted twice, and the well-behaved buyer's auction is not held up past the deadline."""

from __future__ import annotations

import statistics

import pytest

from leads.models import FINAL_STATUSES, Lead, LeadStatus
from routing.models import Auction, Sale
from tests.faults import invariants
from tests.faults.conftest import PATIENT, submit
from tests.faults.harness import wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(300),
]

# Pings that bring no bid, each its own way; the auction deadline is one second.
BAD_PINGS = {
    "slow": "delay_ms=3000",
    "black-holed": "timeout=1",
    "erroring": "fail=1",
    "malformed": "malformed=1",
    "huge": "huge_kb=10240",
    "redirecting": "redirect=http://127.0.0.1:9/elsewhere",
}
# Buyers that bid more than the good one, then fail the post, each its own way.
BAD_POSTS = {
    "post erroring": "fail=1",
    "post malformed": "malformed=1",
    "post huge": "huge_kb=10240",
    "post redirecting": "redirect=http://127.0.0.1:9/elsewhere",
}


def test_misbehaving_buyers_cost_the_good_one_nothing_but_their_deadline(
    stack, market, start_simulator
):
    market.vertical.auction_timeout_ms = 1000
    market.vertical.save()
    sims = []
    for query in BAD_PINGS.values():
        sims.append(start_simulator())
        market.contract(sim=sims[-1], ping=f"bid=30&{query}")
    for query in BAD_POSTS.values():
        sims.append(start_simulator())
        market.contract(sim=sims[-1], ping="bid=25", post=query)
    good_buyer = start_simulator()
    sims.append(good_buyer)
    good = market.contract(sim=good_buyer, ping="bid=5", **PATIENT)
    stack.start_web()
    lead_ids = submit(stack, market, range(6000, 6040))
    worker = stack.start_worker(concurrency=8)

    took = wait_until(
        lambda: (
            Lead.objects.filter(pk__in=lead_ids, status__in=FINAL_STATUSES).count() == len(lead_ids)
        ),
        seconds=180,
        what="every lead routed",
        watch=[worker],
        logs=stack.logs,
    )

    result = invariants.check(lead_ids, sims, label="misbehaving buyers")
    durations = [a.duration_ms for a in Auction.objects.filter(lead_id__in=lead_ids)]
    print(
        f"[misbehaving buyers] {len(BAD_PINGS)} bad pingers and {len(BAD_POSTS)} bad posters: "
        f"{len(lead_ids)} leads routed in {took:.1f} s, run p50 {statistics.median(durations):.0f}"
        f" ms, max {max(durations)} ms (auction deadline 1000 ms, post retries included)"
    )
    assert not result.broken
    assert set(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True)) == {
        LeadStatus.SOLD
    }
    assert set(Sale.objects.filter(lead_id__in=lead_ids).values_list("contract_id", flat=True)) == {
        good.pk
    }
