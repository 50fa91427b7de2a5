"""Pings answered in the web request, their posts routed by a real Celery worker (PostgreSQL,
Redis) to the bids the pings hold, buyers on the simulator."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from buyers.models import EndpointKind, PriceModel
from exchange.models import InboundPing
from leads.models import FINAL_STATUSES, Lead, LeadStatus
from routing.models import Attempt, AttemptOutcome, Sale
from tests.workers import WORKER_FLOW, wait_until

pytestmark = WORKER_FLOW


def test_pings_then_posts_are_sold_by_a_worker_to_the_held_bids_in_order_without_a_second_ping(
    seller, market, start_simulator, start_worker
):
    picky_buyer, good_buyer, declining_buyer = (start_simulator() for _ in range(3))
    picky = market.contract(sim=picky_buyer, ping="bid=20", post="accept=0")
    good = market.contract(sim=good_buyer, ping="bid=15")
    market.contract(sim=declining_buyer, ping="decline=1")
    fixed = market.contract(price_model=PriceModel.FIXED, fixed_price=Decimal("8.00"))
    count = 10

    answers = [seller.ping({"zip_code": "10001", "state": "NY"}).json() for _ in range(count)]

    assert {(a["status"], a["payout"]) for a in answers} == {("bid", "4.00")}
    pings = InboundPing.objects.filter(pk__in=[a["ping_id"] for a in answers])
    assert {tuple(b["contract_id"] for b in p.held_bids) for p in pings} == {
        (picky.pk, good.pk, fixed.pk)
    }
    lead_ids = []
    for number, answer in enumerate(answers):
        response = seller.post(answer["ping_id"], number, state="NY")
        assert response.status_code == 202, response.content
        lead_ids.append(response.json()["id"])
    # Nothing routes in this process: the posts wait on the broker for a worker.
    assert Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.ACCEPTED).count() == count
    worker = start_worker()

    wait_until(
        lambda: Lead.objects.filter(pk__in=lead_ids, status__in=FINAL_STATUSES).count() == count,
        seconds=60,
        worker=worker,
        what="every posted lead routed",
    )

    assert Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", "payout")) == {
        (LeadStatus.SOLD, Decimal("4.00")): count
    }
    assert Counter(Sale.objects.values_list("contract_id", "price")) == {
        (good.pk, Decimal("15.00")): count
    }
    for lead_id in lead_ids:
        assert list(
            Attempt.objects.filter(lead_id=lead_id)
            .order_by("created_at", "id")
            .values_list("kind", "contract_id", "outcome")
        ) == [
            (EndpointKind.POST, picky.pk, AttemptOutcome.REJECTED),
            (EndpointKind.POST, good.pk, AttemptOutcome.ACCEPTED),
        ]
    # Each buyer was pinged once per lead (by the inbound ping), never again by the run.
    assert picky_buyer.ledger.requests == {"ping": count, "post": count}
    assert good_buyer.ledger.requests == {"ping": count, "post": count}
    assert (declining_buyer.ledger.requests["ping"], declining_buyer.ledger.requests["post"]) == (
        count,
        0,
    )
    assert set(InboundPing.objects.values_list("lead_id", flat=True)) == {
        Lead.objects.get(pk=i).pk for i in lead_ids
    }
