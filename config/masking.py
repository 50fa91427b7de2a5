"""Mask personal data for people who may see a lead but not its consumer (Sales).

Pure functions on plain strings, no database: the dashboards, exports, admin pages and erasure
use them; they live in `config` so that every app may.

`replace_spellings` (and `spellings_found`) is the one way a consumer's values are found in stored
text, for masking (Sales) and for erasure alike: a value is found however a request, an answer, a
URL or a template wrote it (see `spelling_pattern`). What a template renders from a value that
shows nothing of it (base64, a hex digest) is a value of its own: `rendered_forms`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from urllib.parse import quote, urlsplit

MASK = "***"


def mask_email(email: str) -> str:
    """Keep the first letter of the local part and the domain: j***@example.com."""
    if not email:
        return ""
    local, at, domain = email.partition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def mask_phone(phone: str) -> str:
    """Keep the last four digits only: ***0142."""
    digits = [c for c in phone or "" if c.isdigit()]
    if not digits:
        return ""
    return MASK + "".join(digits[-4:]) if len(digits) > 4 else MASK


def mask_name(name: str) -> str:
    """Keep the initial: J***."""
    return f"{name[:1]}{MASK}" if name else ""


def webhook_display(url: str) -> str:
    """Return a webhook URL with its secret path hidden: 'hooks.slack.com/services/T0…/••••'."""
    if not url:
        return ""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    shown = "/".join(segments[:2]) if len(segments) > 2 else ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{host}/{shown}/••••" if shown else f"{host}/••••"


# --- Finding a value in every spelling ---------------------------------------------------------

# JSON's short escapes; every other character may also be written \uXXXX.
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n",
               "\r": "\\r", "\t": "\\t"}  # fmt: skip
_XML_NAMED = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _literal_forms(char: str) -> set[str]:
    """The ways one character is written by JSON, URL and XML (HTML) encoders, as literal text."""
    code = ord(char)
    utf8 = char.encode("utf-8", errors="surrogatepass")
    forms = {
        char,
        "".join(f"%{byte:02X}" for byte in utf8),  # a URL, a form body
        f"&#{code};",  # XML and HTML character references
        f"&#x{code:X};",
    }
    if code > 0xFFFF:  # JSON writes characters beyond the BMP as a surrogate pair
        high, low = divmod(code - 0x10000, 0x400)
        forms.add(f"\\u{0xD800 + high:04X}\\u{0xDC00 + low:04X}")
    else:
        forms.add(f"\\u{code:04X}")
    # Case: the pattern ignores it, but not where a letter's other case is longer (ß, SS).
    forms.update({char.upper(), char.lower(), char.title(), char.casefold()} - {""})
    if char == " ":
        forms.add("+")  # a form body's space
    if char in _JSON_SHORT:
        forms.add(_JSON_SHORT[char])
    if char in _XML_NAMED:
        forms.add(_XML_NAMED[char])
    return forms


@lru_cache(maxsize=1024)
def _char_pattern(char: str) -> str:
    first = _literal_forms(char)
    # One encoding inside another: JSON or XML sent in a form field or a query parameter (the
    # escape's own characters URL-encoded), or a URL-encoded value URL-encoded again.
    second = {quote(form, safe="") for form in first if form != char}
    # Character references are the two alternatives at the end (which allow leading zeros), and
    # no two alternatives match the same text (the pattern ignores case, so "L" and "l" do): a
    # search that fails near the end of a long value would otherwise try every combination.
    references = {f"&#{ord(char)};", f"&#x{ord(char):X};"}
    alternatives: list[str] = []
    for form in sorted((first | second) - references, key=len, reverse=True):
        if not any(re.fullmatch(re.escape(kept), form, re.IGNORECASE) for kept in alternatives):
            alternatives.append(form)
    regex = "|".join(re.escape(form) for form in alternatives)
    # Character references may carry leading zeros (&#064;, &#x0040;).
    return f"(?:{regex}|&\\#0*{ord(char)};|&\\#x0*{ord(char):x};)"


# Not inside a longer word: the value starts after a character that is not a letter or digit, or
# right after an escape (%22, \u0022) that stands for one.
_STARTS = r"(?:(?<!\w)|(?<=%[0-9a-f]{2})|(?<=\\u[0-9a-f]{4}))"
_ENDS = r"(?!\w)"
# A date may go on with its time: 1990-01-02T00:00:00Z (a space before the time is no word).
_DATE_ENDS = r"(?:(?!\w)|(?=T\d))"
# An e-mail address is not part of a longer one: joe.ann@… and ann@example.com.au are others.
_EMAIL_STARTS = rf"(?<![.+\-])(?<!%2[bde])(?<!\\u002[bde]){_STARTS}"
_EMAIL_ENDS = r"(?![\w\-]|\.\w)"
_DATE = re.compile(r"\d{1,4}([-/.])\d{1,2}\1\d{1,4}|\d{8}")
_WORD = re.compile(r"\w")


@lru_cache(maxsize=4096)
def spelling_pattern(value: str) -> re.Pattern[str]:
    """Return a pattern that finds the value in text however an encoder wrote it.

    Each character may be written as itself, URL-encoded (%XX in either case, `+` for a space),
    JSON-escaped (\\uXXXX, \\/ and the short escapes), as an XML or HTML character reference
    (&#64; &#x40; &amp; …), or as one of these URL-encoded once more; characters may mix
    spellings, as encoders escape some and not others. Letters match in any case (mappings
    upper-case and title-case names). The value is not found inside a longer word (an e-mail
    address not inside a longer address); a date is found with its time after it
    (`T00:00:00Z`, ` 00:00:00`).
    """
    body = "".join(_char_pattern(char) for char in value)
    # A value that begins (ends) with a separator, such as "+1212…", needs no boundary there.
    starts = _STARTS if _WORD.match(value[:1]) else ""
    ends = ""
    if _WORD.match(value[-1:]):
        ends = _DATE_ENDS if _DATE.fullmatch(value) else _ENDS
    if "@" in value and starts and ends:
        starts, ends = _EMAIL_STARTS, _EMAIL_ENDS
    return re.compile(f"{starts}{body}{ends}", re.IGNORECASE)


def replace_spellings(text: str, values: Iterable[str], replacement: Callable[[str], str]) -> str:
    """Replace every spelling of each value in text by `replacement(value)`.

    Give the values longest first, so that a part (a first name) never breaks a whole (an
    e-mail address) before it is found.
    """
    if not text:
        return text
    for value in _maybe_in(text, values):
        text = spelling_pattern(value).sub(lambda _match, value=value: replacement(value), text)
    return text


def spellings_found(text: str, values: Iterable[str]) -> bool:
    """Return whether text holds any spelling of any of the values."""
    return bool(text) and any(spelling_pattern(v).search(text) for v in _maybe_in(text, values))


def _maybe_in(text: str, values: Iterable[str]) -> Iterator[str]:
    """The values (once each, in any case) that the text may hold."""
    # Encoders leave ASCII letters and digits as they are, unless the text escapes one somewhere:
    # a value whose longest ASCII word is not in the text is not there, and its pattern (costly
    # to build and to run) is skipped.
    lowered = None if _ESCAPED_ASCII_ALNUM.search(text) else text.lower()
    seen: set[str] = set()
    for value in values:
        key = value.casefold()
        if key in seen or not value.strip():
            continue
        seen.add(key)
        anchor = _anchor(value)
        if lowered is not None and anchor and anchor not in lowered:
            continue
        yield value


@lru_cache(maxsize=4096)
def _anchor(value: str) -> str:
    return max(_ASCII_ALNUM_RUN.findall(value), key=len, default="").lower()


class Rendered(str):
    """A form of a value that shows nothing of it to the eye (base64, a hex digest, a timestamp):
    found like a value, and masked whole."""

    __slots__ = ()


def rendered_forms(value: str) -> set[Rendered]:
    """Return what the templates' b64, md5, sha1 and sha256 filters render from the value, as
    typed and in lower and upper case (a template may change its case first).

    Base64 comes standard and URL-safe, with and without its padding: found where the filter put
    it, standalone (base64 of a longer text holding the value depends on the value's offset).
    A digest is found in either case: the matcher ignores case.
    """
    forms: set[Rendered] = set()
    for written in {value, value.lower(), value.upper()}:
        data = written.encode("utf-8", "replace")
        for encoded in (base64.b64encode(data), base64.urlsafe_b64encode(data)):
            text = encoded.decode("ascii")
            forms.update({Rendered(text), Rendered(text.rstrip("="))})
        forms.update(
            Rendered(hashlib.new(name, data, usedforsecurity=False).hexdigest())
            for name in ("md5", "sha1", "sha256")
        )
    return forms


_ASCII_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")
# An ASCII letter or digit URL-encoded (once or twice), JSON-escaped or as a character reference.
_ASCII_ALNUM_CODE = r"(?:3[0-9]|[46][1-9a-f]|[57][0-9a])"
_ESCAPED_ASCII_ALNUM = re.compile(
    rf"%(?:25)?{_ASCII_ALNUM_CODE}|\\u00{_ASCII_ALNUM_CODE}"
    rf"|&#(?:x0*{_ASCII_ALNUM_CODE}|0*(?:4[89]|5[0-7]|6[5-9]|[7-9][0-9]|1[01][0-9]|12[0-2]));",
    re.IGNORECASE,
)
