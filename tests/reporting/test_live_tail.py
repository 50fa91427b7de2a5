"""Figures between rollup runs: what the rollups have not counted yet is recounted from the raw
rows, so the dashboards and the API are exact at any moment and the same after the next run.

With a broker the readers never refresh the rollups themselves (ROLLUPS_REFRESH_ON_READ off);
"a recount" is what the reports say once every rollup row is rebuilt from the raw rows and
nothing is left to recount live.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from buyers.models import EndpointKind
from leads.models import Lead, LeadStatus
from reporting.models import DirtyHour, RollupState
from reporting.rollup import floor_hour, rollup_rebuild, rollup_refresh
from reporting.services import sale_return
from reporting.tasks import refresh_rollups
from routing.models import Attempt, AttemptOutcome
from tests.reporting.conftest import (
    PERIOD,
    PREVIOUS_DAY,
    attempt,
    build_world,
    make_lead,
    sell,
)

pytestmark = pytest.mark.django_db
REPORTS = ("summary", "timeseries", "buyers", "sources", "tiers")


@pytest.fixture(autouse=True)
def _with_a_broker(settings):
    settings.ROLLUPS_REFRESH_ON_READ = False  # Celery beat refreshes; a read never writes


def today() -> dict[str, str]:
    day = timezone.now().astimezone(UTC).date().isoformat()
    return {"start": day, "end": day}


def reports(client, period: dict[str, str]) -> dict[str, Any]:
    return {name: client.get(f"/api/v1/reports/{name}/", period).json() for name in REPORTS}


def recount(client, period: dict[str, str]) -> dict[str, Any]:
    rollup_rebuild(start=PREVIOUS_DAY - timedelta(days=2), end=timezone.now() + timedelta(days=1))
    DirtyHour.objects.all().delete()
    RollupState.objects.filter(pk=1).update(watermark=timezone.now() + timedelta(days=1))
    return reports(client, period)


def new_leads_today(world) -> list[Lead]:
    """Two leads sold and one unsold, received this hour, after the last run."""
    now = timezone.now()
    s, o = LeadStatus, AttemptOutcome
    leads = [
        make_lead(world.source_a, world.vertical, now - timedelta(seconds=3), s.SOLD),
        make_lead(world.source_b, world.vertical, now - timedelta(seconds=2), s.SOLD),
        make_lead(world.source_b, world.vertical, now - timedelta(seconds=1), s.UNSOLD),
    ]
    for lead in leads:
        attempt(lead, world.contract_x, EndpointKind.PING, o.BID, 25)
    attempt(leads[2], world.contract_x, EndpointKind.POST, o.REJECTED, 90, reason="Too late")
    sell(leads[0], world.contract_x, "31.00", "8.00", 1)
    sell(leads[1], world.contract_y, "12.50", "5.00", 1)
    return leads


def test_leads_and_sales_after_the_last_run_show_at_once_in_the_api_and_the_dashboard(
    sales_client, world
):
    assert reports(sales_client, today())["summary"]["current"]["received"] == 0
    new_leads_today(world)

    live = reports(sales_client, today())
    page = sales_client.get("/dashboard/", today())

    current = live["summary"]["current"]
    assert (current["received"], current["sold"], current["unsold"]) == (3, 2, 1)
    assert (current["revenue"], current["payout"]) == ("43.50", "13.00")
    assert sum(point["received"] for point in live["timeseries"]["points"]) == 3
    x = next(row for row in live["buyers"] if row["buyer"] == "Buyer X")
    assert (x["pings"], x["wins"], x["top_rejection_reasons"]) == (
        3,
        1,
        [{"reason": "Too late", "count": 1}],
    )
    shown = page.context["summary"]["current"]
    assert (shown["received"], shown["sold"], shown["revenue"]) == (3, 2, Decimal("43.50"))
    assert "$43.50" in page.content.decode()

    refresh_rollups()

    assert reports(sales_client, today()) == live
    assert recount(sales_client, today()) == live


@pytest.mark.parametrize("counted_by_the_run", [True, False])
def test_a_lead_exactly_at_the_watermark_is_counted_once(sales_client, world, counted_by_the_run):
    watermark = timezone.now()

    def lead_at_the_watermark() -> None:
        lead = make_lead(world.source_a, world.vertical, watermark, LeadStatus.SOLD)
        sell(lead, world.contract_x, "17.00", "8.00", 0)
        Lead.objects.filter(pk=lead.pk).update(updated_at=watermark)

    if counted_by_the_run:
        lead_at_the_watermark()
        rollup_refresh(now=watermark)
    else:
        rollup_refresh(now=watermark)
        lead_at_the_watermark()
    assert RollupState.objects.get(pk=1).watermark == watermark

    live = reports(sales_client, today())

    assert (live["summary"]["current"]["received"], live["summary"]["current"]["revenue"]) == (
        1,
        "17.00",
    )
    rollup_refresh(now=watermark + timedelta(seconds=1))
    assert reports(sales_client, today()) == live
    assert recount(sales_client, today()) == live


def test_rows_changed_after_being_counted_are_recounted_not_added(sales_client, world):
    before = reports(sales_client, PERIOD)["summary"]["current"]
    assert (before["revenue"], before["returned"], before["sold"]) == ("50.00", 2, 4)

    # A sale counted by the last run is returned; an unsold lead is sold by a re-route; a late
    # post is rejected: each changes an hour already rolled up.
    sale_return(
        sale=world.sales["A1"],
        reason="fraud",
        returned_by="test",
        now=world.sales["A1"].sold_at + timedelta(days=1),
    )
    sell(world.leads["A4"], world.contract_x, "44.00", "8.00", 3600)
    for status in (LeadStatus.ROUTING, LeadStatus.SOLD):
        Lead.objects.filter(pk=world.leads["A4"].pk).update(
            status=status, updated_at=timezone.now()
        )
    late = attempt(
        world.leads["B3"],
        world.contract_y,
        EndpointKind.POST,
        AttemptOutcome.REJECTED,
        150,
        reason="Out of area",
    )
    Attempt.objects.filter(pk=late.pk).update(created_at=timezone.now())

    live = reports(sales_client, PERIOD)

    current = live["summary"]["current"]
    assert (current["revenue"], current["returned"], current["sold"]) == ("74.00", 3, 5)
    y = next(row for row in live["buyers"] if row["buyer"] == "Buyer Y")
    assert y["top_rejection_reasons"] == [{"reason": "Out of area", "count": 1}]
    refresh_rollups()
    assert reports(sales_client, PERIOD) == live
    assert recount(sales_client, PERIOD) == live


def _queries(client, period: dict[str, str]) -> int:
    with CaptureQueriesContext(connection) as captured:
        reports(client, period)
    return len(captured.captured_queries)


def test_the_live_tail_costs_the_same_few_queries_however_many_hours_it_spans(sales_client, world):
    # Nothing changed since the run: only what is marked dirty is recounted.
    RollupState.objects.filter(pk=1).update(watermark=timezone.now() + timedelta(hours=1))
    DirtyHour.objects.all().delete()
    nothing_stale = _queries(sales_client, PERIOD)

    DirtyHour.objects.create(hour=floor_hour(world.leads["A1"].received_at))
    one_hour = _queries(sales_client, PERIOD)
    for hours in (11, 12, 13):
        DirtyHour.objects.get_or_create(hour=datetime(2025, 1, 7, hours, tzinfo=UTC))
    four_hours = _queries(sales_client, PERIOD)

    assert four_hours == one_hour
    # Per report: a recount and the rolled-up rows it replaces, once per kind it reads (summary:
    # leads and sales; timeseries: leads and sales; buyers: attempts, sales, rejections;
    # sources: leads, sales, pings; tiers: leads and sales).
    assert one_hour - nothing_stale == 2 * (2 + 2 + 3 + 3 + 2)


def test_an_hour_with_nothing_left_in_it_drops_out(sales_client, world):
    """A recount that finds an hour's rows gone (a lead scrubbed) takes them out of the totals."""
    hour = floor_hour(world.leads["B3"].received_at)
    Lead.objects.filter(pk__in=[world.leads["B2"].pk, world.leads["B3"].pk]).delete()
    DirtyHour.objects.create(hour=hour)

    live = reports(sales_client, PERIOD)

    assert live["summary"]["current"]["received"] == 7
    thirteen = next(p for p in live["timeseries"]["points"] if p["t"].startswith("2025-01-07T13"))
    assert thirteen["received"] == 0
    assert recount(sales_client, PERIOD) == live


def test_before_the_first_run_every_figure_is_recounted(sales_client, db):
    build_world()
    assert not RollupState.objects.filter(watermark__isnull=False).exists()

    live = reports(sales_client, PERIOD)

    assert live["summary"]["current"]["revenue"] == "50.00"
    assert live["summary"]["previous"]["revenue"] == "10.00"
    assert recount(sales_client, PERIOD) == live


def test_a_backlog_of_scattered_stale_hours_is_recounted_not_refused(sales_client, world):
    """Hours left dirty far apart (a backlog past a run's limit) are many separate runs of hours:
    SQLite refuses one condition nested over 1000 deep, so they are read a few hundred at a time.
    """
    first = PREVIOUS_DAY - timedelta(days=60)
    DirtyHour.objects.bulk_create(
        [DirtyHour(hour=first + timedelta(hours=2 * n)) for n in range(1100)]
    )
    period = {"start": first.date().isoformat(), "end": "2025-01-31"}

    live = reports(sales_client, period)

    assert live["summary"]["current"]["revenue"] == "60.00"
    assert recount(sales_client, period) == live


def test_a_run_that_commits_while_a_report_reads_counts_nothing_twice(sales_client, world):
    """The rolled-up rows a report sums and those its recount takes out are read by separate
    statements: a run committed between them (another process; here, once, on this connection)
    must not leave the report summing the old rows and taking out the new ones."""
    sell(world.leads["A4"], world.contract_x, "44.00", "8.00", 3600)
    for status in (LeadStatus.ROUTING, LeadStatus.SOLD):
        Lead.objects.filter(pk=world.leads["A4"].pk).update(
            status=status, updated_at=timezone.now()
        )
    runs = [refresh_rollups]

    def a_run_between_reads(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if runs and "reporting_saleday" in sql:
            runs.pop()()
        return result

    with connection.execute_wrapper(a_run_between_reads):
        live = reports(sales_client, PERIOD)

    assert not runs
    assert live["summary"]["current"]["revenue"] == "94.00"
    assert recount(sales_client, PERIOD) == live
