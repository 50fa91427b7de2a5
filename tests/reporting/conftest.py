"""A small fixed day of leads whose every figure is computed by hand in the tests.

Tuesday 2025-01-07 (UTC), vertical auto, sources A (pays $8, takes the payout back on a return)
and B (pays $5, keeps it), buyers X and Y:

  lead  received  source  status     sale (after how long)    pings (ms)             posts
  A1    10:15     A       sold       X $20 (30 s)             X bid 12, Y declined   X accepted
                                                                                   40
  A2    10:40     A       sold       X $30 (90 s)             X bid 20               X accepted
  A3    11:05     A       returned   Y $25 (60 s), returned   Y bid 30, X bid 50     X rejected
                                                                                   ("Duplicate
                                                                                   lead"), Y
                                                                                   accepted
  A4    11:20     A       unsold     -                        X declined 100, Y
                                                              timeout 1500
  A5    12:00     A       invalid    -  (no sub_id, no consent)
  A6    12:30     A       duplicate  -
  B1    10:05     B       returned   Y $40 (120 s), returned  Y bid 10               Y accepted
  B2    13:10     B       unsold     -  (no sub_id, consent)  X bid 60               X rejected
                                                                                   ("Out of area")
  B3    13:50     B       failed     -
  T1    10:30     A       sold, test X $99 (5 s)              X bid 5                X accepted

and Monday 2025-01-06: P1 09:00 A sold to X $10 after 10 s (payout $8), P2 09:30 A invalid.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache

from buyers.models import Buyer, Contract, EndpointKind
from leads.models import Lead, LeadStatus, Source, Vertical
from reporting.rollup import rollup_refresh
from reporting.services import sale_return
from routing.models import Attempt, AttemptOutcome, Sale
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFactory
from tests.routing.factories import AttemptFactory, AuctionFactory, SaleFactory

DAY = datetime(2025, 1, 7, tzinfo=UTC)
PREVIOUS_DAY = DAY - timedelta(days=1)
PERIOD = {"start": "2025-01-07", "end": "2025-01-07"}


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False
    cache.clear()


def at(day: datetime, hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return day.replace(hour=int(hours), minute=int(minutes))


def make_lead(source: Source, vertical: Vertical, received_at: datetime, status: str, **kw):
    defaults = {"sub_id": "spring", "consent": {"tcpa_text": "I agree"}}
    return LeadFactory(
        source=source, vertical=vertical, received_at=received_at, status=status, **defaults | kw
    )


def attempt(lead: Lead, contract: Contract, kind: str, outcome: str, latency=None, **kw):
    """An attempt sent a few seconds after the lead arrived (created_at is set on insert)."""
    auction = lead.auctions.first() or AuctionFactory(lead=lead)
    row = AttemptFactory(
        auction=auction,
        lead=lead,
        contract=contract,
        kind=kind,
        outcome=outcome,
        latency_ms=latency,
        **kw,
    )
    Attempt.objects.filter(pk=row.pk).update(created_at=lead.received_at + timedelta(seconds=2))
    return row


def sell(lead: Lead, contract: Contract, price: str, payout: str, after_seconds: int) -> Sale:
    sale = SaleFactory(lead=lead, contract=contract, price=Decimal(price), payout=Decimal(payout))
    sold_at = lead.received_at + timedelta(seconds=after_seconds)
    Sale.objects.filter(pk=sale.pk).update(sold_at=sold_at)
    Lead.objects.filter(pk=lead.pk).update(
        sold_at=sold_at, sale_price=Decimal(price), payout=Decimal(payout)
    )
    sale.refresh_from_db()
    return sale


@dataclass
class World:
    vertical: Vertical
    source_a: Source
    source_b: Source
    buyer_x: Buyer
    buyer_y: Buyer
    contract_x: Contract
    contract_y: Contract
    leads: dict[str, Lead]
    sales: dict[str, Sale]


def build_world() -> World:
    vertical = VerticalFactory(slug="auto", name="Auto insurance")
    source_a = SourceFactory(name="Source A", payout_amount="8.00", verticals=[vertical])
    source_b = SourceFactory(name="Source B", payout_amount="5.00", payout_reversed_on_return=False)
    buyer_x, buyer_y = BuyerFactory(company="Buyer X"), BuyerFactory(company="Buyer Y")
    contract_x = ContractFactory(buyer=buyer_x, vertical=vertical, return_window_days=7)
    contract_y = ContractFactory(buyer=buyer_y, vertical=vertical, return_window_days=7)
    ping, post = EndpointKind.PING, EndpointKind.POST
    o = AttemptOutcome
    s = LeadStatus
    leads = {
        "A1": make_lead(source_a, vertical, at(DAY, "10:15"), s.SOLD),
        "A2": make_lead(source_a, vertical, at(DAY, "10:40"), s.SOLD),
        "A3": make_lead(source_a, vertical, at(DAY, "11:05"), s.SOLD),
        "A4": make_lead(source_a, vertical, at(DAY, "11:20"), s.UNSOLD),
        "A5": make_lead(source_a, vertical, at(DAY, "12:00"), s.INVALID, sub_id="", consent={}),
        "A6": make_lead(source_a, vertical, at(DAY, "12:30"), s.DUPLICATE),
        "B1": make_lead(source_b, vertical, at(DAY, "10:05"), s.SOLD),
        "B2": make_lead(source_b, vertical, at(DAY, "13:10"), s.UNSOLD, sub_id="", consent={}),
        "B3": make_lead(source_b, vertical, at(DAY, "13:50"), s.FAILED),
        "T1": make_lead(source_a, vertical, at(DAY, "10:30"), s.SOLD, is_test=True),
        "P1": make_lead(source_a, vertical, at(PREVIOUS_DAY, "09:00"), s.SOLD),
        "P2": make_lead(source_a, vertical, at(PREVIOUS_DAY, "09:30"), s.INVALID),
    }
    cx, cy = contract_x, contract_y
    attempt(leads["A1"], cx, ping, o.BID, 12)
    attempt(leads["A1"], cy, ping, o.DECLINED, 40)
    attempt(leads["A1"], cx, post, o.ACCEPTED, 150)
    attempt(leads["A2"], cx, ping, o.BID, 20)
    attempt(leads["A2"], cx, post, o.ACCEPTED, 150)
    attempt(leads["A3"], cy, ping, o.BID, 30)
    attempt(leads["A3"], cx, ping, o.BID, 50)
    attempt(leads["A3"], cx, post, o.REJECTED, 150, reason="Duplicate lead")
    attempt(leads["A3"], cy, post, o.ACCEPTED, 150)
    attempt(leads["A4"], cx, ping, o.DECLINED, 100)
    attempt(leads["A4"], cy, ping, o.TIMEOUT, 1500)
    attempt(leads["B1"], cy, ping, o.BID, 10)
    attempt(leads["B1"], cy, post, o.ACCEPTED, 150)
    attempt(leads["B2"], cx, ping, o.BID, 60)
    attempt(leads["B2"], cx, post, o.REJECTED, 150, reason="Out of area")
    attempt(leads["T1"], cx, ping, o.BID, 5)
    attempt(leads["T1"], cx, post, o.ACCEPTED, 150)
    sales = {
        "A1": sell(leads["A1"], cx, "20.00", "8.00", 30),
        "A2": sell(leads["A2"], cx, "30.00", "8.00", 90),
        "A3": sell(leads["A3"], cy, "25.00", "8.00", 60),
        "B1": sell(leads["B1"], cy, "40.00", "5.00", 120),
        "T1": sell(leads["T1"], cx, "99.00", "8.00", 5),
        "P1": sell(leads["P1"], cx, "10.00", "8.00", 10),
    }
    for name in ("A3", "B1"):
        sale_return(
            sale=sales[name],
            reason="bad_phone",
            returned_by="test",
            now=sales[name].sold_at + timedelta(days=1),
        )
        sales[name].refresh_from_db()
    return World(
        vertical=vertical,
        source_a=source_a,
        source_b=source_b,
        buyer_x=buyer_x,
        buyer_y=buyer_y,
        contract_x=contract_x,
        contract_y=contract_y,
        leads={name: Lead.objects.get(pk=lead.pk) for name, lead in leads.items()},
        sales=sales,
    )


@pytest.fixture
def world(db) -> World:
    built = build_world()
    rollup_refresh()
    return built


def staff_user(username: str, *groups: str, is_staff: bool = True) -> User:
    user = User.objects.create_user(username, password="pw-for-tests-only-1234")
    user.is_staff = is_staff
    user.save()
    for name in groups:
        user.groups.add(Group.objects.get(name=name))
    return user


@pytest.fixture
def sales_client(client, db):
    client.force_login(staff_user("sam-sales", "Sales"))
    return client


@pytest.fixture
def ops_client(client, db):
    client.force_login(staff_user("olga-ops", "Ops"))
    return client
