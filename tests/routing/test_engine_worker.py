"""Routing through a real Celery worker (threads pool) on PostgreSQL, Redis and the simulator.

Leads go in through the partner API and come out sold by the worker; then a worker is killed
with SIGKILL while its posts are in flight, and a fresh worker with the sweeper must finish every
lead without posting any of them twice to one buyer.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

from django.core.cache import cache

from buyers.models import (
    CapReservation,
    EndpointKind,
    ReservationStatus,
    TerritoryKind,
    TerritoryRule,
)
from leads.models import Lead, LeadStatus, PayoutModel
from leads.services import routing_enqueue
from routing.engine import INTERRUPTED_NOTE
from routing.models import Attempt, AttemptOutcome, Auction, AuctionStatus, Sale
from routing.tasks import leads_stuck_in_routing, sweep_stuck_leads
from tests.leads.factories import SourceFactory, api_key_for
from tests.outbound.receiver import receiving
from tests.workers import STALE_SECONDS, WORKER_FLOW, final_count, wait_until, worker_start

pytestmark = WORKER_FLOW

D = Decimal
CELERY_DEFAULT_QUEUE = "celery"  # no setting names another


def submission(number: int, *, zip_code: str, state: str, vertical: str) -> dict:
    return {
        "vertical": vertical,
        "fields": {
            "first_name": "Mary",
            "last_name": "Major",
            "email": f"mary.major.{number}@example.com",
            "phone": f"(212) 555-{number:04d}",
            "zip_code": zip_code,
            "state": state,
        },
    }


def test_fifty_leads_submitted_through_the_api_are_routed_by_a_worker_to_the_right_buyers(
    client, market, start_simulator, start_worker
):
    picky_buyer, new_york_buyer, national_buyer = (start_simulator() for _ in range(3))
    picky = market.contract(sim=picky_buyer, ping="bid=20", post="accept=0")
    new_york = market.contract(sim=new_york_buyer, ping="bid=15")
    TerritoryRule.objects.create(contract=new_york, kind=TerritoryKind.STATES, values="NY")
    national = market.contract(sim=national_buyer, ping="bid=12")
    api_key = api_key_for(market.source)

    lead_ids = []
    for number in range(50):
        zip_code, state = ("10001", "NY") if number % 2 else ("60601", "IL")
        response = client.post(
            "/api/v1/leads/",
            data=submission(number, vertical=market.vertical.slug, zip_code=zip_code, state=state),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {api_key}",
        )
        assert response.status_code == 202, response.content
        lead_ids.append(response.json()["id"])
    # Nothing routes in this process: the leads wait on the broker for a worker.
    assert Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.ACCEPTED).count() == 50
    worker = start_worker()

    wait_until(
        lambda: final_count(lead_ids) == 50, seconds=60, worker=worker, what="50 leads routed"
    )

    leads = Lead.objects.filter(pk__in=lead_ids)
    assert Counter(leads.values_list("status", flat=True)) == {LeadStatus.SOLD: 50}
    assert Counter(Sale.objects.values_list("contract_id", "price")) == {
        (new_york.pk, D("15.00")): 25,
        (national.pk, D("12.00")): 25,
    }
    for lead in leads:
        expected = new_york if lead.state == "NY" else national
        assert list(
            Attempt.objects.filter(lead=lead, kind=EndpointKind.POST)
            .order_by("created_at", "id")
            .values_list("contract_id", "outcome")
        ) == [(picky.pk, AttemptOutcome.REJECTED), (expected.pk, AttemptOutcome.ACCEPTED)]
        assert (lead.sale_price, lead.payout) == (
            D("15.00") if expected == new_york else D("12.00"),
            D("4.00"),
        )
    assert picky_buyer.ledger.requests == {"ping": 50, "post": 50}
    assert new_york_buyer.ledger.requests == {"ping": 25, "post": 25}
    assert national_buyer.ledger.requests == {"ping": 50, "post": 25}
    assert Auction.objects.filter(lead__in=lead_ids).count() == 50
    assert not CapReservation.objects.filter(status=ReservationStatus.HELD).exists()


def test_a_worker_tells_each_source_by_postback_only_the_money_it_may_see(
    client, market, start_simulator, routing_queue, tmp_path
):
    market.contract(sim=start_simulator(), ping="bid=20")
    private = market.source
    open_book = SourceFactory(
        verticals=[market.vertical],
        payout_model=PayoutModel.REVENUE_SHARE,
        revenue_share_percent=D("30.00"),
        sees_buyer_price=True,
    )
    with receiving() as partner:
        for number, source in enumerate((private, open_book)):
            source.postback_url = partner.url(f"/outcome/{source.pk}")
            source.save()
            response = client.post(
                "/api/v1/leads/",
                data=submission(
                    900 + number, vertical=market.vertical.slug, zip_code="60601", state="IL"
                ),
                content_type="application/json",
                HTTP_AUTHORIZATION=f"Bearer {api_key_for(source)}",
            )
            assert response.status_code == 202, response.content
        # The worker routes, and queues each postback from its own process on Celery's default
        # queue (routing_queue renames the default only in this process).
        worker = worker_start(
            tmp_path / "worker.log",
            name=f"{routing_queue}-postbacks@%h",
            queues=f"{routing_queue},{CELERY_DEFAULT_QUEUE}",
        )
        try:
            wait_until(
                lambda: len(partner.received) == 2, seconds=60, worker=worker, what="2 postbacks"
            )
        finally:
            worker.stop()

    told = {request["path"]: json.loads(request["body"]) for request in partner.received}
    assert {path: body["status"] for path, body in told.items()} == {
        f"/outcome/{private.pk}": "sold",
        f"/outcome/{open_book.pk}": "sold",
    }
    assert "buyer_price" not in told[f"/outcome/{private.pk}"]
    assert told[f"/outcome/{private.pk}"]["payout"] == "4.00"
    assert (
        told[f"/outcome/{open_book.pk}"]["payout"],
        told[f"/outcome/{open_book.pk}"]["buyer_price"],
    ) == ("6.00", "20.00")


def test_a_worker_killed_mid_post_loses_no_lead_and_posts_none_twice_to_one_buyer(
    market, start_simulator, start_worker, settings
):
    count = 8
    slow_buyer, other_buyer = start_simulator(), start_simulator()
    slow = market.contract(sim=slow_buyer, ping="bid=20", post="delay_ms=2000")
    other = market.contract(sim=other_buyer, ping="bid=10")
    lead_ids = [market.lead().pk for _ in range(count)]
    assert routing_enqueue(lead_ids) == count
    assert Lead.objects.filter(pk__in=lead_ids, status=LeadStatus.ACCEPTED).count() == count
    first = start_worker()
    wait_until(
        lambda: slow_buyer.ledger.requests["post"] == count,
        seconds=30,
        worker=first,
        what="every lead posted to the slow buyer",
    )
    first.kill()

    # Killed between sending and reading: the posts' room is still held.
    assert Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True)) == {
        LeadStatus.ROUTING: count
    }
    assert CapReservation.objects.filter(contract=slow, status=ReservationStatus.HELD).count() == (
        count
    )
    assert not Sale.objects.exists()

    second = start_worker()
    settings.ROUTING_STALE_SECONDS = STALE_SECONDS
    wait_until(
        lambda: len(leads_stuck_in_routing()) == count,
        seconds=STALE_SECONDS + 10,
        worker=second,
        what="the lost runs stale",
    )
    cache.delete("lock:sweep_stuck_leads")
    assert sweep_stuck_leads() == count
    wait_until(
        lambda: final_count(lead_ids) == count,
        seconds=30,
        worker=second,
        what="every lead finished",
    )

    assert Counter(Lead.objects.filter(pk__in=lead_ids).values_list("status", flat=True)) == {
        LeadStatus.SOLD: count
    }
    # Each lead sold once, to the buyer nobody had posted it to; never twice to one buyer.
    assert Counter(Sale.objects.values_list("lead_id", "contract_id")) == {
        (lead_id, other.pk): 1 for lead_id in lead_ids
    }
    assert set(Sale.objects.values_list("price", flat=True)) == {D("10.00")}
    assert slow_buyer.ledger.requests == {"ping": count, "post": count}
    # Pinged again by the resumed runs (bids are not kept across runs), posted to once.
    assert other_buyer.ledger.requests == {"ping": 2 * count, "post": count}
    for lead_id in lead_ids:
        assert list(
            Attempt.objects.filter(lead_id=lead_id, kind=EndpointKind.POST)
            .order_by("created_at", "id")
            .values_list("contract_id", "outcome")
        ) == [(slow.pk, AttemptOutcome.AMBIGUOUS), (other.pk, AttemptOutcome.ACCEPTED)]
        assert list(
            Auction.objects.filter(lead_id=lead_id)
            .order_by("started_at")
            .values_list("status", "note")
        ) == [
            (AuctionStatus.FAILED, INTERRUPTED_NOTE),
            (
                AuctionStatus.SOLD,
                "sold to 1 buyer for $10.00 (first plan: exclusive for $10.00; no shared bid)",
            ),
        ]
    assert not CapReservation.objects.filter(status=ReservationStatus.HELD).exists()
    assert CapReservation.objects.filter(
        contract=slow, status=ReservationStatus.RELEASED
    ).count() == (count)
