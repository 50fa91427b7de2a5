"""The hourly rollups follow late events: returns, late posts, late sales, and never overlap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from buyers.models import EndpointKind
from leads.models import Lead, LeadStatus
from reporting.filters import report_query
from reporting.models import DirtyHour, LeadHour, RollupState, SaleHour
from reporting.rollup import hour_ranges, rollup_rebuild, rollup_refresh
from reporting.selectors import report_buyers, report_summary
from reporting.services import sale_return
from reporting.tasks import refresh_rollups
from routing.models import AttemptOutcome
from tests.reporting.conftest import PERIOD, attempt, sell

pytestmark = pytest.mark.django_db


def figures() -> dict:
    return report_summary(report_query(PERIOD))["current"]


def test_a_return_after_the_rollup_reverses_the_sale_at_once_and_after_the_next_run(world):
    assert figures()["revenue"] == Decimal("50.00")

    sale_return(
        sale=world.sales["A2"],
        reason="not_interested",
        returned_by="test",
        now=world.sales["A2"].sold_at + timedelta(days=2),
    )
    assert DirtyHour.objects.filter(hour=datetime(2025, 1, 7, 10, tzinfo=UTC)).exists()
    expected = (Decimal("20.00"), Decimal("13.00"), 3)
    before = figures()  # not rolled up yet: its hour is recounted from the raw rows
    assert (before["revenue"], before["payout"], before["returned"]) == expected

    refresh_rollups()

    after = figures()
    assert (after["revenue"], after["payout"], after["returned"]) == expected
    assert not DirtyHour.objects.exists()


def test_a_late_post_is_counted_at_the_next_run(world):
    x = next(r for r in report_buyers(report_query(PERIOD)) if r["buyer"] == "Buyer X")
    assert x["posts_rejected"] == 2

    late = attempt(
        world.leads["A4"],
        world.contract_x,
        EndpointKind.POST,
        AttemptOutcome.REJECTED,
        reason="Out of area",
    )
    # Sent now, long after its lead came in: only the attempt's own time says it is new.
    type(late).objects.filter(pk=late.pk).update(created_at=timezone.now())
    rollup_refresh()

    x = next(r for r in report_buyers(report_query(PERIOD)) if r["buyer"] == "Buyer X")
    assert x["posts_rejected"] == 3
    assert x["top_rejection_reasons"][0] == {"reason": "Out of area", "count": 2}


def test_a_late_sale_is_counted_in_the_hour_its_lead_came_in(world):
    lead = world.leads["A4"]
    sell(lead, world.contract_x, "44.00", "8.00", 3600)
    # Sold by a run that took it up again (unsold -> routing -> sold, as a re-route does).
    for status in (LeadStatus.ROUTING, LeadStatus.SOLD):
        Lead.objects.filter(pk=lead.pk).update(status=status, updated_at=timezone.now())

    rollup_refresh()

    after = figures()
    assert (after["sold"], after["unsold"], after["revenue"]) == (5, 2, Decimal("94.00"))
    hour = LeadHour.objects.get(hour=datetime(2025, 1, 7, 11, tzinfo=UTC))
    assert (hour.received, hour.sold, hour.unsold) == (2, 2, 0)


def test_a_run_with_nothing_new_rebuilds_nothing(world):
    rows = list(SaleHour.objects.order_by("pk").values_list("pk", flat=True))
    RollupState.objects.filter(pk=1).update(watermark=timezone.now() + timedelta(hours=1))

    assert rollup_refresh() == 0
    assert list(SaleHour.objects.order_by("pk").values_list("pk", flat=True)) == rows


def test_a_run_rebuilds_at_most_its_limit_and_leaves_the_rest_for_the_next(world):
    DirtyHour.objects.all().delete()
    for hours in (1, 2, 3):
        DirtyHour.objects.create(hour=datetime(2025, 1, 7, hours, tzinfo=UTC))
    RollupState.objects.filter(pk=1).update(watermark=timezone.now() + timedelta(hours=1))

    assert rollup_refresh(max_hours=2) == 2
    assert list(DirtyHour.objects.values_list("hour__hour", flat=True)) == [3]


def test_rebuilding_an_hour_twice_gives_the_same_rows(world):
    start = datetime(2025, 1, 7, tzinfo=UTC)
    rollup_rebuild(start=start, end=start + timedelta(days=1))
    first = sorted(SaleHour.objects.values_list("hour", "buyer_id", "sales", "revenue"))
    rollup_rebuild(start=start, end=start + timedelta(days=1))

    assert sorted(SaleHour.objects.values_list("hour", "buyer_id", "sales", "revenue")) == first


def test_the_beat_schedule_runs_the_rollup_every_minute(settings):
    entry = next(
        e
        for e in settings.CELERY_BEAT_SCHEDULE.values()
        if e["task"] == "reporting.tasks.refresh_rollups"
    )
    assert entry["schedule"] == 60.0


def test_hours_merge_into_runs_of_consecutive_hours():
    h = datetime(2025, 1, 7, tzinfo=UTC)
    hours = [h + timedelta(hours=n) for n in (0, 1, 2, 5, 7, 8)]

    assert list(hour_ranges(hours)) == [
        (h, h + timedelta(hours=3)),
        (h + timedelta(hours=5), h + timedelta(hours=6)),
        (h + timedelta(hours=7), h + timedelta(hours=9)),
    ]


def test_without_a_broker_the_reports_refresh_stale_rollups_themselves(
    sales_client, world, settings
):
    settings.ROLLUPS_REFRESH_ON_READ = True  # the embedded default: no Celery beat
    sale_return(
        sale=world.sales["A1"],
        reason="fraud",
        returned_by="test",
        now=world.sales["A1"].sold_at + timedelta(days=1),
    )
    RollupState.objects.filter(pk=1).update(last_run_at=timezone.now() - timedelta(minutes=2))

    body = sales_client.get("/api/v1/reports/summary/", PERIOD).json()

    assert body["current"]["revenue"] == "30.00"


def test_refresh_rollups_command_rebuilds_what_changed(world):
    from io import StringIO

    from django.core.management import call_command

    sale_return(
        sale=world.sales["A1"],
        reason="fraud",
        returned_by="test",
        now=world.sales["A1"].sold_at + timedelta(days=1),
    )
    out = StringIO()
    call_command("refresh_rollups", stdout=out)

    assert "Rebuilt" in out.getvalue()
    assert figures()["revenue"] == Decimal("30.00")
