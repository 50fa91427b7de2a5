"""The dashboards' and reports' filters: a period (a preset or dates) and vertical, source, buyer.

The same query string drives a dashboard page, its CSV exports and the reporting API, so a view
can be shared by its URL. Periods are whole UTC hours; dates are UTC days, `end` included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from buyers.models import Buyer
from leads.models import Lead, Source, Vertical

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
MAX_DAYS = 400
# Reports cover the platform's lifetime. A far-off date would overflow the calendar when the
# period before it (the comparison) or the day after its end is computed: a 500, not an answer.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2999, 12, 31)
# Up to two days the time series is hourly; longer, daily.
HOURLY_UP_TO = timedelta(days=2)
DEFAULT_PRESET = "last_7_days"
PRESETS = [
    ("today", "Today"),
    ("yesterday", "Yesterday"),
    ("last_24_hours", "Last 24 hours"),
    ("last_7_days", "Last 7 days"),
    ("last_30_days", "Last 30 days"),
    ("this_month", "This month"),
    ("last_month", "Last month"),
]


@dataclass(frozen=True)
class ReportQuery:
    """What a report covers: [start, end) in UTC and the chosen vertical, source and buyer."""

    start: datetime
    end: datetime
    vertical_id: int | None = None
    source_id: int | None = None
    buyer_id: int | None = None
    # How far back the comparison period lies (a day for "today": the same hours yesterday).
    shift: timedelta | None = None

    @property
    def previous(self) -> ReportQuery:
        shift = self.shift or (self.end - self.start)
        return replace(self, start=self.start - shift, end=self.end - shift)

    @property
    def granularity(self) -> str:
        return "hour" if self.end - self.start <= HOURLY_UP_TO else "day"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def preset_bounds(  # noqa: PLR0911 (one return per preset)
    preset: str, now: datetime
) -> tuple[datetime, datetime, timedelta | None]:
    """Return the start, end and comparison shift of a preset period at `now`."""
    now = now.astimezone(UTC)
    today = _midnight(now.date())
    next_hour = now.replace(minute=0, second=0, microsecond=0) + HOUR
    if preset == "today":
        return today, next_hour, DAY
    if preset == "yesterday":
        return today - DAY, today, None
    if preset == "last_24_hours":
        return next_hour - DAY, next_hour, None
    if preset == "last_30_days":
        return today - 29 * DAY, today + DAY, None
    if preset == "this_month":
        return today.replace(day=1), today + DAY, None
    if preset == "last_month":
        first = today.replace(day=1)
        return (first - DAY).replace(day=1), first, None
    return today - 6 * DAY, today + DAY, None


class ReportFilter(django_filters.FilterSet):
    """Parses and validates the query string; `report_query` turns it into a ReportQuery."""

    preset = django_filters.ChoiceFilter(
        choices=PRESETS, empty_label="Last 7 days", method="ignore", label="Period"
    )
    start = django_filters.DateFilter(
        method="ignore", label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    end = django_filters.DateFilter(
        method="ignore", label="To (included)", widget=forms.DateInput(attrs={"type": "date"})
    )
    vertical = django_filters.ModelChoiceFilter(
        queryset=Vertical.objects.order_by("name"),
        to_field_name="slug",
        method="ignore",
        label="Vertical",
    )
    source = django_filters.ModelChoiceFilter(
        queryset=Source.objects.order_by("name"), method="ignore", label="Source"
    )
    buyer = django_filters.ModelChoiceFilter(
        queryset=Buyer.objects.order_by("company"), method="ignore", label="Buyer"
    )

    class Meta:
        # The filters describe a report, not a queryset; a model is only what FilterSet needs.
        model = Lead
        fields: list[str] = []

    def ignore(self, queryset, name, value):
        return queryset


def report_query(data: Any, *, now: datetime | None = None) -> ReportQuery:
    """Return the ReportQuery of a query string; raise ValidationError naming bad parameters."""
    filterset = ReportFilter(data or {})
    form = filterset.form
    if not form.is_valid():
        raise ValidationError({name: list(errors) for name, errors in form.errors.items()})
    values = form.cleaned_data
    first, last = values.get("start"), values.get("end")
    shift = None
    for name, day in (("start", first), ("end", last)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise ValidationError({name: [f"Give a date from {FIRST_DAY} to {LAST_DAY}."]})
    if first or last:
        if not (first and last):
            name = "end" if first else "start"
            raise ValidationError({name: ["Give both dates of a custom period."]})
        if last < first:
            raise ValidationError({"end": ["The period ends before it starts."]})
        if (last - first).days >= MAX_DAYS:
            raise ValidationError({"end": [f"A period is at most {MAX_DAYS} days long."]})
        start, end = _midnight(first), _midnight(last) + DAY
    else:
        start, end, shift = preset_bounds(
            values.get("preset") or DEFAULT_PRESET, now or timezone.now()
        )
    vertical, source, buyer = values.get("vertical"), values.get("source"), values.get("buyer")
    return ReportQuery(
        start=start,
        end=end,
        vertical_id=vertical.pk if vertical else None,
        source_id=source.pk if source else None,
        buyer_id=buyer.pk if buyer else None,
        shift=shift,
    )
