from __future__ import annotations

from decimal import Decimal

import factory
from factory.django import DjangoModelFactory

from buyers.models import (
    Buyer,
    CapPeriod,
    Contract,
    ContractCap,
    DeliveryEndpoint,
    EndpointKind,
    PriceModel,
    Team,
    TeamMember,
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


class TeamFactory(DjangoModelFactory[Team]):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"Inside sales {n}")
    existing_owner_days = 90
    claim_timeout_minutes = 15


class TeamMemberFactory(DjangoModelFactory[TeamMember]):
    """A member who works any time, with no quota and an equal share."""

    class Meta:
        model = TeamMember

    team = factory.SubFactory(TeamFactory)
    position = factory.Sequence(lambda n: n)
    name = factory.Sequence(lambda n: f"Rep {n}")
    email = factory.Sequence(lambda n: f"rep{n}@leadswitch.example")
    time_zone = "America/Chicago"
