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
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, quote_plus

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


class MappingError(ValueError):
    """A lead value a buyer's mapping cannot format, or an endpoint a request cannot be built for.

    The message is plain enough to show ops on a test post, and never repeats the value (PII) or
    a secret. Retrying does not help: the lead or the configuration has to change.
    """


class Unusable(ValueError):
    """The value cannot take this format; the message says why ("is not a date ..."), in words
    that follow the value's name, and never repeats the value."""


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
    number = re.sub(r"[^0-9]", "", written)
    if len(number) == 11 and number.startswith("1"):
        number = number[1:]
    if not _PHONE_RE.match(written) or len(number) != 10:
        raise Unusable("is not a US phone number (10 digits, optionally after +1)")
    return number


def dashed_phone(value: Any) -> str:
    """Return a US phone number as 555-123-4567."""
    number = us_phone(value)
    return f"{number[:3]}-{number[3:6]}-{number[6:]}"


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


def yes(value: Any) -> bool:
    """Return the truth of a yes/no value: a bool, 1/0, or a word such as yes, no, true, off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal) and value in (0, 1):
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
    return _XML_INVALID_RE.sub("", as_text(value)).translate(_XML_ESCAPES)


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
    Transform.PHONE_DASHED: dashed_phone,
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
