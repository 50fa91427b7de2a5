"""explain(lead): contracts compiled from the database, evaluated in a fixed number of queries."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.urls import reverse

from buyers.models import (
    BoughtScope,
    BuyerCap,
    CapPeriod,
    ClosedDate,
    ContractCap,
    ContractStatus,
    FieldCriterion,
    PriceModel,
    ScheduleWindow,
    SourceFilter,
    TerritoryKind,
    TerritoryMode,
    TerritoryRule,
)
from buyers.services import buyer_touch, cap_counters_seed, cap_reserve, contract_touch
from leads.models import LeadStatus
from routing import selectors
from routing.models import SaleStatus
from routing.selectors import delivery_setup, eligible_contracts, explain, vertical_rules
from tests.buyers.factories import BuyerFactory, ContractFactory
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFactory
from tests.routing.factories import SaleFactory

pytestmark = pytest.mark.django_db

# Tuesday 2026-11-24 15:00 UTC = 09:00 in Chicago.
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture
def vertical():
    return VerticalFactory(slug="auto-insurance")


@pytest.fixture
def dallas_lead(vertical):
    return LeadFactory(
        vertical=vertical,
        zip_code="75201",
        state="TX",
        received_at=NOW - timedelta(minutes=1),
        data={"credit_rating": "good", "vehicle_year": 2016, "zip_code": "75201", "state": "TX"},
        consent={"text": "I agree to be called by Summit Mutual."},
    )


def reasons(lead, now=NOW) -> dict[str, str]:
    return {v.contract_name: v.reason or "eligible" for v in explain(lead, now=now)}


def test_it_explains_every_contract_of_the_vertical_from_the_database(vertical, dallas_lead):
    chicago = BuyerFactory(company="Summit Mutual", time_zone="America/Chicago")
    open_contract = ContractFactory(buyer=chicago, vertical=vertical, name="Open")
    paused = ContractFactory(
        vertical=vertical, name="Paused", status=ContractStatus.PAUSED, paused_reason="budget"
    )
    west = ContractFactory(vertical=vertical, name="West")
    TerritoryRule.objects.create(contract=west, kind=TerritoryKind.STATES, values="CA\nOR\nWA")
    picky = ContractFactory(vertical=vertical, name="Picky")
    FieldCriterion.objects.create(
        contract=picky, field="credit_rating", operator="eq", value="excellent"
    )
    early = ContractFactory(buyer=chicago, vertical=vertical, name="Late opener")
    for day in range(5):
        ScheduleWindow.objects.create(
            contract=early, weekday=day, opens_at=time(10), closes_at=time(18)
        )
    county = ContractFactory(vertical=vertical, name="Dallas County only")
    FieldCriterion.objects.create(
        contract=county, field="county", operator="eq", value="Dallas County"
    )
    ContractFactory(name="Another vertical")

    assert reasons(dallas_lead) == {
        "Open": "eligible",
        "Paused": "contract paused: budget",
        "West": "outside territory: state TX not in CA, OR, WA",
        "Picky": "credit_rating is 'good', needs credit_rating = excellent",
        "Late opener": "outside schedule: opens Tue 10:00 America/Chicago",
        "Dallas County only": "eligible",  # county comes from the ZIP's offline data
    }
    assert [v.contract_id for v in eligible_contracts(dallas_lead, now=NOW)] == [
        open_contract.pk,
        county.pk,
    ]
    assert paused.pk in {v.contract_id for v in explain(dallas_lead, now=NOW)}


def test_criteria_read_the_score_and_tier_intake_stored_on_the_lead(vertical, dallas_lead):
    hot_only = ContractFactory(vertical=vertical, name="Hot only")
    FieldCriterion.objects.create(contract=hot_only, field="tier", operator="in", value="hot")
    picky = ContractFactory(vertical=vertical, name="Score 70 up")
    FieldCriterion.objects.create(contract=picky, field="score", operator="gte", value="70")
    dallas_lead.score, dallas_lead.tier = 72, "warm"

    assert reasons(dallas_lead) == {
        "Hot only": "tier is 'warm', needs tier in hot",
        "Score 70 up": "eligible",
    }
    dallas_lead.score, dallas_lead.tier = None, ""
    assert reasons(dallas_lead)["Hot only"] == "the lead has no score (needs tier in hot)"


def test_it_honours_closed_dates_in_the_buyers_time_zone(vertical, dallas_lead):
    contract = ContractFactory(vertical=vertical, name="Holiday", buyer=BuyerFactory())
    ClosedDate.objects.create(contract=contract, date=date(2026, 11, 24), note="Staff day")
    assert "Staff day" in reasons(dallas_lead)["Holiday"]
    assert reasons(dallas_lead, now=NOW + timedelta(days=1))["Holiday"] == "eligible"


def test_it_applies_source_lists_and_test_leads(vertical, dallas_lead):
    allow = ContractFactory(vertical=vertical, name="Allow", source_filter=SourceFilter.ALLOW)
    allow.sources.add(SourceFactory())
    block = ContractFactory(vertical=vertical, name="Block", source_filter=SourceFilter.BLOCK)
    block.sources.add(dallas_lead.source)
    assert reasons(dallas_lead) == {
        "Allow": f"source {dallas_lead.source.name} is not on the allow list",
        "Block": f"source {dallas_lead.source.name} is blocked",
    }
    test_lead = LeadFactory(vertical=vertical, is_test=True, received_at=NOW)
    ContractFactory(vertical=vertical, name="Tester", accepts_test_leads=True)
    assert reasons(test_lead)["Tester"] == "eligible"


def test_it_measures_a_radius_from_offline_zip_coordinates(vertical):
    contract = ContractFactory(vertical=vertical, name="Front Range")
    TerritoryRule.objects.create(
        contract=contract, kind=TerritoryKind.RADIUS, values="80202", radius_miles=100
    )
    springs = LeadFactory(vertical=vertical, zip_code="80903", state="CO", received_at=NOW)
    miami = LeadFactory(vertical=vertical, zip_code="33101", state="FL", received_at=NOW)
    assert reasons(springs)["Front Range"] == "eligible"
    assert reasons(miami)["Front Range"].endswith("mi from 80202, beyond 100 mi")


def test_it_refuses_a_consumer_the_buyer_already_bought(vertical, dallas_lead):
    buyer = BuyerFactory()
    contract = ContractFactory(
        buyer=buyer,
        vertical=vertical,
        name="No repeats",
        refuse_bought_within_days=30,
        refuse_bought_scope=BoughtScope.BUYER,
    )
    earlier = LeadFactory(vertical=vertical, email=dallas_lead.email, status=LeadStatus.SOLD)
    sale = SaleFactory(lead=earlier, contract=ContractFactory(buyer=buyer, vertical=vertical))
    type(sale).objects.filter(pk=sale.pk).update(sold_at=NOW - timedelta(days=2))
    assert reasons(dallas_lead)["No repeats"].startswith("already bought by this buyer 2 days ago")
    type(sale).objects.filter(pk=sale.pk).update(status=SaleStatus.RETURNED)
    assert reasons(dallas_lead)["No repeats"] == "eligible"
    # A post in flight for the same consumer counts too: its reservation is held.
    in_flight = LeadFactory(vertical=vertical, phone=dallas_lead.phone, email="other@example.com")
    reserved = cap_reserve(lead=in_flight, contract=contract, price=Decimal("20"), now=NOW)
    assert reserved.pk
    assert reasons(dallas_lead)["No repeats"].startswith("already bought by this buyer 0 min ago")
    refused = cap_reserve(lead=dallas_lead, contract=contract, price=Decimal("20"), now=NOW)
    assert refused.reason == "already bought by this buyer (refuses repeats within 30 days)"


def test_it_stops_at_a_reached_cap_and_says_which(vertical, dallas_lead):
    buyer = BuyerFactory(time_zone="America/Chicago")
    contract = ContractFactory(
        buyer=buyer,
        vertical=vertical,
        name="Capped",
        price_model=PriceModel.FIXED,
        fixed_price=Decimal("20"),
    )
    ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=2)
    for _ in range(2):
        reserved = cap_reserve(
            lead=LeadFactory(vertical=vertical), contract=contract, price=Decimal("20"), now=NOW
        )
        assert reserved.pk
    assert reasons(dallas_lead)["Capped"] == "daily cap 2/2 reached"
    # A buyer-wide budget counts across the buyer's contracts.
    other = ContractFactory(
        buyer=buyer, vertical=vertical, name="Sibling", floor_price=Decimal("5")
    )
    weekly = BuyerCap.objects.create(buyer=buyer, period=CapPeriod.WEEK, max_budget=Decimal("42"))
    # The admin seeds a new cap's counter from this period's earlier sales.
    cap_counters_seed(caps=[weekly], now=NOW)
    assert (
        reasons(dallas_lead)["Sibling"]
        == "buyer's weekly budget $40.00 of $42.00 spent, $2.00 left"
    )
    assert other.pk


def test_it_reads_the_rules_in_a_fixed_number_of_queries(
    vertical, dallas_lead, django_assert_max_num_queries
):
    def contracts_with_every_rule(count: int) -> None:
        for _ in range(count):
            contract = ContractFactory(vertical=vertical, refuse_bought_within_days=10)
            ContractCap.objects.create(contract=contract, period=CapPeriod.DAY, max_leads=5)
            BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.MONTH, max_leads=50)
            TerritoryRule.objects.create(
                contract=contract, mode=TerritoryMode.EXCLUDE, kind="states", values="AK"
            )
            FieldCriterion.objects.create(contract=contract, field="x", operator="missing")
            ScheduleWindow.objects.create(
                contract=contract, weekday=1, opens_at=time(0), closes_at=time(23, 59)
            )
            ClosedDate.objects.create(contract=contract, date=date(2026, 12, 25))

    contracts_with_every_rule(3)
    with django_assert_max_num_queries(14) as few:
        assert len(explain(dallas_lead, now=NOW)) == 3
    contracts_with_every_rule(30)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(explain(dallas_lead, now=NOW)) == 33


def test_it_reuses_compiled_rules_until_a_contract_or_buyer_changes(vertical, settings):
    contract = ContractFactory(vertical=vertical)
    settings.ELIGIBILITY_RULES_TTL = 60
    first = vertical_rules(vertical.pk)
    assert vertical_rules(vertical.pk) is first
    contract_touch(contract_id=contract.pk)  # what the admin does when a part is saved
    second = vertical_rules(vertical.pk)
    assert second is not first
    buyer_touch(buyer_id=contract.buyer_id)
    third = vertical_rules(vertical.pk)
    assert third is not second
    ContractFactory(vertical=vertical)
    assert len(vertical_rules(vertical.pk).rules) == 2


def test_a_change_made_outside_the_admin_is_seen_within_the_ttl(vertical, settings):
    contract = ContractFactory(vertical=vertical)
    settings.ELIGIBILITY_RULES_TTL = 60
    first = vertical_rules(vertical.pk)
    TerritoryRule.objects.create(contract=contract, kind=TerritoryKind.STATES, values="CA")
    assert vertical_rules(vertical.pk) is first
    settings.ELIGIBILITY_RULES_TTL = 0
    assert vertical_rules(vertical.pk).rules[0].states_in == frozenset({"CA"})


def test_saving_a_part_on_its_own_admin_page_recompiles_the_vertical(
    admin_client, vertical, settings
):
    contract = ContractFactory(vertical=vertical)
    settings.ELIGIBILITY_RULES_TTL = 60
    first = vertical_rules(vertical.pk)
    response = admin_client.post(
        reverse("admin:buyers_territoryrule_add"),
        {"contract": contract.pk, "mode": "include", "kind": "states", "values": "CA"},
        secure=True,
    )
    assert response.status_code == 302
    rules = vertical_rules(vertical.pk)
    assert rules is not first
    assert rules.rules[0].states_in == frozenset({"CA"})


def test_the_lead_page_shows_the_explanation_table(admin_client, vertical, dallas_lead):
    ContractFactory(vertical=vertical, name="West coast")
    TerritoryRule.objects.create(
        contract=vertical.contracts.get(), kind=TerritoryKind.STATES, values="CA"
    )
    url = reverse("admin:leads_lead_change", args=[dallas_lead.pk])
    page = admin_client.get(url, secure=True).content.decode()
    assert "Eligibility if it were routed now" in page
    assert "West coast" in page
    assert "outside territory: state TX not in CA" in page
    assert "0 of 1 contracts eligible" in page


@pytest.mark.django_db(transaction=True)
def test_threads_that_find_the_rules_missing_together_load_them_once(vertical, settings):
    for _ in range(3):
        ContractFactory(vertical=vertical)
    settings.ELIGIBILITY_RULES_TTL = 60
    threads = 8
    start = threading.Barrier(threads)
    rules, setups = [], []

    def route_one() -> None:  # what each of a cold web worker's threads does first
        start.wait()
        try:
            rules.append(vertical_rules(vertical.pk))
            setups.append(delivery_setup(vertical, [])[1])
        finally:
            connection.close()

    with (
        mock.patch.object(
            selectors, "compile_contract", wraps=selectors.compile_contract
        ) as compiled,
        mock.patch.object(selectors, "_load_delivery", wraps=selectors._load_delivery) as loaded,
    ):
        running = [threading.Thread(target=route_one) for _ in range(threads)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()

    assert len(rules) == len(setups) == threads
    assert compiled.call_count == 3  # each contract once, not once per thread
    assert loaded.call_count == 1
    assert all(r is rules[0] for r in rules)
