"""Leads, sell-through and revenue by score tier: the rollups, the overview, the API and CSV.

The day of tests/reporting/conftest.py, its leads given tiers at intake:

  tier       leads                          accepted  sold (kept)        revenue kept
  hot        A1 (sold X $20), A3 (sold Y,   2         2 (A1)             $20
             returned)
  warm       A2 (sold X $30), A6            2         1 (A2)             $30
             (duplicate), B3 (failed)
  qualified  B1 (sold Y $40, returned)      1         1 (none)           $0
  cold       A4 (unsold), B2 (unsold)       2         0                  $0
  unscored   A5 (invalid)                   0         0                  $0
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import timedelta

import pytest

from leads.models import Lead
from reporting.filters import report_query
from reporting.rollup import rollup_rebuild
from reporting.selectors import report_tiers, whole_days
from tests.reporting.conftest import DAY, PERIOD, PREVIOUS_DAY

pytestmark = pytest.mark.django_db

TIERS = {
    "A1": ("hot", 85),
    "A3": ("hot", 92),
    "A2": ("warm", 70),
    "A6": ("warm", 61),
    "B3": ("warm", 64),
    "B1": ("qualified", 45),
    "A4": ("cold", 10),
    "B2": ("cold", 0),
    "T1": ("hot", 99),  # a test lead: never counted
}


@pytest.fixture
def tiered(world):
    for name, (tier, score) in TIERS.items():
        Lead.objects.filter(pk=world.leads[name].pk).update(tier=tier, score=score)
    rollup_rebuild(start=PREVIOUS_DAY, end=DAY + timedelta(days=1))
    return world


def by_tier(rows: list[dict]) -> dict[str, tuple]:
    return {
        row["tier"]: (
            row["received"],
            row["accepted"],
            row["sold"],
            row["sell_through"],
            str(row["revenue"]),
        )
        for row in rows
    }


def test_the_reports_api_gives_received_sold_sell_through_and_revenue_by_tier(sales_client, tiered):
    rows = sales_client.get("/api/v1/reports/tiers/", PERIOD).json()

    assert [row["tier"] for row in rows] == ["hot", "warm", "qualified", "cold", "unscored"]
    assert by_tier(rows) == {
        "hot": (2, 2, 2, 1.0, "20.00"),
        "warm": (3, 2, 1, 0.5, "30.00"),
        "qualified": (1, 1, 1, 1.0, "0.00"),
        "cold": (2, 2, 0, 0.0, "0.00"),
        "unscored": (1, 0, 0, None, "0.00"),
    }
    hot = rows[0]
    assert (hot["label"], hot["average_sale_price"], hot["revenue_per_accepted_lead"]) == (
        "Hot",
        "20.00",
        "10.00",
    )
    assert rows[2]["average_sale_price"] is None  # its one sale was returned


def test_the_tiers_add_up_to_the_headline_figures(sales_client, tiered):
    rows = sales_client.get("/api/v1/reports/tiers/", PERIOD).json()
    summary = sales_client.get("/api/v1/reports/summary/", PERIOD).json()["current"]

    for figure in ("received", "accepted", "sold"):
        assert sum(row[figure] for row in rows) == summary[figure], figure
    assert sum(float(row["revenue"]) for row in rows) == float(summary["revenue"])


def test_hourly_and_daily_rollups_agree_by_tier(tiered):
    whole_day = report_query(PERIOD)
    # Ending at 23:00 the period is not whole days: it is read from the hourly rows.
    hours = replace(whole_day, end=whole_day.end - timedelta(hours=1))
    assert whole_days(whole_day)
    assert not whole_days(hours)

    assert by_tier(report_tiers(hours)) == by_tier(report_tiers(whole_day))


def test_the_buyer_filter_counts_that_buyers_sales_by_tier(sales_client, tiered):
    rows = sales_client.get("/api/v1/reports/tiers/", {**PERIOD, "buyer": tiered.buyer_x.pk})

    figures = {row["tier"]: (row["sold"], row["revenue"]) for row in rows.json()}
    assert figures["hot"] == (1, "20.00")
    assert figures["warm"] == (1, "30.00")
    assert figures["qualified"] == (0, "0.00")


def test_a_period_without_scored_leads_lists_the_four_tiers_empty(sales_client, world):
    rows = sales_client.get("/api/v1/reports/tiers/", PERIOD).json()

    assert [row["tier"] for row in rows] == ["hot", "warm", "qualified", "cold", "unscored"]
    assert [row["received"] for row in rows[:4]] == [0, 0, 0, 0]
    assert rows[4]["received"] == 9
    assert rows[0]["sell_through"] is None


def test_the_overview_shows_the_tier_table_and_its_export(sales_client, tiered):
    page = sales_client.get("/dashboard/", PERIOD).content.decode()

    assert "By score tier" in page
    assert '<td class="text">Hot</td><td>2</td><td>2</td><td>2</td>' in page
    assert '<td class="text">Not scored</td><td>1</td>' in page
    assert "/dashboard/export/tiers.csv?start=2025-01-07&amp;end=2025-01-07" in page

    response = sales_client.get("/dashboard/export/tiers.csv", PERIOD)
    body = b"".join(response.streaming_content).decode()
    header, hot, *_ = list(csv.reader(io.StringIO(body)))
    assert header[:6] == ["tier", "received", "accepted", "sold", "sell_through", "revenue"]
    assert hot[:6] == ["hot", "2", "2", "2", "1.0", "20.00"]


def test_the_lead_export_carries_each_leads_score_and_tier(ops_client, tiered):
    response = ops_client.get("/dashboard/export/leads.csv", PERIOD)
    body = b"".join(response.streaming_content).decode()
    header, *leads = list(csv.reader(io.StringIO(body)))

    email, score, tier = header.index("email"), header.index("score"), header.index("tier")
    row = next(lead for lead in leads if lead[email] == tiered.leads["A1"].email)
    assert (row[score], row[tier]) == ("85", "hot")
