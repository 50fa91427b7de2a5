from __future__ import annotations

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from buyers.models import EndpointKind
from routing.models import Attempt, AttemptOutcome, Auction, Sale
from tests.buyers.factories import ContractFactory
from tests.leads.factories import LeadFactory


class AuctionFactory(DjangoModelFactory[Auction]):
    class Meta:
        model = Auction

    lead = factory.SubFactory(LeadFactory)


class AttemptFactory(DjangoModelFactory[Attempt]):
    class Meta:
        model = Attempt

    auction = factory.SubFactory(AuctionFactory)
    lead = factory.SelfAttribute("auction.lead")
    contract = factory.SubFactory(
        ContractFactory, vertical=factory.SelfAttribute("..lead.vertical")
    )
    kind = EndpointKind.PING
    url = "http://127.0.0.1:9100/ping?bid=12.50"
    request_body = '{"zip_code": "60601"}'
    response_status = 200
    response_body = '{"status": "bid", "price": 12.5, "bid_id": "b-1"}'
    latency_ms = 42
    outcome = AttemptOutcome.BID
    price = Decimal("12.50")


class SaleFactory(DjangoModelFactory[Sale]):
    class Meta:
        model = Sale

    lead = factory.SubFactory(LeadFactory)
    contract = factory.SubFactory(
        ContractFactory, vertical=factory.SelfAttribute("..lead.vertical")
    )
    buyer = factory.SelfAttribute("contract.buyer")
    price = Decimal("20.00")
    payout = Decimal("8.00")
