from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import factory
from factory.django import DjangoModelFactory

from buyers.caps import CapLimitSpec, CapUsage, period_bounds
from buyers.models import (
    Buyer,
    CapPeriod,
    Contract,
    ContractCap,
    DeliveryEndpoint,
    EndpointKind,
    PriceModel,
)
from tests.leads.factories import VerticalFactory


class BuyerFactory(DjangoModelFactory[Buyer]):
    class Meta:
        model = Buyer

    company = factory.Sequence(lambda n: f"Buyer {n} Insurance")
    time_zone = "America/Chicago"


class ContractFactory(DjangoModelFactory[Contract]):
    class Meta:
        model = Contract

    buyer = factory.SubFactory(BuyerFactory)
    vertical = factory.SubFactory(VerticalFactory)
    name = factory.Sequence(lambda n: f"Contract {n}")
    price_model = PriceModel.PING_POST
    floor_price = Decimal("5.00")

    class Params:
        # With a ping and a post endpoint: a contract that may go live (buyers/readiness.py).
        deliverable = factory.Trait(
            ping_endpoint=factory.RelatedFactory(
                "tests.buyers.factories.DeliveryEndpointFactory",
                "contract",
                kind=EndpointKind.PING,
                url="http://127.0.0.1:9100/ping",
            ),
            post_endpoint=factory.RelatedFactory(
                "tests.buyers.factories.DeliveryEndpointFactory", "contract"
            ),
        )


class ContractCapFactory(DjangoModelFactory[ContractCap]):
    class Meta:
        model = ContractCap

    contract = factory.SubFactory(ContractFactory)
    period = CapPeriod.DAY
    max_leads = 50


class DeliveryEndpointFactory(DjangoModelFactory[DeliveryEndpoint]):
    class Meta:
        model = DeliveryEndpoint

    contract = factory.SubFactory(ContractFactory)
    kind = EndpointKind.POST
    url = "http://127.0.0.1:9100/post?accept=1"


def cap_usage_at(
    period: str,
    *,
    at: datetime,
    zone: ZoneInfo,
    leads: int = 0,
    spend: str = "0",
    max_leads: int | None = None,
    max_budget: str | None = None,
    scope: str = "contract",
) -> CapUsage:
    """A cap's usage in the period (in `zone`) holding `at`: `leads` and `spend` against it."""
    limit = CapLimitSpec(
        scope=scope,
        owner_id=1,
        period=period,
        max_leads=max_leads,
        max_budget=Decimal(max_budget) if max_budget is not None else None,
    )
    start, end = period_bounds(period, at, zone)
    return CapUsage(limit, start, end, leads, Decimal(spend))
