"""Every figure of the reports against the hand-computed day of tests/reporting/conftest.py."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from reporting.filters import ReportQuery, report_query
from reporting.selectors import (
    histogram_percentile,
    report_buyers,
    report_sources,
    report_summary,
    report_timeseries,
)
from reporting.store import percentile
from tests.reporting.conftest import PERIOD, VerticalFactory, make_lead

pytestmark = pytest.mark.django_db

CURRENT = {
    "received": 9,
    "accepted": 7,
    "invalid": 1,
    "duplicate": 1,
    "sold": 4,
    "unsold": 3,
    "returned": 2,
    "sell_through": 0.5714,
    "revenue": Decimal("50.00"),
    # A1 and A2 kept ($8 each); B1 returned but source B keeps its $5; A3's $8 taken back.
    "payout": Decimal("21.00"),
    "margin": Decimal("29.00"),
    "average_sale_price": Decimal("25.00"),
    "revenue_per_accepted_lead": Decimal("7.14"),
    # Seconds to sale 30, 60, 90, 120: p50 between 60 and 90, p95 at 2.85 of 3 steps.
    "submit_to_sold_p50_seconds": 75.0,
    "submit_to_sold_p95_seconds": 115.5,
}
PREVIOUS = {
    "received": 2,
    "accepted": 1,
    "invalid": 1,
    "duplicate": 0,
    "sold": 1,
    "unsold": 0,
    "returned": 0,
    "sell_through": 1.0,
    "revenue": Decimal("10.00"),
    "payout": Decimal("8.00"),
    "margin": Decimal("2.00"),
    "average_sale_price": Decimal("10.00"),
    "revenue_per_accepted_lead": Decimal("10.00"),
    "submit_to_sold_p50_seconds": 10.0,
    "submit_to_sold_p95_seconds": 10.0,
}


def test_every_headline_figure_matches_the_hand_computed_day(world):
    summary = report_summary(report_query(PERIOD))

    assert summary["current"] == CURRENT
    assert summary["previous"] == PREVIOUS
    assert summary["start"] == datetime(2025, 1, 7, tzinfo=UTC)
    assert summary["previous_start"] == datetime(2025, 1, 6, tzinfo=UTC)


def test_test_leads_count_nowhere(world):
    rows = {row["buyer"]: row for row in report_buyers(report_query(PERIOD))}

    assert rows["Buyer X"]["revenue"] == Decimal("50.00")  # not the test lead's $99
    assert rows["Buyer X"]["pings"] == 5


def test_the_source_filter_narrows_every_figure_to_the_source(world):
    figures = report_summary(report_query({**PERIOD, "source": world.source_b.pk}))["current"]

    assert (figures["received"], figures["accepted"], figures["sold"]) == (3, 3, 1)
    assert (figures["revenue"], figures["payout"], figures["margin"]) == (
        Decimal("0.00"),
        Decimal("5.00"),
        Decimal("-5.00"),
    )
    assert figures["returned"] == 1
    assert figures["submit_to_sold_p50_seconds"] == 120.0


def test_the_buyer_filter_narrows_sales_but_not_lead_counts(world):
    figures = report_summary(report_query({**PERIOD, "buyer": world.buyer_x.pk}))["current"]

    assert figures["received"] == 9
    assert (figures["sold"], figures["returned"]) == (2, 0)
    assert (figures["revenue"], figures["payout"]) == (Decimal("50.00"), Decimal("16.00"))
    assert figures["sell_through"] == round(2 / 7, 4)
    assert (figures["submit_to_sold_p50_seconds"], figures["submit_to_sold_p95_seconds"]) == (
        60.0,
        87.0,
    )


def test_the_vertical_filter_keeps_other_verticals_out(world):
    solar = VerticalFactory(slug="solar", name="Solar")
    make_lead(world.source_a, solar, world.leads["A1"].received_at, "unsold")
    from reporting.rollup import rollup_refresh

    rollup_refresh()

    assert report_summary(report_query({**PERIOD, "vertical": "solar"}))["current"]["received"] == 1
    assert report_summary(report_query({**PERIOD, "vertical": "auto"}))["current"]["received"] == 9
    assert report_summary(report_query(PERIOD))["current"]["received"] == 10


def test_a_short_period_is_hourly_and_a_long_one_daily(world):
    hourly = report_timeseries(report_query(PERIOD))
    daily = report_timeseries(report_query({"start": "2025-01-01", "end": "2025-01-07"}))

    assert hourly["granularity"] == "hour"
    assert len(hourly["points"]) == 24
    by_hour = {p["t"].hour: (p["received"], p["sold"], p["revenue"]) for p in hourly["points"]}
    assert by_hour[10] == (3, 3, Decimal("50.00"))
    assert by_hour[11] == (2, 1, Decimal("0.00"))
    assert by_hour[12] == (2, 0, Decimal("0.00"))
    assert by_hour[13] == (2, 0, Decimal("0.00"))
    assert by_hour[9] == (0, 0, Decimal("0.00"))
    assert daily["granularity"] == "day"
    assert [(p["t"].day, p["received"], p["sold"], p["revenue"]) for p in daily["points"]] == [
        (1, 0, 0, Decimal("0.00")),
        (2, 0, 0, Decimal("0.00")),
        (3, 0, 0, Decimal("0.00")),
        (4, 0, 0, Decimal("0.00")),
        (5, 0, 0, Decimal("0.00")),
        (6, 2, 1, Decimal("10.00")),
        (7, 9, 4, Decimal("50.00")),
    ]


def test_the_buyers_table_matches_the_hand_computed_day(world):
    x, y = report_buyers(report_query(PERIOD))

    assert x["buyer"] == "Buyer X"
    assert {k: x[k] for k in x if k not in ("buyer_id", "cap_usage")} == {
        "buyer": "Buyer X",
        "pings": 5,
        "bids": 4,
        "bid_rate": 0.8,
        "wins": 2,
        "win_rate": 0.5,
        "posts_accepted": 2,
        "posts_rejected": 2,
        "posts_failed": 0,
        "rejection_rate": 0.5,
        "top_rejection_reasons": [
            {"reason": "Duplicate lead", "count": 1},
            {"reason": "Out of area", "count": 1},
        ],
        "returns": 0,
        "revenue": Decimal("50.00"),
        "average_price": Decimal("25.00"),
        # Latencies 12, 20, 50, 60, 100.
        "ping_latency_p50_ms": 50.0,
        "ping_latency_p95_ms": 92.0,
        "health": "closed",
    }
    assert y["buyer"] == "Buyer Y"
    assert (y["pings"], y["bids"], y["bid_rate"], y["wins"], y["win_rate"]) == (4, 2, 0.5, 2, 1.0)
    assert (y["posts_accepted"], y["posts_rejected"], y["rejection_rate"]) == (2, 0, 0.0)
    assert (y["returns"], y["revenue"], y["average_price"]) == (2, Decimal("0.00"), None)
    # Latencies 10, 30, 40, 1500.
    assert (y["ping_latency_p50_ms"], y["ping_latency_p95_ms"]) == (35.0, 1281.0)


def test_the_buyers_table_shows_cap_usage_and_an_open_breaker(world):
    from buyers.models import CapPeriod, ContractCap
    from routing.models import ContractHealth, HealthStatus

    ContractCap.objects.create(contract=world.contract_x, period=CapPeriod.DAY, max_leads=50)
    ContractHealth.objects.create(contract=world.contract_y, status=HealthStatus.OPEN)

    rows = {row["buyer"]: row for row in report_buyers(report_query(PERIOD))}

    assert rows["Buyer X"]["cap_usage"][0]["period"] == "day"
    assert rows["Buyer X"]["cap_usage"][0]["max_leads"] == 50
    assert rows["Buyer Y"]["health"] == "open"


def test_the_sources_table_matches_the_hand_computed_day(world):
    a, b = report_sources(report_query(PERIOD))

    assert {k: a[k] for k in a if k != "source_id"} == {
        "source": "Source A",
        "submitted": 6,
        "invalid": 1,
        "duplicate": 1,
        "accepted": 4,
        "sold": 3,
        "sell_through": 0.75,
        "revenue": Decimal("50.00"),
        "payout": Decimal("16.00"),
        "margin": Decimal("34.00"),
        "returns": 1,
        "missing_sub_id": 0,
        "missing_consent": 0,
        "pings": 0,
        "ping_bid_rate": None,
        "ping_to_post": None,
    }
    assert {k: b[k] for k in b if k != "source_id"} == {
        "source": "Source B",
        "submitted": 3,
        "invalid": 0,
        "duplicate": 0,
        "accepted": 3,
        "sold": 1,
        "sell_through": 0.3333,
        "revenue": Decimal("0.00"),
        "payout": Decimal("5.00"),
        "margin": Decimal("-5.00"),
        "returns": 1,
        "missing_sub_id": 1,
        "missing_consent": 1,
        "pings": 0,
        "ping_bid_rate": None,
        "ping_to_post": None,
    }


def test_percentiles_interpolate_as_postgresql_does():
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
    assert percentile([30, 60, 90, 120], 0.5) == 75
    assert percentile([30, 60, 90, 120], 0.95) == pytest.approx(115.5)


@pytest.mark.parametrize(
    ("preset", "start", "end"),
    [
        ("today", datetime(2025, 1, 7, tzinfo=UTC), datetime(2025, 1, 7, 15, tzinfo=UTC)),
        ("yesterday", datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 1, 7, tzinfo=UTC)),
        (
            "last_24_hours",
            datetime(2025, 1, 6, 15, tzinfo=UTC),
            datetime(2025, 1, 7, 15, tzinfo=UTC),
        ),
        ("last_7_days", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 8, tzinfo=UTC)),
        ("last_30_days", datetime(2024, 12, 9, tzinfo=UTC), datetime(2025, 1, 8, tzinfo=UTC)),
        ("this_month", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 1, 8, tzinfo=UTC)),
        ("last_month", datetime(2024, 12, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)),
    ],
)
def test_each_preset_covers_its_period(db, preset, start, end):
    now = datetime(2025, 1, 7, 14, 25, tzinfo=UTC)

    query = report_query({"preset": preset}, now=now)

    assert (query.start, query.end) == (start, end)


def test_today_is_compared_with_the_same_hours_yesterday(db):
    query = report_query({"preset": "today"}, now=datetime(2025, 1, 7, 14, 25, tzinfo=UTC))

    assert (query.previous.start, query.previous.end) == (
        datetime(2025, 1, 6, tzinfo=UTC),
        datetime(2025, 1, 6, 15, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"preset": "fortnight"}, "preset"),
        ({"start": "2025-01-07"}, "end"),
        ({"start": "2025-01-07", "end": "2025-01-01"}, "end"),
        ({"start": "2025-01-07", "end": "not a date"}, "end"),
        ({"vertical": "no-such-vertical"}, "vertical"),
        ({"buyer": "999999"}, "buyer"),
    ],
)
def test_a_bad_filter_is_refused_naming_it(db, params, field):
    with pytest.raises(ValidationError) as raised:
        report_query(params)

    assert field in raised.value.message_dict


def test_no_filter_means_the_last_seven_days(db):
    query = report_query({}, now=datetime(2025, 1, 7, 14, 25, tzinfo=UTC))

    assert query == ReportQuery(
        start=datetime(2025, 1, 1, tzinfo=UTC), end=datetime(2025, 1, 8, tzinfo=UTC)
    )


def test_a_long_period_estimates_percentiles_within_the_right_histogram_bucket(world):
    week = report_query({"start": "2025-01-01", "end": "2025-01-07"})

    x = next(row for row in report_buyers(week) if row["buyer"] == "Buyer X")
    figures = report_summary(week)["current"]

    assert 50 <= x["ping_latency_p50_ms"] < 75  # exactly 50: the 50–75 ms bucket
    assert 60 <= figures["submit_to_sold_p50_seconds"] < 90  # exactly 60 (10, 30, 60, 90, 120)
    assert figures["revenue"] == Decimal("60.00")  # the daily rollups: both days


def test_histogram_percentiles_land_in_the_bucket_holding_the_rank():
    bounds = (10, 20, 50)

    assert histogram_percentile([0, 0, 0, 0], bounds, 0.5) is None
    assert histogram_percentile([0, 4, 0, 0], bounds, 0.5) == pytest.approx(15.0)
    assert 20 <= histogram_percentile([1, 1, 2, 1], bounds, 0.5) < 50
    assert histogram_percentile([0, 0, 0, 3], bounds, 0.95) > 50
