"""The plain formats buyers' specs ask a field for (a US state, 5-digit ZIP, 10-digit phone,
e-mail, URL, date, number, IP address), the media types the fakes read, and how a price is
written: one place for the three ping/post fakes, each of which words its own errors."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# The 50 states and DC, as buyers' specs list them.
# fmt: off
US_STATES = frozenset((
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID",
    "IL", "IN", "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO",
    "MT", "NE", "NV", "NH", "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA",
    "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV", "WI", "WY",
))
# fmt: on
ZIP5_RE = re.compile(r"^\d{5}$")
PHONE10_RE = re.compile(r"^\d{10}$")
# A North American number: neither the area code nor the exchange starts with 0 or 1.
NANP_RE = re.compile(r"^[2-9]\d{2}[2-9]\d{6}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
URL_RE = re.compile(r"^https?://[^\s/]+\.[^\s]+$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
NUMBER_RE = re.compile(r"^-?\d+(\.\d+)?$")


def money(value: Decimal) -> str:
    """A price as buyers write it: two decimals."""
    return f"{value.quantize(Decimal('0.01'))}"


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_number(value: Any) -> bool:
    """Whether a JSON value or a form text is a number (a bool is not)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and bool(NUMBER_RE.match(value))


def matches(pattern: re.Pattern[str], error: str) -> Callable[[str], str | None]:
    """A field check for a text field: `error` unless the value matches `pattern`."""
    return lambda value: None if pattern.match(value) else error


def first_values(fields: Mapping[str, list[str]]) -> dict[str, str]:
    """Each field's first value, as the portals read a repeated field."""
    return {name: values[0] for name, values in fields.items()}
