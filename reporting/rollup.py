"""Keep the hourly rollups current: find the hours that changed, rebuild each of them whole.

An hour is the hour a lead was received (UTC). It changes when one of its leads changes (intake,
routing, a sale, a return: each sets `Lead.updated_at`) or gains an attempt (a late post). The
periodic run looks for such changes since its last run, less a look-back that covers
transactions committed a little after their timestamps were taken, marks those hours dirty and
rebuilds the dirty hours. Services that know an hour changed (a return) mark it directly.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, DecimalField, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncHour
from django.utils import timezone

from buyers.models import EndpointKind
from config.db_router import reading_from_replica
from exchange.models import InboundPing, PingStatus
from leads.models import Lead, LeadStatus
from reporting.models import (
    PING_MS_BOUNDS,
    SALE_SECONDS_BOUNDS,
    AttemptDay,
    AttemptHour,
    DirtyHour,
    LeadDay,
    LeadHour,
    PingDay,
    PingHour,
    RejectionDay,
    RejectionHour,
    RollupState,
    SaleDay,
    SaleHour,
    bucket_names,
)
from routing.models import Attempt, AttemptOutcome, Sale, SaleStatus

logger = logging.getLogger(__name__)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOT_ACCEPTED = (LeadStatus.INVALID, LeadStatus.DUPLICATE, LeadStatus.SUPPRESSED)
SOLD_STATUSES = (LeadStatus.SOLD, LeadStatus.RETURNED)
UNSOLD_STATUSES = (LeadStatus.UNSOLD, LeadStatus.FAILED)
FAILED_OUTCOMES = (AttemptOutcome.ERROR, AttemptOutcome.TIMEOUT, AttemptOutcome.AMBIGUOUS)
# Each kind of rollup: its hourly rows, and the daily rows summed from them.
ROLLUPS = {
    "lead": (LeadHour, LeadDay),
    "sale": (SaleHour, SaleDay),
    "attempt": (AttemptHour, AttemptDay),
    "rejection": (RejectionHour, RejectionDay),
    "ping": (PingHour, PingDay),
}
HOURLY_TO_DAILY = tuple(ROLLUPS.values())
ROLLUP_MODELS = tuple(model for pair in HOURLY_TO_DAILY for model in pair)
KEYS = ("vertical", "source", "buyer", "tier", "reason")
# SQLite refuses a condition nested deeper than 1000 (an OR of ranges nests one level each):
# runs of hours are read this many to a query.
RANGES_PER_QUERY = 200


def floor_hour(moment: datetime) -> datetime:
    """Return the start of the UTC hour holding moment."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def range_chunks(
    hours: Iterable[datetime],
) -> Iterator[list[tuple[datetime, datetime]]]:
    """The hours' runs (`hour_ranges`), RANGES_PER_QUERY at a time."""
    ranges = list(hour_ranges(hours))
    for first in range(0, len(ranges), RANGES_PER_QUERY):
        yield ranges[first : first + RANGES_PER_QUERY]


def hour_ranges(hours: Iterable[datetime]) -> Iterator[tuple[datetime, datetime]]:
    """Merge hours into [start, end) runs of consecutive hours."""
    start = end = None
    for hour in sorted(set(hours)):
        if end is not None and hour == end:
            end = hour + HOUR
            continue
        if start is not None:
            yield start, end
        start, end = hour, hour + HOUR
    if start is not None:
        yield start, end


def _insert_select(model, rows: QuerySet, columns: dict[str, str]) -> int:
    """INSERT the rows of an aggregate query into a rollup table, in the database.

    `columns` maps each rollup column to the query's alias for it. The query is the ORM's own
    (portable across SQLite and PostgreSQL); wrapping it keeps the rows out of Python.
    """
    quote = connection.ops.quote_name
    sql, params = rows.query.sql_with_params()
    targets = ", ".join(quote(column) for column in columns)
    sources = ", ".join(quote(alias) for alias in columns.values())
    with connection.cursor() as cursor:
        cursor.execute(
            # Names come from the models; every value is a bound parameter of the ORM's query.
            f"INSERT INTO {quote(model._meta.db_table)} ({targets}) "  # noqa: S608
            f"SELECT {sources} FROM ({sql}) AS rollup",
            params,
        )
        return max(cursor.rowcount, 0)


def _money(expression) -> Coalesce:
    return Coalesce(expression, Value(Decimal("0.00")), output_field=DecimalField())


def _within(field: str, ranges: Sequence[tuple[datetime, datetime]]) -> Q:
    """Rows whose `field` falls in one of the [start, end) ranges."""
    condition = Q(pk__in=[])
    for start, end in ranges:
        condition |= Q(**{f"{field}__gte": start, f"{field}__lt": end})
    return condition


Figures = tuple[QuerySet, dict[str, str]]


def _lead_rows(ranges: Sequence[tuple[datetime, datetime]]) -> Figures:
    accepted = ~Q(status__in=NOT_ACCEPTED)
    rows = (
        Lead.objects.filter(_within("received_at", ranges), is_test=False)
        .annotate(h=TruncHour("received_at", tzinfo=UTC))
        .values("h", "vertical_id", "source_id", "tier")
        .annotate(
            received=Count("id"),
            accepted=Count("id", filter=accepted),
            invalid=Count("id", filter=Q(status=LeadStatus.INVALID)),
            duplicate=Count("id", filter=Q(status=LeadStatus.DUPLICATE)),
            sold=Count("id", filter=Q(status__in=SOLD_STATUSES)),
            unsold=Count("id", filter=Q(status__in=UNSOLD_STATUSES)),
            missing_sub_id=Count("id", filter=accepted & Q(sub_id="")),
            missing_consent=Count("id", filter=accepted & Q(consent={})),
        )
        .order_by()
    )
    names = ("received", "accepted", "invalid", "duplicate", "sold", "unsold")
    names += ("missing_sub_id", "missing_consent")
    columns = {"hour": "h", "vertical_id": "vertical_id", "source_id": "source_id", "tier": "tier"}
    return rows, columns | {n: n for n in names}


def _sale_rows(ranges: Sequence[tuple[datetime, datetime]]) -> Figures:
    kept = Q(status=SaleStatus.SOLD)
    payout_stands = kept | Q(return_record__payout_reversed=False)
    rows = (
        Sale.objects.filter(_within("lead__received_at", ranges), lead__is_test=False)
        .annotate(h=TruncHour("lead__received_at", tzinfo=UTC))
        .values("h", "lead__vertical_id", "lead__source_id", "buyer_id", "lead__tier")
        .annotate(
            sales=Count("id"),
            returns=Count("id", filter=Q(status=SaleStatus.RETURNED)),
            gross_revenue=_money(Sum("price")),
            revenue=_money(Sum("price", filter=kept)),
            payout=_money(Sum("payout", filter=payout_stands)),
            **_histogram(
                "sale_s",
                SALE_SECONDS_BOUNDS,
                lambda low, high: Q(
                    sold_at__gte=F("lead__received_at") + timedelta(seconds=low),
                    **(
                        {"sold_at__lt": F("lead__received_at") + timedelta(seconds=high)}
                        if high is not None
                        else {}
                    ),
                ),
            ),
        )
        .order_by()
    )
    names = ("sales", "returns", "gross_revenue", "revenue", "payout")
    names += tuple(bucket_names("sale_s", SALE_SECONDS_BOUNDS))
    columns = _dimensions("buyer_id") | {"tier": "lead__tier"}
    return rows, columns | {n: n for n in names}


def _histogram(prefix: str, bounds: tuple[int, ...], bucket) -> dict[str, Count]:
    """One filtered count per bucket; bucket(low, high) is the condition, high None for the last."""
    edges = [0, *bounds]
    highs = [*bounds, None]
    return {
        name: Count("id", filter=bucket(low, high))
        for name, low, high in zip(bucket_names(prefix, bounds), edges, highs, strict=True)
    }


def _dimensions(buyer_alias: str) -> dict[str, str]:
    return {
        "hour": "h",
        "vertical_id": "lead__vertical_id",
        "source_id": "lead__source_id",
        "buyer_id": buyer_alias,
    }


def _attempt_rows(ranges: Sequence[tuple[datetime, datetime]]) -> Figures:
    ping, post = Q(kind=EndpointKind.PING), Q(kind=EndpointKind.POST)
    rows = (
        Attempt.objects.filter(_within("lead__received_at", ranges), lead__is_test=False)
        .annotate(h=TruncHour("lead__received_at", tzinfo=UTC))
        .values("h", "lead__vertical_id", "lead__source_id", "contract__buyer_id")
        .annotate(
            pings=Count("id", filter=ping),
            bids=Count("id", filter=ping & Q(outcome=AttemptOutcome.BID)),
            posts=Count("id", filter=post),
            posts_accepted=Count("id", filter=post & Q(outcome=AttemptOutcome.ACCEPTED)),
            posts_rejected=Count("id", filter=post & Q(outcome=AttemptOutcome.REJECTED)),
            posts_failed=Count("id", filter=post & Q(outcome__in=FAILED_OUTCOMES)),
            **_histogram(
                "ping_ms",
                PING_MS_BOUNDS,
                lambda low, high: (
                    ping
                    & Q(latency_ms__gte=low)
                    & (Q(latency_ms__lt=high) if high is not None else Q())
                ),
            ),
        )
        .order_by()
    )
    names = ("pings", "bids", "posts", "posts_accepted", "posts_rejected", "posts_failed")
    names += tuple(bucket_names("ping_ms", PING_MS_BOUNDS))
    return rows, _dimensions("contract__buyer_id") | {n: n for n in names}


def _rejection_rows(ranges: Sequence[tuple[datetime, datetime]]) -> Figures:
    rows = (
        Attempt.objects.filter(
            _within("lead__received_at", ranges),
            lead__is_test=False,
            kind=EndpointKind.POST,
            outcome=AttemptOutcome.REJECTED,
        )
        .annotate(h=TruncHour("lead__received_at", tzinfo=UTC))
        .values("h", "lead__vertical_id", "lead__source_id", "contract__buyer_id", "reason")
        .annotate(n=Count("id"))
        .order_by()
    )
    columns = _dimensions("contract__buyer_id") | {"reason": "reason", "count": "n"}
    return rows, columns


def _ping_rows(ranges: Sequence[tuple[datetime, datetime]]) -> Figures:
    """Inbound pings by the hour they were received: a later post changes that hour's row."""
    rows = (
        InboundPing.objects.filter(_within("received_at", ranges), is_test=False)
        .annotate(h=TruncHour("received_at", tzinfo=UTC))
        .values("h", "vertical_id", "source_id")
        .annotate(
            pings=Count("id"),
            bids=Count("id", filter=Q(status=PingStatus.BID)),
            posted=Count("id", filter=Q(lead__isnull=False)),
        )
        .order_by()
    )
    columns = {"hour": "h", "vertical_id": "vertical_id", "source_id": "source_id"}
    return rows, columns | {n: n for n in ("pings", "bids", "posted")}


# Each kind's figures recounted from the raw rows, in the shape of its hourly rollup rows.
FIGURES = {
    "lead": _lead_rows,
    "sale": _sale_rows,
    "attempt": _attempt_rows,
    "rejection": _rejection_rows,
    "ping": _ping_rows,
}


def _day_rows(hourly, daily, start: datetime, end: datetime) -> int:
    """Sum the hourly rows of the days in [start, end) into the daily table."""
    fields = [f for f in daily._meta.concrete_fields if f.name not in ("id", "day")]
    keys = [f.attname for f in fields if f.name in KEYS]
    figures = [f.attname for f in fields if f.name not in KEYS]
    rows = (
        hourly.objects.filter(hour__gte=start, hour__lt=end)
        .annotate(d=TruncDay("hour", tzinfo=UTC))
        .values("d", *keys)
        .annotate(**{f"total_{name}": Sum(name) for name in figures})
        .order_by()
    )
    columns = {"day": "d"} | {k: k for k in keys} | {n: f"total_{n}" for n in figures}
    return _insert_select(daily, rows, columns)


def rollup_rebuild(*, start: datetime, end: datetime) -> int:
    """Rebuild every rollup row of the hours in [start, end), and of their days.

    Return the hourly rows written.
    """
    start, end = floor_hour(start), floor_hour(end - timedelta(microseconds=1)) + HOUR
    first_day = start.replace(hour=0)
    last_day = floor_hour(end - HOUR).replace(hour=0) + DAY
    with transaction.atomic():
        for hourly, daily in HOURLY_TO_DAILY:
            hourly.objects.filter(hour__gte=start, hour__lt=end).delete()
            daily.objects.filter(day__gte=first_day, day__lt=last_day).delete()
        written = sum(
            _insert_select(ROLLUPS[kind][0], *figures([(start, end)]))
            for kind, figures in FIGURES.items()
        )
        for hourly, daily in HOURLY_TO_DAILY:
            _day_rows(hourly, daily, first_day, last_day)
        return written


def rollup_mark_dirty(*, hours: Iterable[datetime]) -> None:
    """Have the next rollup run rebuild these hours."""
    DirtyHour.objects.bulk_create(
        [DirtyHour(hour=floor_hour(hour)) for hour in set(hours)], ignore_conflicts=True
    )


def _changed_hours(since: datetime | None) -> set[datetime]:
    leads = Lead.objects.all() if since is None else Lead.objects.filter(updated_at__gte=since)
    hours = set(
        leads.annotate(h=TruncHour("received_at", tzinfo=UTC))
        .order_by()
        .values_list("h", flat=True)
        .distinct()
    )
    if since is not None:
        # A late post that changed nothing on its lead (rejected) still changes the figures.
        hours |= set(
            Attempt.objects.filter(created_at__gte=since)
            .annotate(h=TruncHour("lead__received_at", tzinfo=UTC))
            .order_by()
            .values_list("h", flat=True)
            .distinct()
        )
        # Pings received, or posted, since: their hour's ping figures changed.
        hours |= set(
            InboundPing.objects.filter(Q(received_at__gte=since) | Q(posted_at__gte=since))
            .annotate(h=TruncHour("received_at", tzinfo=UTC))
            .order_by()
            .values_list("h", flat=True)
            .distinct()
        )
    else:
        hours |= set(
            InboundPing.objects.annotate(h=TruncHour("received_at", tzinfo=UTC))
            .order_by()
            .values_list("h", flat=True)
            .distinct()
        )
    return hours


def rollup_refresh(*, now: datetime | None = None, max_hours: int | None = None) -> int:
    """Mark the hours changed since the last run dirty, rebuild up to max_hours; return how many.

    Two runs never overlap: the second finds the state row locked and returns 0 at once.
    """
    now = now or timezone.now()
    max_hours = max_hours or settings.ROLLUP_MAX_HOURS_PER_RUN
    RollupState.objects.get_or_create(pk=1)
    with transaction.atomic():
        state = RollupState.objects.select_for_update(skip_locked=True).filter(pk=1).first()
        if state is None:
            return 0
        since = (
            None
            if state.watermark is None
            else state.watermark - timedelta(seconds=settings.ROLLUP_LOOKBACK_SECONDS)
        )
        rollup_mark_dirty(hours=_changed_hours(since))
        state.watermark = now
        dirty = list(DirtyHour.objects.order_by("hour")[:max_hours])
        for start, end in hour_ranges(d.hour for d in dirty):
            rollup_rebuild(start=start, end=end)
        DirtyHour.objects.filter(pk__in=[d.pk for d in dirty]).delete()
        state.last_run_at = now
        state.last_run_hours = len(dirty)
        state.save()
    if dirty:
        logger.info("rolled up hours", extra={"hours": len(dirty)})
    return len(dirty)


def rollup_stale_hours() -> set[datetime]:
    """Return the hours whose rollup rows may no longer match the raw rows.

    They are the hours the next run would rebuild: those changed since the last run (less the
    same look-back) and those marked dirty and not rebuilt yet; every hour before the first run.
    Readers recount them from the raw rows (`rollup_recount`), so figures are exact between runs.
    """
    state = RollupState.objects.filter(pk=1).first()
    watermark = state.watermark if state else None
    since = (
        None
        if watermark is None
        else watermark - timedelta(seconds=settings.ROLLUP_LOOKBACK_SECONDS)
    )
    return _changed_hours(since) | set(DirtyHour.objects.values_list("hour", flat=True))


def rollup_recount(*, kind: str, hours: Iterable[datetime]) -> list[dict[str, Any]]:
    """Recount a kind's hourly rollup rows of these hours from the raw rows, without writing.

    Each row is a dict of the hourly model's columns (attnames), as `.values()` would give.
    """
    recounted = []
    for ranges in range_chunks(hours):
        rows, columns = FIGURES[kind](ranges)
        recounted += [{column: row[alias] for column, alias in columns.items()} for row in rows]
    return recounted


def rollup_refresh_if_stale(*, max_age: timedelta = timedelta(seconds=60)) -> int:
    """Refresh the rollups when the last run is older than max_age; return the hours rebuilt.

    For the embedded default (no broker, so no Celery beat): the reports bring the rollups up
    to date as they are read.
    """
    state = RollupState.objects.filter(pk=1).first()
    if state and state.last_run_at and timezone.now() - state.last_run_at < max_age:
        return 0
    return rollup_refresh()


def rollups_for_readers() -> int:
    """Bring the rollups up to date where no Celery beat does it (ROLLUPS_REFRESH_ON_READ);
    return the hours rebuilt."""
    if settings.ROLLUPS_REFRESH_ON_READ:
        return rollup_refresh_if_stale()
    return 0


@contextmanager
def reading_reports() -> Iterator[str]:
    """Inside, a report reads from the replica (if one is configured and answers).

    The rollups are refreshed first, if they are on read, on the primary. A refresh that rebuilt
    hours keeps this report on the primary: the replica may not have replayed what it just wrote,
    and a report must not lose the figures its own request computed. Yields the alias read from.
    """
    rebuilt = rollups_for_readers()
    with reading_from_replica(enabled=not rebuilt) as alias:
        yield alias
