"""The inbound ping and its post through the URL router and real partner keys."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from buyers.models import BoughtScope, CapPeriod, ContractCap
from exchange.models import InboundPing, PingStatus
from leads.models import Lead, LeadStatus
from privacy.services import consumer_erase
from routing.models import Attempt, Sale
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.exchange.conftest import Seller, sha256
from tests.leads.factories import LeadFactory, SourceFactory, api_key_for
from tests.routing.factories import SaleFactory


def test_a_ping_is_answered_with_its_id_the_sellers_payout_and_an_expiry(seller, market):
    market.contract(ping="bid=12.50", bid_valid_seconds=30)
    market.contract(ping="bid=9")

    response = seller.ping()

    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["status"] == "bid"
    assert answer["payout"] == "4.00"  # the source's fixed CPL, never the buyer's $12.50
    assert "buyer_price" not in answer
    ping = InboundPing.objects.get(pk=answer["ping_id"])
    assert [Decimal(b["price"]) for b in ping.held_bids] == [Decimal("12.50"), Decimal("9.00")]
    assert ping.expires_at <= ping.received_at + timedelta(seconds=31)
    assert ping.attempts.count() == 2
    assert ping.eligible_count == 2


def test_a_source_set_to_see_the_buyers_price_sees_it_beside_its_payout(seller, market):
    market.source.sees_buyer_price = True
    market.source.save()
    market.contract(ping="bid=12.50")

    assert seller.ping().json()["buyer_price"] == "12.50"


def test_a_ping_without_any_eligible_buyer_is_answered_no_bid(seller, market):
    answer = seller.ping().json()

    assert answer == {
        "ping_id": answer["ping_id"],
        "status": "no_bid",
        "payout": None,
        "expires_at": None,
    }


def test_a_ping_carrying_personal_data_is_refused_naming_the_field_and_not_kept(seller, market):
    market.contract()

    response = seller.ping({"zip_code": "10001", "email": "mary@example.com"})

    assert response.status_code == 400
    problem = response.json()
    assert problem["type"].endswith("/invalid-ping")
    assert "Personal data is never pinged" in problem["errors"]["fields.email"][0]
    ping = InboundPing.objects.get(pk=problem["id"])
    assert ping.status == PingStatus.INVALID
    assert "mary@example.com" not in ping.raw_body


def test_a_ping_carrying_a_field_that_is_not_pinged_is_refused_naming_it(seller, market):
    market.vertical.fields.filter(name="state").update(in_ping=False)

    response = seller.ping({"zip_code": "10001", "state": "NY"})

    assert response.status_code == 400
    assert "Not a ping field" in response.json()["errors"]["fields.state"][0]


def test_a_ping_carrying_a_consent_record_is_refused_and_kept_without_it(seller, market):
    response = seller.ping(consent={"ip": "203.0.113.7"})

    assert response.status_code == 400
    assert "consent.ip" in response.json()["errors"]
    kept = InboundPing.objects.get(pk=response.json()["id"])
    assert "203.0.113.7" not in kept.raw_body


def test_a_ping_whose_hashed_email_matches_a_recent_lead_is_a_duplicate(seller, market):
    market.vertical.duplicate_fields = ["email"]
    market.vertical.save()
    market.lead(email="mary@example.com", data={"email": "mary@example.com"})
    market.contract()

    response = seller.ping(email_sha256=sha256("mary@example.com"))

    assert response.status_code == 409
    assert response.json()["type"].endswith("/duplicate-lead")
    assert seller.ping(email_sha256=sha256("other@example.com")).status_code == 200


def test_a_ping_finds_a_lead_posted_earlier_by_its_stored_phone_hash_without_hashing_leads(
    seller, market
):
    market.vertical.duplicate_fields = ["phone"]
    market.vertical.save()
    assert seller.post(None, number=142).status_code == 202  # phone (212) 555-0142

    with CaptureQueriesContext(connection) as queries:
        response = seller.ping(phone_sha256=sha256("+12125550142"))

    assert response.status_code == 409, response.content
    assert response.json()["type"].endswith("/duplicate-lead")
    statements = [query["sql"].lower() for query in queries.captured_queries]
    # The stored hash column is compared; no lead's phone is hashed by the database.
    assert any('"phone_sha256" =' in sql for sql in statements)
    assert not any("sha256(" in sql for sql in statements)


def test_a_contract_whose_buyer_bought_the_consumer_does_not_bid_on_a_ping_naming_them(
    seller, market
):
    buyer = BuyerFactory()
    no_repeats = market.contract(
        ping="bid=30",
        buyer=buyer,
        refuse_bought_within_days=30,
        refuse_bought_scope=BoughtScope.BUYER,
    )
    other = market.contract(ping="bid=10")
    # Bought by the same buyer in another vertical: the rule looks across verticals.
    earlier = LeadFactory(email="mary@example.com", status=LeadStatus.SOLD)
    SaleFactory(lead=earlier, contract=ContractFactory(buyer=buyer, vertical=earlier.vertical))

    answer = seller.ping(email_sha256=sha256("mary@example.com")).json()

    ping = InboundPing.objects.get(pk=answer["ping_id"])
    assert [b["contract_id"] for b in ping.held_bids] == [other.pk]
    assert ping.eligible_count == 1
    refused = next(row for row in ping.explanation if row["contract_id"] == no_repeats.pk)
    assert refused["rule"] == "bought"
    assert refused["reason"].startswith("already bought by this buyer")
    assert refused["reason"].endswith("(refuses repeats within 30 days)")
    assert not ping.attempts.filter(contract=no_repeats).exists()
    # Another consumer, or a ping naming none, leaves the rule to the post: the contract bids.
    for hashes in ({"email_sha256": sha256("ann@example.com")}, {}):
        again = InboundPing.objects.get(pk=seller.ping(**hashes).json()["ping_id"])
        assert no_repeats.pk in [b["contract_id"] for b in again.held_bids]


def test_a_contract_whose_cap_is_full_does_not_bid_on_a_ping(seller, market):
    full = market.contract(ping="bid=30")
    ContractCap.objects.create(contract=full, period=CapPeriod.DAY, max_leads=0)
    market.contract(ping="bid=10")

    ping = InboundPing.objects.get(pk=seller.ping().json()["ping_id"])

    assert [b["contract_id"] for b in ping.held_bids] != [full.pk]
    assert full.pk not in [b["contract_id"] for b in ping.held_bids]
    refused = next(row for row in ping.explanation if row["contract_id"] == full.pk)
    assert refused["rule"] == "cap"


@pytest.mark.django_db(transaction=True)
def test_the_post_of_a_ping_is_sold_to_the_held_bid_without_pinging_again(seller, market):
    contract = market.contract(ping="bid=12.50")
    ping_id = seller.ping().json()["ping_id"]

    response = seller.post(ping_id, headers={"Prefer": "wait=5"})

    assert response.status_code == 201, response.content
    lead = Lead.objects.get(pk=response.json()["id"])
    assert lead.status == LeadStatus.SOLD
    assert Sale.objects.get(lead=lead).contract == contract
    assert not Attempt.objects.filter(lead=lead, kind="ping").exists()
    assert InboundPing.objects.get(pk=ping_id).lead == lead


def test_a_second_post_with_the_same_ping_id_gets_the_first_answer_again(seller, market):
    market.contract(ping="bid=12.50")
    ping_id = seller.ping().json()["ping_id"]
    first = seller.post(ping_id)

    again = seller.post(ping_id, number=2)

    assert first.status_code == 202
    assert again.status_code == 202
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert Lead.objects.filter(source=market.source).count() == 1


def test_an_unknown_ping_id_is_a_404_and_the_post_is_stored_as_refused(seller, market):
    response = seller.post("6b0e2f3c-0000-4000-8000-000000000000")

    assert response.status_code == 404
    problem = response.json()
    assert problem["type"].endswith("/ping-not-found")
    refused = Lead.objects.get(pk=problem["id"])
    assert refused.status == LeadStatus.INVALID
    assert "ping_id" in refused.raw_body


def test_another_partners_ping_id_is_a_404(seller, market, client):
    market.contract(ping="bid=12.50")
    ping_id = seller.ping().json()["ping_id"]
    outsider = SourceFactory(verticals=[market.vertical], rate_limit_per_second=1000)
    other = Seller(client, api_key_for(outsider), market.vertical.slug)

    response = other.post(ping_id)

    assert response.status_code == 404
    assert InboundPing.objects.get(pk=ping_id).lead is None


def test_an_expired_ping_is_a_410(seller, market):
    market.contract(ping="bid=12.50")
    ping_id = seller.ping().json()["ping_id"]
    InboundPing.objects.filter(pk=ping_id).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = seller.post(ping_id)

    assert response.status_code == 410
    assert response.json()["type"].endswith("/ping-expired")


def test_a_post_that_changed_a_pinged_field_is_a_409_naming_it(seller, market):
    market.contract(ping="bid=12.50")
    ping_id = seller.ping({"zip_code": "10001", "state": "NY"}).json()["ping_id"]

    response = seller.post(ping_id, zip_code="60601", state="IL")

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/ping-fields-changed")
    assert set(problem["errors"]) == {"fields.zip_code", "fields.state"}
    assert problem["errors"]["fields.zip_code"] == ['Pinged as "10001", posted as "60601".']
    # The refusal does not use the ping up: the seller may post the lead as pinged.
    assert seller.post(ping_id).status_code == 202


def test_the_post_of_a_ping_that_got_no_bid_is_a_422(seller, market):
    ping_id = seller.ping().json()["ping_id"]

    response = seller.post(ping_id)

    assert response.status_code == 422
    assert response.json()["type"].endswith("/ping-without-bid")


@pytest.mark.django_db(transaction=True)
def test_a_cap_filled_between_ping_and_post_is_enforced_at_the_post(seller, market):
    contract = market.contract(ping="bid=12.50")
    ping_id = seller.ping().json()["ping_id"]
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=0)

    response = seller.post(ping_id, headers={"Prefer": "wait=5"})

    assert response.json()["status"] == "unsold"
    assert not Sale.objects.filter(contract=contract).exists()


def test_an_erased_consumer_is_no_longer_found_by_a_pings_hashes(seller, market):
    market.lead(email="mary@example.com", phone="+12125550142", status=LeadStatus.UNSOLD)
    assert seller.ping(email_sha256=sha256("mary@example.com")).status_code == 409

    consumer_erase(email="mary@example.com")

    for hashes in (
        {"email_sha256": sha256("mary@example.com")},
        {"phone_sha256": sha256("+12125550142")},
    ):
        assert seller.ping(**hashes).status_code == 200


def test_erasing_a_consumer_forgets_the_hashes_their_pings_carried(seller, market):
    ping_id = seller.ping(email_sha256=sha256("mary@example.com")).json()["ping_id"]

    report = consumer_erase(email="Mary@Example.com")

    assert InboundPing.objects.get(pk=ping_id).email_sha256 == ""
    assert report.counts["exchange.InboundPing"] == 1


def test_a_ping_stores_the_client_address_a_trusted_proxy_forwards(seller, settings):
    settings.TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    seller.client.defaults["HTTP_X_FORWARDED_FOR"] = "198.51.100.23"

    seller.ping()

    assert InboundPing.objects.get().remote_ip == "198.51.100.23"
