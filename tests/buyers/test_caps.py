from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from buyers.caps import TOTAL_END, TOTAL_START, CapUsage, period_bounds
from buyers.models import (
    BuyerCap,
    CapCounter,
    CapPeriod,
    CapReservation,
    ContractCap,
    ReservationStatus,
)
from buyers.selectors import cap_usage, cap_usage_for_contracts
from buyers.services import CapRefusal, cap_commit, cap_release, cap_reserve
from tests.buyers.factories import BuyerFactory, ContractCapFactory, ContractFactory, cap_usage_at
from tests.leads.factories import LeadFactory

CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")

ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "Pacific/Honolulu",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",
    "America/Havana",
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def bounds(period: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return period_bounds(period, now, zone)


# --- period_bounds: examples ---------------------------------------------------------------


def test_an_hour_is_the_clock_hour():
    assert bounds(CapPeriod.HOUR, utc(2026, 7, 15, 14, 37, 5), CHICAGO) == (
        utc(2026, 7, 15, 14),
        utc(2026, 7, 15, 15),
    )


def test_an_hour_in_india_starts_at_half_past_utc():
    # 20:07 in Kolkata (UTC+5:30) is in the hour 20:00-21:00 local, 14:30-15:30 UTC.
    assert bounds(CapPeriod.HOUR, utc(2026, 7, 15, 14, 37), ZoneInfo("Asia/Kolkata")) == (
        utc(2026, 7, 15, 14, 30),
        utc(2026, 7, 15, 15, 30),
    )


def test_the_repeated_hour_of_a_fall_back_day_is_counted_twice():
    first = bounds(CapPeriod.HOUR, utc(2026, 11, 1, 5, 30), NEW_YORK)  # 01:30 EDT
    second = bounds(CapPeriod.HOUR, utc(2026, 11, 1, 6, 30), NEW_YORK)  # 01:30 EST
    assert first == (utc(2026, 11, 1, 5), utc(2026, 11, 1, 6))
    assert second == (utc(2026, 11, 1, 6), utc(2026, 11, 1, 7))


def test_a_day_runs_from_local_midnight_to_local_midnight():
    assert bounds(CapPeriod.DAY, utc(2026, 7, 15, 3), CHICAGO) == (
        utc(2026, 7, 14, 5),
        utc(2026, 7, 15, 5),
    )


def test_a_spring_forward_day_in_new_york_lasts_23_hours():
    start, end = bounds(CapPeriod.DAY, utc(2026, 3, 8, 12), NEW_YORK)
    assert (start, end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert end - start == timedelta(hours=23)


def test_a_fall_back_day_in_new_york_lasts_25_hours():
    start, end = bounds(CapPeriod.DAY, utc(2026, 11, 1, 12), NEW_YORK)
    assert (start, end) == (utc(2026, 11, 1, 4), utc(2026, 11, 2, 5))
    assert end - start == timedelta(hours=25)


def test_a_day_whose_midnight_does_not_exist_starts_at_its_first_instant():
    # Havana skips from 00:00 to 01:00 on 8 March 2026: the day starts at 01:00 CDT.
    havana = ZoneInfo("America/Havana")
    start, end = bounds(CapPeriod.DAY, utc(2026, 3, 8, 15), havana)
    assert (start, end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert start.astimezone(havana).hour == 1
    assert bounds(CapPeriod.DAY, utc(2026, 3, 8, 4, 59), havana)[1] == start


def test_a_week_starts_on_monday():
    wednesday = utc(2026, 7, 15, 18)
    start, end = bounds(CapPeriod.WEEK, wednesday, CHICAGO)
    assert (start, end) == (utc(2026, 7, 13, 5), utc(2026, 7, 20, 5))
    assert start.astimezone(CHICAGO).strftime("%A %H:%M") == "Monday 00:00"


def test_a_sunday_evening_belongs_to_the_week_that_began_on_monday():
    sunday_evening = utc(2026, 7, 20, 3)  # Sunday 22:00 in Chicago
    assert bounds(CapPeriod.WEEK, sunday_evening, CHICAGO)[0] == utc(2026, 7, 13, 5)


def test_a_month_runs_from_the_first_to_the_first():
    assert bounds(CapPeriod.MONTH, utc(2026, 2, 14), CHICAGO) == (
        utc(2026, 2, 1, 6),
        utc(2026, 3, 1, 6),
    )


def test_december_rolls_over_into_january_of_the_next_year():
    assert bounds(CapPeriod.MONTH, utc(2026, 12, 31, 23), CHICAGO) == (
        utc(2026, 12, 1, 6),
        utc(2027, 1, 1, 6),
    )


def test_a_month_is_counted_in_the_buyers_time_zone():
    # 03:00 UTC on 1 August is still 31 July in Chicago.
    assert bounds(CapPeriod.MONTH, utc(2026, 8, 1, 3), CHICAGO)[0] == utc(2026, 7, 1, 5)


def test_all_time_is_one_period():
    assert bounds(CapPeriod.TOTAL, utc(2026, 7, 15), CHICAGO) == (TOTAL_START, TOTAL_END)


def test_a_naive_instant_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        period_bounds(CapPeriod.DAY, datetime(2026, 7, 15), CHICAGO)  # noqa: DTZ001


def test_an_unknown_period_is_refused():
    with pytest.raises(ValueError, match="unknown cap period"):
        period_bounds("fortnight", utc(2026, 7, 15), CHICAGO)


def test_lord_howe_hours_tile_across_its_half_hour_dst_changes():
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    for change in (utc(2026, 4, 4, 15), utc(2026, 10, 3, 15, 30)):
        instant = change - timedelta(hours=2)
        while instant < change + timedelta(hours=2):
            start, end = period_bounds(CapPeriod.HOUR, instant, lord_howe)
            assert start <= instant < end
            assert period_bounds(CapPeriod.HOUR, end, lord_howe)[0] == end
            instant += timedelta(minutes=5)


# --- period_bounds: properties -------------------------------------------------------------


@cache
def offset_changes(zone_name: str) -> tuple[datetime, ...]:
    """Return the instants, 2020-2040, at which the zone's UTC offset changes."""
    zone = ZoneInfo(zone_name)
    changes = []
    day = utc(2020, 1, 1)
    offset = day.astimezone(zone).utcoffset()
    while day.year < 2041:
        following = day + timedelta(days=1)
        if following.astimezone(zone).utcoffset() != offset:
            low, high = day, following  # the change is in (low, high]: bisect to the second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            changes.append(high.replace(microsecond=0))
            offset = following.astimezone(zone).utcoffset()
        day = following
    return tuple(changes)


@st.composite
def zones_and_instants(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone, and an instant that is often within hours of one of its offset changes."""
    zone_name = draw(st.sampled_from(ZONES))
    changes = offset_changes(zone_name)
    anywhere = st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    )
    if changes and draw(st.booleans()):
        change = draw(st.sampled_from(changes))
        instant = change + timedelta(
            microseconds=draw(st.integers(-(3 * 3600 * 10**6), 3 * 3600 * 10**6))
        )
        return zone_name, instant
    return zone_name, draw(anywhere)


PERIODS = [CapPeriod.HOUR, CapPeriod.DAY, CapPeriod.WEEK, CapPeriod.MONTH, CapPeriod.TOTAL]


@settings(max_examples=400, deadline=None)
@given(
    zone_and_instant=zones_and_instants(),
    period=st.sampled_from(PERIODS),
    fraction=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_periods_contain_now_tile_time_and_are_the_same_from_any_instant_inside(
    zone_and_instant: tuple[str, datetime], period: str, fraction: float
):
    zone_name, now = zone_and_instant
    zone = ZoneInfo(zone_name)
    start, end = period_bounds(period, now, zone)
    assert start.tzinfo is not None
    assert start <= now < end
    span = (end - start) // timedelta(microseconds=1)
    inside = start + timedelta(microseconds=int(span * fraction))  # floored: never `end`
    assert period_bounds(period, inside, zone) == (start, end)
    assert period_bounds(period, end - timedelta(microseconds=1), zone) == (start, end)
    if period != CapPeriod.TOTAL:
        assert period_bounds(period, end, zone)[0] == end
        assert period_bounds(period, start - timedelta(microseconds=1), zone)[1] == start


# --- CapUsage --------------------------------------------------------------------------------


def usage_of(*, period: str = CapPeriod.DAY, **counts: Any) -> CapUsage:
    return cap_usage_at(period, at=utc(2026, 7, 15), zone=CHICAGO, **counts)


def test_a_count_cap_blocks_only_once_full():
    assert not usage_of(leads=49, max_leads=50).blocks(Decimal("10"))
    assert usage_of(leads=50, max_leads=50).blocks(Decimal("10"))
    assert usage_of(leads=50, max_leads=50).describe() == "daily cap 50/50 reached"


def test_a_budget_cap_blocks_a_lead_that_would_overspend():
    usage = usage_of(spend="90", max_budget="100")
    assert not usage.blocks(Decimal("10"))
    assert usage.blocks(Decimal("10.01"))
    assert usage.describe() == "daily budget $90.00 of $100.00 spent, $10.00 left"
    assert usage.budget_left == Decimal("10")


def test_a_cap_with_both_limits_blocks_on_either():
    assert usage_of(leads=5, spend="0", max_leads=5, max_budget="100").blocks(Decimal("1"))
    assert usage_of(leads=0, spend="100", max_leads=5, max_budget="100").blocks(Decimal("1"))
    assert not usage_of(leads=4, spend="99", max_leads=5, max_budget="100").blocks(Decimal("1"))


def test_a_buyer_cap_says_it_is_the_buyers():
    usage = usage_of(leads=3, max_leads=3, period=CapPeriod.WEEK, scope="buyer")
    assert usage.describe() == "buyer's weekly cap 3/3 reached"
    assert usage.leads_left == 0
    assert usage_of(leads=7, max_leads=3).leads_left == 0


# --- Services: reserve, release, commit ------------------------------------------------------

# A fixed instant far from the wall clock: reservations are stamped with the real time, so the
# periods of these tests never contain them (only "a cap added mid-period" uses the real time).
NOON = datetime(2031, 6, 11, 17, tzinfo=UTC)  # Wednesday 12:00 in Chicago


@pytest.fixture
def contract():
    return ContractFactory(buyer__time_zone="America/Chicago")


def lead_for(contract):
    return LeadFactory(vertical=contract.vertical)


def reserve(contract, price: str = "10.00", now: datetime = NOON, lead=None):
    return cap_reserve(
        lead=lead or lead_for(contract), contract=contract, price=Decimal(price), now=now
    )


def counter_of(contract, period: str = CapPeriod.DAY) -> CapCounter:
    return CapCounter.objects.get(contract=contract, period=period)


@pytest.mark.django_db
def test_it_reserves_until_the_daily_count_cap_is_reached(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=3)
    reservations = [reserve(contract) for _ in range(3)]
    refusal = reserve(contract)
    assert all(isinstance(r, CapReservation) for r in reservations)
    assert all(r.status == ReservationStatus.HELD for r in reservations)
    assert isinstance(refusal, CapRefusal)
    assert refusal.reason == "daily cap 3/3 reached"
    counter = counter_of(contract)
    assert (counter.leads, counter.spend) == (3, Decimal("30.00"))
    assert counter.period_start == utc(2031, 6, 11, 5)


@pytest.mark.django_db
def test_it_reserves_until_the_budget_would_be_overspent(contract):
    ContractCapFactory(
        contract=contract, period=CapPeriod.DAY, max_leads=None, max_budget=Decimal("25")
    )
    assert isinstance(reserve(contract, "10.00"), CapReservation)
    assert isinstance(reserve(contract, "10.00"), CapReservation)
    refusal = reserve(contract, "10.00")
    assert isinstance(refusal, CapRefusal)
    assert refusal.reason == "daily budget $20.00 of $25.00 spent, $5.00 left"
    # A cheaper lead still fits.
    assert isinstance(reserve(contract, "5.00"), CapReservation)
    assert counter_of(contract).spend == Decimal("25.00")


@pytest.mark.django_db
def test_a_refusal_by_one_cap_charges_none_of_the_others(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.HOUR, max_leads=1)
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=5)
    assert isinstance(reserve(contract), CapReservation)
    refusal = reserve(contract)
    assert isinstance(refusal, CapRefusal)
    assert refusal.reason == "hourly cap 1/1 reached"
    assert counter_of(contract, CapPeriod.DAY).leads == 1
    assert CapReservation.objects.count() == 1


@pytest.mark.parametrize(
    ("period", "next_period"),
    [
        (CapPeriod.HOUR, utc(2031, 6, 11, 18)),
        (CapPeriod.DAY, utc(2031, 6, 12, 5)),  # midnight in Chicago
        (CapPeriod.WEEK, utc(2031, 6, 16, 5)),  # Monday
        (CapPeriod.MONTH, utc(2031, 7, 1, 5)),
    ],
)
@pytest.mark.django_db
def test_each_period_starts_counting_afresh(contract, period, next_period):
    ContractCapFactory(contract=contract, period=period, max_leads=1)
    assert isinstance(reserve(contract), CapReservation)
    assert isinstance(reserve(contract, now=next_period - timedelta(seconds=1)), CapRefusal)
    assert isinstance(reserve(contract, now=next_period), CapReservation)
    assert list(
        CapCounter.objects.filter(contract=contract).values_list("period_start", "leads")
    ) == [(next_period, 1), (bounds(period, NOON, CHICAGO)[0], 1)]


@pytest.mark.django_db
def test_an_all_time_cap_never_starts_afresh(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.TOTAL, max_leads=2)
    assert isinstance(reserve(contract), CapReservation)
    assert isinstance(reserve(contract, now=NOON + timedelta(days=400)), CapReservation)
    refusal = reserve(contract, now=NOON + timedelta(days=4000))
    assert isinstance(refusal, CapRefusal)
    assert refusal.reason == "all-time cap 2/2 reached"


@pytest.mark.django_db
def test_a_buyer_cap_counts_across_the_buyers_contracts():
    buyer = BuyerFactory(time_zone="America/New_York")
    first, second = ContractFactory(buyer=buyer), ContractFactory(buyer=buyer)
    BuyerCap.objects.create(buyer=buyer, period=CapPeriod.DAY, max_leads=3)
    assert isinstance(reserve(first), CapReservation)
    assert isinstance(reserve(first), CapReservation)
    assert isinstance(reserve(second), CapReservation)
    refusal = reserve(second)
    assert isinstance(refusal, CapRefusal)
    assert refusal.reason == "buyer's daily cap 3/3 reached"
    assert isinstance(reserve(first), CapRefusal)
    counter = CapCounter.objects.get(buyer=buyer)
    assert (counter.leads, counter.period_start) == (3, utc(2031, 6, 11, 4))


@pytest.mark.django_db
def test_a_contract_cap_and_its_buyers_cap_are_both_charged(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=5)
    BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.WEEK, max_budget=Decimal(50))
    reservation = reserve(contract, "20.00")
    assert isinstance(reservation, CapReservation)
    assert {(c.period, c.leads, c.spend) for c in reservation.counters.all()} == {
        (CapPeriod.DAY, 1, Decimal("20.00")),
        (CapPeriod.WEEK, 1, Decimal("20.00")),
    }


@pytest.mark.django_db
def test_a_contract_without_caps_still_gets_a_reservation(contract):
    reservation = reserve(contract)
    assert isinstance(reservation, CapReservation)
    assert reservation.status == ReservationStatus.HELD
    assert not reservation.counters.exists()
    assert not CapCounter.objects.exists()


@pytest.mark.django_db
def test_a_negative_price_is_refused(contract):
    with pytest.raises(ValueError, match="negative"):
        reserve(contract, "-1.00")


@pytest.mark.django_db
def test_releasing_gives_the_room_back(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=1)
    reservation = reserve(contract)
    assert isinstance(reserve(contract), CapRefusal)

    assert cap_release(reservation=reservation) is True

    reservation.refresh_from_db()
    assert reservation.status == ReservationStatus.RELEASED
    assert (counter_of(contract).leads, counter_of(contract).spend) == (0, Decimal("0.00"))
    assert isinstance(reserve(contract), CapReservation)


@pytest.mark.django_db
def test_a_reservation_is_released_once_and_never_after_commit(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=5)
    released, committed = reserve(contract), reserve(contract)
    assert cap_release(reservation=released) is True
    assert cap_release(reservation=released) is False
    assert cap_commit(reservation=committed) is True
    assert cap_release(reservation=committed) is False
    assert cap_commit(reservation=released) is False
    assert counter_of(contract).leads == 1


@pytest.mark.django_db
def test_committing_at_the_reserved_price_leaves_the_counters_alone(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_budget=Decimal(100))
    reservation = reserve(contract, "10.00")
    assert cap_commit(reservation=reservation) is True
    reservation.refresh_from_db()
    assert (reservation.status, reservation.price) == (ReservationStatus.COMMITTED, Decimal(10))
    assert counter_of(contract).spend == Decimal("10.00")
    assert cap_commit(reservation=reservation) is False


@pytest.mark.parametrize(("final", "spend"), [("14.50", "14.50"), ("6.00", "6.00")])
@pytest.mark.django_db
def test_committing_at_another_price_moves_spend_by_the_difference(contract, final, spend):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_budget=Decimal(100))
    BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.MONTH, max_leads=10)
    reservation = reserve(contract, "10.00")
    assert cap_commit(reservation=reservation, price=Decimal(final)) is True
    reservation.refresh_from_db()
    assert reservation.price == Decimal(final)
    assert counter_of(contract).spend == Decimal(spend)
    assert counter_of(contract).leads == 1
    assert CapCounter.objects.get(buyer=contract.buyer).spend == Decimal(spend)


@pytest.mark.django_db
def test_a_higher_final_price_may_overspend_the_budget_and_then_blocks(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_budget=Decimal(20))
    reservation = reserve(contract, "20.00")
    assert cap_commit(reservation=reservation, price=Decimal("25.00")) is True
    assert counter_of(contract).spend == Decimal("25.00")
    refusal = reserve(contract, "0.00")
    assert isinstance(refusal, CapRefusal)
    assert refusal.reason == "daily budget $25.00 of $20.00 spent, $0.00 left"


@pytest.mark.django_db
def test_reserving_twice_for_one_lead_charges_once(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=5)
    lead = lead_for(contract)
    first = reserve(contract, lead=lead)
    again = reserve(contract, lead=lead, price="12.00")
    assert isinstance(first, CapReservation)
    assert isinstance(again, CapReservation)
    assert again.pk == first.pk
    assert again.price == Decimal("10.00")
    assert counter_of(contract).leads == 1
    cap_commit(reservation=first)
    assert reserve(contract, lead=lead).pk == first.pk
    assert counter_of(contract).leads == 1


@pytest.mark.django_db
def test_a_released_reservation_does_not_stop_a_new_one_for_the_same_lead(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=5)
    lead = lead_for(contract)
    first = reserve(contract, lead=lead)
    cap_release(reservation=first)
    second = reserve(contract, lead=lead)
    assert isinstance(second, CapReservation)
    assert second.pk != first.pk
    assert counter_of(contract).leads == 1


@pytest.mark.django_db
def test_a_cap_added_mid_period_counts_what_was_bought_earlier_in_it(contract):
    # The real clock: the morning's reservations are stamped with it.
    morning = [cap_reserve(lead=lead_for(contract), contract=contract, price=Decimal(10))]
    morning.append(cap_reserve(lead=lead_for(contract), contract=contract, price=Decimal(10)))
    cap_commit(reservation=morning[0])
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=3)

    third = cap_reserve(lead=lead_for(contract), contract=contract, price=Decimal(10))
    fourth = cap_reserve(lead=lead_for(contract), contract=contract, price=Decimal(10))

    assert isinstance(third, CapReservation)
    assert isinstance(fourth, CapRefusal)
    assert fourth.reason == "daily cap 3/3 reached"
    # The morning's held reservation now charges the new counter: releasing it gives room back.
    assert cap_release(reservation=morning[1]) is True
    assert counter_of(contract).leads == 2
    assert counter_of(contract).spend == Decimal("20.00")


@pytest.mark.django_db
def test_a_buyer_cap_added_mid_period_counts_every_contracts_earlier_sales():
    buyer = BuyerFactory()
    first, second = ContractFactory(buyer=buyer), ContractFactory(buyer=buyer)
    cap_reserve(lead=lead_for(first), contract=first, price=Decimal(10))
    cap_reserve(lead=lead_for(second), contract=second, price=Decimal(10))
    BuyerCap.objects.create(buyer=buyer, period=CapPeriod.WEEK, max_leads=2)

    refusal = cap_reserve(lead=lead_for(first), contract=first, price=Decimal(10))

    assert isinstance(refusal, CapRefusal)
    assert refusal.reason == "buyer's weekly cap 2/2 reached"


# --- Selectors -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_usage_reports_used_and_limit_per_period(contract):
    ContractCapFactory(
        contract=contract, period=CapPeriod.MONTH, max_leads=100, max_budget=Decimal(1000)
    )
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=5)
    BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.WEEK, max_budget=Decimal(500))
    reserve(contract, "10.00")
    reserve(contract, "15.00")

    contract_caps = cap_usage(contract=contract, now=NOON)
    buyer_caps = cap_usage(buyer=contract.buyer, now=NOON)
    both = cap_usage(contract=contract, buyer=contract.buyer, now=NOON)

    assert [(u.limit.period, u.leads, u.spend, u.leads_left) for u in contract_caps] == [
        (CapPeriod.DAY, 2, Decimal("25.00"), 3),
        (CapPeriod.MONTH, 2, Decimal("25.00"), 98),
    ]
    assert contract_caps[0].period_start == utc(2031, 6, 11, 5)
    assert contract_caps[0].period_end == utc(2031, 6, 12, 5)
    assert [(u.limit.scope, u.spend, u.budget_left) for u in buyer_caps] == [
        ("buyer", Decimal("25.00"), Decimal("475.00"))
    ]
    assert both == contract_caps + buyer_caps


@pytest.mark.django_db
def test_usage_of_a_period_without_a_counter_is_zero(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=5)
    reserve(contract)
    [tomorrow] = cap_usage(contract=contract, now=NOON + timedelta(days=1))
    assert (tomorrow.leads, tomorrow.spend, tomorrow.leads_left) == (0, Decimal(0), 5)
    assert not tomorrow.blocks(Decimal(10))


@pytest.mark.django_db
def test_usage_of_a_contract_without_caps_is_empty(contract):
    assert cap_usage(contract=contract, now=NOON) == []
    with pytest.raises(ValueError, match="whose caps"):
        cap_usage(now=NOON)


@pytest.mark.django_db
def test_usage_for_contracts_lists_each_contracts_caps_then_its_buyers(contract):
    ContractCapFactory(contract=contract, period=CapPeriod.DAY, max_leads=2)
    BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.DAY, max_leads=10)
    uncapped = ContractFactory(vertical=contract.vertical)
    reserve(contract)
    reserve(contract)

    usage = cap_usage_for_contracts(
        contracts=contracts_as_eligibility_loads_them([contract, uncapped]), now=NOON
    )

    assert set(usage) == {contract.pk, uncapped.pk}
    assert [(u.limit.scope, u.leads) for u in usage[contract.pk]] == [
        ("contract", 2),
        ("buyer", 2),
    ]
    assert usage[contract.pk][0].blocks(Decimal(10))
    assert usage[uncapped.pk] == []


def contracts_as_eligibility_loads_them(contracts):
    from buyers.models import Contract

    return list(
        Contract.objects.filter(pk__in=[c.pk for c in contracts])
        .select_related("buyer")
        .prefetch_related("caps", "buyer__caps")
    )


@pytest.mark.parametrize("how_many", [2, 25])
@pytest.mark.django_db
def test_usage_for_contracts_takes_one_query_however_many_contracts(
    how_many, django_assert_max_num_queries
):
    zones = ["America/Chicago", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
    contracts = []
    for number in range(how_many):
        contract = ContractFactory(buyer__time_zone=zones[number % len(zones)])
        for period in (CapPeriod.HOUR, CapPeriod.DAY, CapPeriod.TOTAL):
            ContractCap.objects.create(contract=contract, period=period, max_leads=10)
        BuyerCap.objects.create(buyer=contract.buyer, period=CapPeriod.MONTH, max_leads=100)
        reserve(contract)
        contracts.append(contract)
    loaded = contracts_as_eligibility_loads_them(contracts)

    with django_assert_max_num_queries(1):
        usage = cap_usage_for_contracts(contracts=loaded, now=NOON)

    assert len(usage) == how_many
    assert all([u.leads for u in usage[c.pk]] == [1, 1, 1, 1] for c in contracts)
