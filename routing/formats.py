"""Value formats buyers ask for, shared by the flat field mapping and the request templates.

A phone, a date or a yes/no reaches a buyer through one of two paths: a field mapping's transform
(`apply_transform`) or a template filter (routing/templating.py). Both read values through the
functions here, so the same lead value comes out the same way whichever path a contract takes.
Pure: plain values in, text out. A function that cannot format a value raises `Unusable` with the
reason in words, never the value itself (it may be PII).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus
from zoneinfo import ZoneInfo

from markupsafe import escape as markup_escape

from buyers.models import Transform

MASK = "••••"

_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off"})
# Characters a phone number may be written with; anything else (letters, "ext") is not a phone.
_PHONE_RE = re.compile(r"^\+?[0-9\s().\-]+$")
_ISO_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
_US_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# str.title() capitalises after digits and apostrophes ("3Rd", "It'S"): start words only.
_WORD_START_RE = re.compile(r"(^|[\s\-/])(\w)")
# XML 1.0 cannot carry these at all, not even as character references.
_XML_INVALID_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Quotes are escaped for attribute values; tab, LF and CR as references because a parser turns
# them into spaces in attributes and a raw CR into LF everywhere.
_XML_ESCAPES = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)
_HEADER_VALUE_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)$")
_ZIP_RE = re.compile(r"^(\d{5})(?:-?\d{4})?$")
# Longer digit strings are no lead's number (and int() refuses very long ones outright).
_MAX_NUMBER_LENGTH = 40


class MappingError(ValueError):
    """A lead value a buyer's mapping cannot format, or an endpoint a request cannot be built for.

    The message is plain enough to show ops on a test post, and never repeats the value (PII) or
    a secret. Retrying does not help: the lead or the configuration has to change.
    """


class Unusable(ValueError):
    """The value cannot take this format; the message says why ("is not a date ..."), in words
    that follow the value's name, and never repeats the value."""


class BadFormat(ValueError):
    """A format's argument (a phone style, a strftime format, a time zone) cannot be used; the
    message is a whole sentence."""


# --- Reading values ---------------------------------------------------------------------------


def as_text(value: Any) -> str:
    """Return the text a buyer sees for a value in a form, a query, XML or a joined field."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def is_missing(value: Any) -> bool:
    """Return whether a lead value counts as not given: None or blank text."""
    return value is None or (isinstance(value, str) and not value.strip())


def text(value: Any) -> str:
    """Return the value as text; a dict or list is not text."""
    if isinstance(value, dict | list):
        raise Unusable("is not text")
    return as_text(value)


def title_words(value: Any) -> str:
    """Return the text with each word's first letter capitalised and the rest lower case."""
    return _WORD_START_RE.sub(lambda m: m[1] + m[2].upper(), text(value).lower())


def digits(value: Any) -> str:
    """Return the digits of the value, in order."""
    found = re.sub(r"[^0-9]", "", text(value))
    if not found:
        raise Unusable("has no digits")
    return found


def us_phone(value: Any) -> str:
    """Return the 10 digits of a US phone number written as E.164, 10 or 11 digits, or formatted."""
    written = text(value).strip()
    found = re.sub(r"[^0-9]", "", written)
    if len(found) == 11 and found.startswith("1"):
        found = found[1:]
    if not _PHONE_RE.match(written) or len(found) != 10:
        raise Unusable("is not a US phone number (10 digits, optionally after +1)")
    return found


_PHONE_STYLES: dict[str, Callable[[str], str]] = {
    "e164": lambda d: "+1" + d,
    "10": lambda d: d,
    "dashed": lambda d: f"{d[:3]}-{d[3:6]}-{d[6:]}",
    "dotted": lambda d: f"{d[:3]}.{d[3:6]}.{d[6:]}",
    "paren": lambda d: f"({d[:3]}) {d[3:6]}-{d[6:]}",
}


def phone(value: Any, style: str | int = "10") -> str:
    """Return a US phone number as e164 (+15551234567), 10 (5551234567), dashed (555-123-4567),
    dotted (555.123.4567) or paren ((555) 123-4567)."""
    write = _PHONE_STYLES.get(str(style))
    if write is None:
        raise BadFormat(f"Unknown phone style {style!r}; use one of {', '.join(_PHONE_STYLES)}.")
    return write(us_phone(value))


def zip5(value: Any) -> str:
    """Return the 5-digit US ZIP code of a ZIP or ZIP+4; a number lost its leading zeros."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 99999:
        return f"{value:05d}"
    match = _ZIP_RE.match(text(value).strip())
    if not match:
        raise Unusable("is not a US ZIP code")
    return match[1]


def to_date(value: Any) -> date:
    """Return the date of a date, a datetime, or text written YYYY-MM-DD[...] or MM/DD/YYYY."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    written = text(value).strip()
    match = _ISO_DATE_RE.match(written)
    try:
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        match = _US_DATE_RE.match(written)
        if match:
            return date(int(match[3]), int(match[1]), int(match[2]))
    except ValueError:
        pass
    raise Unusable("is not a date (YYYY-MM-DD or MM/DD/YYYY)")


def us_date(value: Any) -> str:
    """Return a date as MM/DD/YYYY."""
    day = to_date(value)
    # strftime drops the zero padding of years before 1000 on some platforms.
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def to_datetime(value: Any) -> datetime:
    """Return the datetime of a datetime, a date (midnight), or ISO 8601 or MM/DD/YYYY text."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time())
    try:
        return datetime.fromisoformat(text(value).strip())
    except ValueError:
        pass
    try:
        return datetime.combine(to_date(value), time())
    except Unusable:
        raise Unusable("is not a date or time (ISO 8601 or MM/DD/YYYY)") from None


def strftime(moment: date, fmt: str) -> str:
    """Return a date or datetime written with strftime's format."""
    try:
        return moment.strftime(str(fmt))
    except ValueError:
        raise BadFormat(f"The format {fmt!r} cannot be used.") from None


def in_zone(moment: datetime, zone_name: str) -> datetime:
    """Return the time in an IANA time zone (America/New_York); a time without one is UTC."""
    try:
        zone = ZoneInfo(str(zone_name))
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        raise BadFormat(f"Unknown time zone {zone_name!r}.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(zone)
    except OverflowError:
        raise Unusable("is out of range") from None


def epoch_seconds(value: Any) -> int:
    """Return the seconds since 1970-01-01 UTC of a time; a time without a zone is UTC."""
    moment = to_datetime(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def number(value: Any) -> int | Decimal:
    """Return the number a value holds: an int, or a Decimal when it has a fraction."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal | float):
        found = Decimal(str(value)) if isinstance(value, float) else value
        if not found.is_finite():
            raise Unusable("is not a finite number")
        return found
    written = text(value).strip()
    if len(written) > _MAX_NUMBER_LENGTH or not _NUMBER_RE.match(written):
        raise Unusable("is not a number")
    if "." not in written:
        return int(written)
    return Decimal(written)


def whole_number(value: Any) -> int:
    """Return the whole part of the number a value holds, as Python's int() does (12.7 is 12)."""
    found = number(value)
    if isinstance(found, Decimal):
        if found.adjusted() >= _MAX_NUMBER_LENGTH:
            raise Unusable("is too large")
        return int(found)
    return found


def _is_nan(value: Any) -> bool:
    return isinstance(value, Decimal) and value.is_nan()


def yes(value: Any) -> bool:
    """Return the truth of a yes/no value: a bool, 1/0, or a word such as yes, no, true, off."""
    if isinstance(value, bool):
        return value
    # A signalling NaN refuses even to be compared.
    if isinstance(value, int | float | Decimal) and not _is_nan(value) and value in (0, 1):
        return value == 1
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise Unusable("is not a yes/no value (true/false, yes/no, 1/0)")


def first_word(value: Any) -> str:
    """Return the first word (the first name of a full name), or "" when there is none."""
    words = text(value).split()
    return words[0] if words else ""


def last_words(value: Any) -> str:
    """Return all words but the first (the last name of a full name), or "" for one word."""
    return " ".join(text(value).split()[1:])


_KEEP: Any = object()


def lookup(value: Any, table: Mapping[str, Any], default: Any = _KEEP) -> Any:
    """Return what `table` gives for the value's text, else `default` (the value itself if none).

    JSON spells booleans true/false and ops may type them as Python prints them (True/False):
    both spellings find a boolean's entry.
    """
    key = as_text(value)
    if key in table:
        return table[key]
    if isinstance(value, bool) and str(value) in table:
        return table[str(value)]
    return value if default is _KEEP else default


def xml_text(value: Any) -> str:
    """Return the value as text safe inside an XML element or a quoted attribute value.

    Characters XML 1.0 cannot carry at all (NUL, most control characters, lone surrogates) are
    dropped: no parser would read them back.
    """
    return drop_xml_invalid(as_text(value)).translate(_XML_ESCAPES)


def drop_xml_invalid(written: str) -> str:
    """Return the text without the characters XML 1.0 cannot carry."""
    return _XML_INVALID_RE.sub("", written)


def header_value_problem(value: str) -> str | None:
    """Return why the text cannot be an HTTP header value, or None when it can.

    HTTP clients refuse line breaks (header injection) and some refuse leading white space;
    header bytes are Latin-1 on the wire.
    """
    if _HEADER_VALUE_BAD_RE.search(value) or value[:1].isspace():
        return "has a line break, control character or leading space"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return "has characters HTTP headers cannot carry"
    return None


# --- Keeping secrets out of stored text -------------------------------------------------------


def spellings(value: Any) -> tuple[str, ...]:
    """Return the ways a value may be written in a request: as is, URL-encoded (both ways),
    escaped inside a JSON string (ASCII or not), and escaped for XML (both escapers)."""
    written = as_text(value)
    if not written:
        return ()
    found = {
        written,
        quote(written, safe="", errors="replace"),
        quote_plus(written, safe="", errors="replace"),
        json.dumps(written, ensure_ascii=False)[1:-1],
        json.dumps(written)[1:-1],
        xml_text(written),
        # Jinja's own escaper, used where a template joins escaped and plain text.
        str(markup_escape(written)),
    }
    # Longest first, so a spelling that contains another is removed whole.
    return tuple(sorted(found, key=len, reverse=True))


def scrub(text: str, secrets: Sequence[str]) -> str:
    """Remove every spelling of the secret that slipped into text meant to be stored."""
    # Every replacement shortens the text, so this ends even when removing one spelling forms
    # another; a short secret may blot out innocent text, which is the safe way to fail.
    while found := next((s for s in secrets if s and s in text), None):
        text = text.replace(found, MASK if len(found) > len(MASK) else "")
    return text


# --- The flat mapping's transforms ------------------------------------------------------------

_TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    Transform.NONE: lambda value: value,
    Transform.UPPER: lambda value: text(value).upper(),
    Transform.LOWER: lambda value: text(value).lower(),
    Transform.TITLE: title_words,
    Transform.DIGITS: digits,
    Transform.PHONE_E164: lambda value: "+1" + us_phone(value),
    Transform.PHONE_10: us_phone,
    Transform.PHONE_DASHED: lambda value: phone(value, "dashed"),
    Transform.PHONE_AREA_CODE: lambda value: us_phone(value)[:3],
    Transform.PHONE_LOCAL: lambda value: us_phone(value)[3:],
    Transform.DATE_US: us_date,
    Transform.DATE_ISO: lambda value: to_date(value).isoformat(),
    Transform.FIRST_WORD: first_word,
    Transform.LAST_WORDS: last_words,
    Transform.BOOL_YN: lambda value: "Y" if yes(value) else "N",
    Transform.BOOL_10: lambda value: "1" if yes(value) else "0",
}


def apply_transform(transform: str, value: Any, *, field: str = "The value") -> Any:
    """Return the value in the transform's format; raise MappingError naming `field` if it can't.

    Every transform but "none" returns text. A name with nothing left to take (the last words of
    a one-word name) comes back as "", which map_fields treats as missing.
    """
    function = _TRANSFORMS.get(transform)
    if function is None:
        raise MappingError(f"{field} uses an unknown transform {transform!r}.")
    if value is None and transform != Transform.NONE:
        raise MappingError(f"{field} has no value.")
    try:
        return function(value)
    except Unusable as exc:
        raise MappingError(f"{field} {exc.args[0]}.") from None
