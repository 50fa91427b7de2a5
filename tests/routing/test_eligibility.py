"""The eligibility rules, one by one, on plain data (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buyers.models import BoughtScope, CapPeriod, CriterionOperator, SourceFilter
from buyers.schedule import Schedule
from leads.geo import zip_lookup
from leads.states import US_STATES
from routing.eligibility import (
    ContractRules,
    LeadFacts,
    PastSale,
    RadiusArea,
    compile_criterion,
    evaluate,
)
from tests.buyers.factories import cap_usage_at

CHICAGO = ZoneInfo("America/Chicago")
# Tuesday 2026-11-24 15:00 UTC = 09:00 in Chicago.
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def rules(**overrides) -> ContractRules:
    base = ContractRules(contract_id=1, name="Auto TX", buyer_id=7, buyer_name="Summit Mutual")
    return replace(base, **overrides)


def lead(**overrides) -> LeadFacts:
    info = zip_lookup("75201")  # Dallas
    base = LeadFacts(
        source_id=3,
        source_name="BrightPath Media",
        received_at=NOW - timedelta(minutes=2),
        fields={
            "credit_rating": "good",
            "vehicle_year": 2015,
            "homeowner": True,
            "zip_code": "75201",
        },
        state="TX",
        zip_code="75201",
        lat=info.lat,
        lon=info.lon,
        consent={"text": "I agree to be contacted by Summit Mutual and partners."},
    )
    return replace(base, **overrides)


def verdict(contract: ContractRules, facts: LeadFacts | None = None, **kwargs):
    return evaluate(contract, facts or lead(), now=kwargs.pop("now", NOW), **kwargs)


def test_a_contract_without_rules_takes_any_lead():
    result = verdict(rules())
    assert result.eligible
    assert (result.rule, result.reason) == ("", "")


def test_it_names_the_pause_reason_first():
    result = verdict(
        rules(inactive_reason="contract paused: budget review", accepts_test_leads=False),
        lead(is_test=True),
    )
    assert (result.rule, result.reason) == ("status", "contract paused: budget review")


def test_it_sends_test_leads_only_to_contracts_that_accept_them():
    assert verdict(rules(), lead(is_test=True)).reason == "does not accept test leads"
    assert verdict(rules(accepts_test_leads=True), lead(is_test=True)).eligible
    assert verdict(rules(accepts_test_leads=True), lead(is_test=False)).eligible


def test_it_applies_source_allow_and_block_lists():
    allow = rules(source_filter=SourceFilter.ALLOW, source_ids=frozenset({9}))
    assert verdict(allow).reason == "source BrightPath Media is not on the allow list"
    assert verdict(replace(allow, source_ids=frozenset({3, 9}))).eligible
    block = rules(source_filter=SourceFilter.BLOCK, source_ids=frozenset({3}))
    assert verdict(block).reason == "source BrightPath Media is blocked"
    assert verdict(replace(block, source_ids=frozenset({4}))).eligible


def test_it_buys_only_inside_the_schedule_in_the_buyers_time_zone():
    weekdays = [(day, time(9), time(17)) for day in range(5)]
    open_rules = rules(schedule=Schedule.build("America/Chicago", weekdays, []))
    assert verdict(open_rules).eligible  # 09:00 Chicago
    early = verdict(open_rules, now=NOW - timedelta(minutes=1))  # 08:59 Chicago
    assert early.rule == "schedule"
    assert early.reason == "outside schedule: opens Tue 09:00 America/Chicago"


def test_it_is_closed_on_a_closed_date_whatever_the_hours():
    weekdays = [(day, time(0), time(23, 59)) for day in range(7)]
    holiday = Schedule.build("America/Chicago", weekdays, [(date(2026, 11, 24), "Staff day")])
    result = verdict(rules(schedule=holiday))
    assert result.rule == "schedule"
    assert "Staff day" in result.reason


@pytest.mark.parametrize(
    ("minutes_old", "min_age", "max_age", "reason"),
    [
        (2, None, 30, ""),
        (30, None, 30, "lead is 30 min old; buys leads younger than 30 min"),
        (45, None, 30, "lead is 45 min old; buys leads younger than 30 min"),
        (59, 60, None, "lead is 59 min old; buys leads at least 60 min old"),
        (60, 60, None, ""),
        (3 * 24 * 60, 60, None, ""),
    ],
)
def test_it_checks_the_lead_age_at_its_boundaries(minutes_old, min_age, max_age, reason):
    contract = rules(
        min_age=timedelta(minutes=min_age) if min_age is not None else None,
        max_age=timedelta(minutes=max_age) if max_age is not None else None,
    )
    result = verdict(contract, lead(received_at=NOW - timedelta(minutes=minutes_old)))
    assert result.reason == reason
    assert result.eligible is (reason == "")


def test_it_buys_in_included_states_and_never_in_excluded_ones():
    assert verdict(rules(states_in=frozenset({"TX", "OK"}))).eligible
    outside = verdict(rules(states_in=frozenset({"CA", "OR", "WA"})))
    assert outside.rule == "territory"
    assert outside.reason == "outside territory: state TX not in CA, OR, WA"
    assert verdict(rules(states_out=frozenset({"TX"}))).reason == "state TX is excluded"


def test_it_buys_in_listed_zips_and_never_in_excluded_ones():
    listed = rules(zips_in=frozenset({"75201", "75202"}))
    assert verdict(listed).eligible
    assert verdict(listed, lead(zip_code="73301")).reason == (
        "outside territory: ZIP 73301 not in its 2 ZIPs"
    )
    assert verdict(rules(zips_out=frozenset({"75201"}))).reason == "ZIP 75201 is excluded"


def test_include_rules_are_alternatives_and_exclusions_win():
    contract = rules(states_in=frozenset({"OK"}), zips_in=frozenset({"75201"}))
    assert verdict(contract).eligible
    assert not verdict(replace(contract, zips_out=frozenset({"75201"}))).eligible


def test_it_measures_radius_in_miles_from_the_centre_zip():
    denver = zip_lookup("80202")
    area = RadiusArea("80202", denver.lat, denver.lon, 100)
    springs = zip_lookup("80903")  # Colorado Springs, about 64 miles away
    near = lead(state="CO", zip_code="80903", lat=springs.lat, lon=springs.lon)
    assert verdict(rules(radius_in=(area,)), near).eligible
    assert not verdict(rules(radius_in=(replace(area, miles=60),)), near).eligible
    far = verdict(rules(radius_in=(area,)))  # Dallas
    assert far.reason.startswith("outside territory: ")
    assert far.reason.endswith("mi from 80202, beyond 100 mi")
    excluded = verdict(rules(radius_out=(area,)), near)
    assert excluded.reason == "64 mi from 80202, inside the excluded 100 mi"


def test_it_cannot_place_a_lead_without_a_location_in_a_radius():
    denver = zip_lookup("80202")
    contract = rules(radius_in=(RadiusArea("80202", denver.lat, denver.lon, 50),))
    result = verdict(contract, lead(lat=None, lon=None, zip_code="", state=""))
    assert result.reason == "outside territory: no known location for a radius check"


@pytest.mark.parametrize(
    ("field", "operator", "value", "lead_value", "eligible"),
    [
        ("credit_rating", "eq", "good", "Good", True),
        ("credit_rating", "eq", "excellent", "good", False),
        ("credit_rating", "ne", "poor", "good", True),
        ("credit_rating", "ne", "poor", None, True),
        ("credit_rating", "in", "excellent, good", "good", True),
        ("credit_rating", "in", "excellent, good", "fair", False),
        ("credit_rating", "not_in", "poor, fair", "good", True),
        ("credit_rating", "not_in", "poor, fair", "poor", False),
        ("vehicle_year", "gt", "2015", 2015, False),
        ("vehicle_year", "gte", "2015", 2015, True),
        ("vehicle_year", "lt", "2015", "2014", True),
        ("vehicle_year", "lte", "2015", 2016, False),
        ("vehicle_year", "between", "2005, 2015", 2005, True),
        ("vehicle_year", "between", "2005, 2015", 2015, True),
        ("vehicle_year", "between", "2005, 2015", 2016, False),
        ("vehicle_year", "gte", "2005", "not a year", False),
        ("vehicle_year", "gte", "2005", None, False),
        ("homeowner", "eq", "true", True, True),
        ("homeowner", "eq", "yes", True, True),
        ("homeowner", "eq", "true", False, False),
        ("monthly_bill", "eq", "100", "100.00", True),
        ("sub_id", "exists", "", "abc", True),
        ("sub_id", "exists", "", "  ", False),
        ("sub_id", "missing", "", None, True),
        ("sub_id", "missing", "", "abc", False),
        ("phone", "regex", r"^\+1(312|872)", "+13125550100", True),
        ("phone", "regex", r"^\+1(312|872)", "+12125550100", False),
    ],
)
def test_it_checks_each_criterion_operator(field, operator, value, lead_value, eligible):
    criterion = compile_criterion(field, operator, value)
    fields = {} if lead_value is None else {field: lead_value}
    result = verdict(rules(criteria=(criterion,)), lead(fields=fields))
    assert result.eligible is eligible
    if not eligible:
        assert result.rule == "criteria"
        assert field in result.reason


def test_it_explains_a_failed_criterion_in_plain_words():
    criterion = compile_criterion("credit_rating", CriterionOperator.IN, "excellent, good")
    result = verdict(rules(criteria=(criterion,)), lead(fields={"credit_rating": "poor"}))
    assert result.reason == "credit_rating is 'poor', needs credit_rating in excellent, good"
    missing = verdict(rules(criteria=(criterion,)), lead(fields={}))
    assert missing.reason == "credit_rating is missing (needs credit_rating in excellent, good)"


@pytest.mark.parametrize(
    ("field", "operator", "value", "reason"),
    [
        ("tier", "in", "hot, warm", "tier is 'qualified', needs tier in hot, warm"),
        ("tier", "eq", "Qualified", ""),
        ("tier", "not_in", "cold", ""),
        ("score", "gte", "70", "score is '55', needs score ≥ 70"),
        ("score", "between", "50, 60", ""),
    ],
)
def test_a_contract_may_buy_by_the_leads_score_or_tier(field, operator, value, reason):
    facts = lead(fields={**lead().fields, "score": 55, "tier": "qualified"})

    result = verdict(rules(criteria=(compile_criterion(field, operator, value),)), facts)

    assert (result.eligible, result.reason) == (not reason, reason)
    if reason:
        assert result.rule == "criteria"


@pytest.mark.parametrize(
    ("field", "operator", "value"), [("tier", "in", "hot"), ("score", "gte", "1")]
)
def test_an_unscored_lead_is_refused_by_a_score_criterion_saying_it_has_no_score(
    field, operator, value
):
    criterion = compile_criterion(field, operator, value)

    result = verdict(rules(criteria=(criterion,)))

    assert result.reason == f"the lead has no score (needs {criterion.text})"


def test_all_criteria_must_hold():
    criteria = (
        compile_criterion("credit_rating", "in", "excellent, good"),
        compile_criterion("vehicle_year", "gte", "2018"),
    )
    result = verdict(rules(criteria=criteria))
    assert result.reason == "vehicle_year is '2015', needs vehicle_year ≥ 2018"


def test_it_requires_consent_that_names_the_buyer_when_asked():
    contract = rules(consent_names=("summit mutual", "summit"))
    assert verdict(contract).eligible
    other = lead(consent={"text": "I agree to be contacted by Acme Insurance."})
    assert verdict(contract, other).reason == "consent does not name Summit Mutual"
    listed = lead(consent={"text": "See partners.", "sellers": ["Summit"]})
    assert verdict(contract, listed).eligible


def test_it_matches_the_buyers_name_in_consent_as_whole_words():
    contract = rules(buyer_name="Ace", consent_names=("ace",))
    place = lead(consent={"text": "I agree to be contacted by Solar Place Inc."})
    assert verdict(contract, place).reason == "consent does not name Ace"
    assert verdict(contract, lead(consent={"text": "Calls from ACE, or its partners."})).eligible


def test_it_requires_a_consent_certificate_when_asked():
    contract = rules(requires_certificate=True)
    assert verdict(contract).reason == "no consent certificate (TrustedForm or Jornaya)"
    certified = lead(consent={"trustedform_cert_url": "https://cert.trustedform.com/abc"})
    assert verdict(contract, certified).eligible
    assert verdict(contract, lead(consent={"jornaya_leadid": "LEAD-1"})).eligible


def test_it_refuses_a_consumer_the_buyer_bought_recently():
    sales = [PastSale(contract_id=2, buyer_id=7, sold_at=NOW - timedelta(days=3))]
    buyer_wide = rules(bought_within=timedelta(days=30), bought_scope=BoughtScope.BUYER)
    result = verdict(buyer_wide, past_sales=sales)
    assert result.rule == "bought"
    assert (
        result.reason == "already bought by this buyer 3 days ago (refuses repeats within 30 days)"
    )
    # Another contract of the same buyer bought it: only the buyer-wide rule minds.
    assert verdict(
        replace(buyer_wide, bought_scope=BoughtScope.CONTRACT), past_sales=sales
    ).eligible
    # Outside the window, or another buyer's purchase: eligible.
    assert verdict(replace(buyer_wide, bought_within=timedelta(days=2)), past_sales=sales).eligible
    assert verdict(replace(buyer_wide, buyer_id=8), past_sales=sales).eligible


def usage(period, **counts):
    return cap_usage_at(period, at=NOW, zone=CHICAGO, **counts)


def test_it_stops_at_a_full_count_cap():
    assert verdict(rules(), usage=[usage(CapPeriod.DAY, leads=49, max_leads=50)]).eligible
    full = verdict(rules(), usage=[usage(CapPeriod.DAY, leads=50, max_leads=50)])
    assert (full.rule, full.reason) == ("cap", "daily cap 50/50 reached")


def test_it_stops_when_the_budget_has_no_room_for_the_contracts_price():
    contract = rules(price_hint=Decimal("25.00"))
    weekly = usage(CapPeriod.WEEK, spend="975.00", max_budget="1000")
    assert verdict(contract, usage=[weekly]).eligible
    tight = usage(CapPeriod.WEEK, spend="975.01", max_budget="1000")
    result = verdict(contract, usage=[tight])
    assert result.reason == "weekly budget $975.01 of $1,000.00 spent, $24.99 left"


def test_it_names_a_buyer_wide_cap_as_the_buyers():
    full = usage(CapPeriod.MONTH, leads=200, max_leads=200, scope="buyer")
    assert verdict(rules(), usage=[full]).reason == "buyer's monthly cap 200/200 reached"


def test_it_reports_the_first_failing_rule_in_order():
    contract = rules(
        states_in=frozenset({"CA"}),
        criteria=(compile_criterion("credit_rating", "eq", "excellent"),),
    )
    assert verdict(contract).rule == "territory"
    full = usage(CapPeriod.DAY, leads=5, max_leads=5)
    assert verdict(replace(contract, states_in=frozenset()), usage=[full]).rule == "criteria"


@given(
    included=st.frozensets(st.sampled_from(US_STATES), max_size=6),
    excluded=st.frozensets(st.sampled_from(US_STATES), max_size=3),
    zips_in=st.frozensets(st.sampled_from(["75201", "10001", "60601"]), max_size=2),
    state=st.sampled_from(US_STATES),
    zip_code=st.sampled_from(["75201", "10001", "60601", "94105"]),
)
def test_territory_includes_are_alternatives_and_exclusions_always_win(
    included, excluded, zips_in, state, zip_code
):
    contract = rules(states_in=included, states_out=excluded, zips_in=zips_in)
    facts = lead(state=state, zip_code=zip_code, lat=None, lon=None)
    inside = not (included or zips_in) or state in included or zip_code in zips_in
    assert verdict(contract, facts).eligible is (state not in excluded and inside)


@given(
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.decimals(allow_nan=False, allow_infinity=False, places=2),
        st.text(max_size=12),
    ),
    operator=st.sampled_from(CriterionOperator.values),
)
def test_a_criterion_never_raises_and_explains_every_refusal(value, operator):
    argument = {"between": "1, 10", "exists": "", "missing": "", "regex": r"^\d+$"}.get(
        operator, "5"
    )
    criterion = compile_criterion("field", operator, argument)
    result = verdict(rules(criteria=(criterion,)), lead(fields={"field": value}))
    assert result.eligible or (result.rule == "criteria" and "field" in result.reason)
