"""IANA time zones as staff pick them: one list and its select."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.db import models
from django.http import HttpRequest


@cache
def time_zone_names() -> frozenset[str]:
    # available_timezones() walks the tz database on disk at every call.
    return frozenset(zoneinfo.available_timezones())


@cache
def sorted_time_zone_names() -> tuple[str, ...]:
    return tuple(sorted(time_zone_names()))


class TimeZoneSelect(forms.Select):
    """A select of the IANA zones, sorted; typing a zone's first letters picks it.

    A stored value that is not one of them stays listed and selected, so the page shows what is
    stored and the model's check names it, rather than the select quietly showing another zone.
    """

    def optgroups(self, name: str, value: list[Any], attrs: dict[str, Any] | None = None) -> Any:
        odd = [v for v in value if v and v not in time_zone_names()]
        self.choices = [(zone, zone) for zone in [*odd, *sorted_time_zone_names()]]
        return super().optgroups(name, value, attrs)


class TimeZoneSelectAdminMixin:
    """Edit every `time_zone` field of the admin's model with a TimeZoneSelect."""

    def formfield_for_dbfield(
        self, db_field: models.Field, request: HttpRequest, **kwargs: Any
    ) -> forms.Field | None:
        if db_field.name == "time_zone":
            kwargs["widget"] = TimeZoneSelect()
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]
