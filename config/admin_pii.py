"""Who sees a lead's personal data in the admin, and how it is masked for everyone else (Sales).

The masks are config.masking's (e-mail `j***@example.com`, phone by its last four digits).
Pages decide once per request: `pii_visible(request)`. Text that a buyer received (a post's
body, in the buyer's own field names and formats) is masked by value: the lead's own personal
values in every spelling the mappings produce and what the templates' filters render from them
(`pii_values`, which erasure uses too), in every encoding a body, URL or template writes them in
(config.masking.replace_spellings, erasure's too), then anything else shaped like an e-mail
address or a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any

from django.http import HttpRequest

from config.masking import (
    MASK,
    Rendered,
    mask_email,
    mask_name,
    mask_phone,
    rendered_forms,
    replace_spellings,
)

UNMASKED_PII_PERMISSION = "reporting.view_unmasked_pii"

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
# Ten digits or more, in the separators phones are written with: a phone in some format (a date
# has eight, a price fewer).
_PHONE_RE = re.compile(r"\+?\(?\d[\d\s().\-]{8,}\d")
# A date (of birth): any part of it narrows down who the person is, so it is masked whole, never
# by its last digits as a phone is. Eight bare digits are a date written without separators.
_DATE_RE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}(?:[T ]\S*)?|\d{8}")
# How buyers' mappings write a date (routing/formats.py: DATE_US and strftime formats), so that a
# post's body is masked too.
_DATE_SPELLINGS = ("%m/%d/%Y", "%m-%d-%Y", "%d/%m/%Y", "%d.%m.%Y", "%Y/%m/%d", "%Y%m%d", "%m%d%Y")


def pii_visible(request: HttpRequest) -> bool:
    """Return whether this user may see personal data unmasked (Ops and Admin, not Sales)."""
    return request.user.has_perm(UNMASKED_PII_PERMISSION)


def mask_value(value: Any) -> str:
    """Mask one personal value by what it looks like."""
    if isinstance(value, Rendered):
        return MASK
    text = "" if value is None else str(value)
    if _DATE_RE.fullmatch(text.strip()):
        return MASK
    if "@" in text:
        return mask_email(text)
    if sum(c.isdigit() for c in text) >= 7:  # a phone, or the local part of one
        return mask_phone(text)
    return mask_name(text) if text else ""


def mask_data(data: Any, pii_fields: Iterable[str]) -> Any:
    """Return a lead's data with the values of its personal fields masked."""
    if not isinstance(data, dict):
        return data
    names = set(pii_fields) | {"email", "phone"}
    return {key: mask_value(value) if key in names else value for key, value in data.items()}


def _phone_spellings(phone: str) -> list[str]:
    digits = re.sub(r"\D", "", phone)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10:
        return [phone] if phone else []
    area, exchange, line = digits[:3], digits[3:6], digits[6:]
    return [
        f"+1{digits}",
        f"1{digits}",
        digits,
        f"{area}-{exchange}-{line}",
        f"({area}) {exchange}-{line}",
        f"{area}.{exchange}.{line}",
        f"{area} {exchange} {line}",
        f"({area}){exchange}-{line}",
        f"{exchange}{line}",
    ]


def _date_spellings(value: str) -> list[str]:
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        return []
    # With a time after it (the templates' datetime filter, ISO 8601) the date is found as it is;
    # their timestamp filter writes the seconds at midnight UTC.
    midnight = int(datetime.combine(day, time(), UTC).timestamp())
    return [*(day.strftime(spelling) for spelling in _DATE_SPELLINGS), Rendered(str(midnight))]


def lead_personal_values(lead: Any, pii_fields: Iterable[str]) -> set[str]:
    """Return the lead's personal values as stored: its personal fields', e-mail and phone."""
    data = lead.data if isinstance(getattr(lead, "data", None), dict) else {}
    values: set[str] = set()
    for name in {*pii_fields, "email", "phone"}:
        value = data.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool):
            values.add(str(value))
    values.update(v for v in (getattr(lead, "email", ""), getattr(lead, "phone", "")) if v)
    return values


def pii_values(values: Iterable[str]) -> list[str]:
    """Return personal values with every spelling mappings write them in and every form templates
    render them in, longest first (so parts never mask wholes).

    The one list masking (Sales) and erasure search stored text for.
    """
    found = {v for v in values if v}
    for phone in [v for v in found if sum(c.isdigit() for c in v) >= 10]:
        found.update(_phone_spellings(phone))
    for value in list(found):
        found.update(_date_spellings(value))
    for value in [v for v in found if not isinstance(v, Rendered)]:
        found.update(rendered_forms(value))
    # Case and encodings (JSON, URL, XML) are the matcher's: replace_spellings.
    return sorted((v for v in found if len(v.strip()) >= 2), key=len, reverse=True)


def lead_pii_values(lead: Any, pii_fields: Iterable[str]) -> list[str]:
    """Return the lead's personal values for masking: `pii_values` of its own."""
    return pii_values(lead_personal_values(lead, pii_fields))


def mask_text(text: str, values: Iterable[str] = ()) -> str:
    """Mask the given personal values in a text, then every e-mail address and phone number."""
    if not text:
        return text
    text = replace_spellings(text, values, lambda value: mask_value(value) or MASK)
    text = _EMAIL_RE.sub(lambda m: mask_email(m.group(0)), text)
    return _PHONE_RE.sub(
        lambda m: mask_phone(m[0]) if 10 <= sum(c.isdigit() for c in m[0]) <= 15 else m[0],
        text,
    )


def _filter_fields(model_admin: Any) -> set[str]:
    """The fields a list's own filters (and its date hierarchy) narrow it by."""
    names = {"pk", model_admin.opts.pk.name}
    if model_admin.date_hierarchy:
        names.add(model_admin.date_hierarchy.split("__")[0])
    for item in model_admin.list_filter:
        if isinstance(item, str):
            names.add(item.split("__")[0])
        elif isinstance(item, tuple | list):
            names.add(item[0].split("__")[0])
        else:
            names.add(getattr(item, "parameter_name", ""))
    return names


class MaskedLookupsMixin:
    """For whoever sees personal data masked (Sales), a list narrows only by its own filters.

    Django's admin lets a URL filter a list by any of the model's own fields
    (`?email=mary@example.com`, `?request_body__contains=…`): a count of one would confirm the
    consumer behind a masked value. Such a URL is refused (400) for these users.
    """

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        if not pii_visible(request) and lookup.split("__", maxsplit=1)[0] not in _filter_fields(
            self
        ):
            return False
        return super().lookup_allowed(lookup, value, request)  # type: ignore[misc]
