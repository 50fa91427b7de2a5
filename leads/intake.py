"""Read a partner's submission: the envelope, then each field by the vertical's schema (pure).

Nothing here touches the database. `parse_submission` checks the envelope (vertical, fields,
sub_id, consent, test); `normalise_fields` validates every field against the vertical's
`FieldSpec`s, normalises it (trimmed and title-cased names, lower-cased emails, E.164 phones,
5-digit ZIPs, ISO dates) and enriches the lead from its ZIP code. Errors are collected, never
raised, so that a partner learns of every problem at once: {"fields.email": ["..."]}.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from config.admin_display import plural
from leads.consumer_hashes import consumer_hash
from leads.geo import zip_lookup
from leads.models import FieldType
from leads.states import state_code

Errors = dict[str, list[str]]

ENVELOPE_KEYS = ("vertical", "fields", "sub_id", "consent", "test", "ping_id")
# An inbound ping's id (exchange/) names the ping whose bids the posted lead takes up.
MAX_PING_ID = 64
CONSENT_KEYS = (
    "text",
    "timestamp",
    "ip",
    "trustedform_cert_url",
    "jornaya_leadid",
    "sellers",
    "page_url",
    "user_agent",
)
# String fields holding people's or places' names: trimmed and, when typed all in one case,
# title-cased ("mary-ann o'neil" -> "Mary-Ann O'Neil"); mixed case is kept ("McDonald").
NAME_FIELDS = frozenset({"first_name", "last_name", "middle_name", "full_name", "name", "city"})
# Phones are US numbers; these regions share the +1 plan and US lead programmes.
US_PHONE_REGIONS = frozenset({"US", "PR", "VI", "GU", "AS", "MP"})
ZIP_RE = re.compile(r"^(\d{5})(?:-?\d{4})?$")
INTEGER_RE = re.compile(r"^[+-]?\d+$")
US_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
TRUE_WORDS = frozenset({"true", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "no", "n", "0"})
MAX_CONSENT_TEXT = 10_000
# No field holds a number of more digits; converting 1e99999999 to an int would take minutes.
MAX_DIGITS = 15
PREFER_WAIT_RE = re.compile(r"^[0-9]{1,6}$")
UNSTORABLE_TEXT = "Text may not contain NUL characters (\\u0000) or unpaired surrogates."


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a vertical's schema, as intake needs it."""

    name: str
    field_type: str = FieldType.STRING
    required: bool = False
    choices: tuple[str, ...] = ()
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class Submission:
    vertical: str
    fields: dict[str, Any]
    sub_id: str = ""
    consent: dict[str, Any] = field(default_factory=dict)
    test: bool = False
    ping_id: str = ""


@dataclass(frozen=True)
class NormalisedLead:
    data: dict[str, Any]
    email: str = ""
    phone: str = ""
    zip_code: str = ""
    state: str = ""

    @property
    def email_sha256(self) -> str:
        return consumer_hash(self.email)

    @property
    def phone_sha256(self) -> str:
        return consumer_hash(self.phone)


class FieldError(ValueError):
    """One field's value is not acceptable; the message is shown to the partner."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _storable(value: Any) -> bool:
    """Return whether every text in a JSON value can be stored.

    PostgreSQL refuses NUL and UTF-8 has no lone surrogates, yet JSON's \\u escapes make both.
    """
    if isinstance(value, str):
        if "\x00" in value:
            return False
        try:
            value.encode()
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def invalid_lead_detail(errors: Errors) -> str:
    """Return what a lead refused for its fields is told (its problem's detail)."""
    return f"The lead has {plural(len(errors), 'invalid field')}; see errors."


def parse_submission(document: Any) -> tuple[Submission | None, Errors]:  # noqa: PLR0912
    """Check the envelope of a submission; return it, or None and the errors."""
    if not isinstance(document, dict):
        return None, {"_": [f"Send a JSON object, not {_type_name(document)}."]}
    if not _storable(document):
        return None, {"_": [UNSTORABLE_TEXT]}
    errors: Errors = {}
    for key in document:
        if key not in ENVELOPE_KEYS:
            errors[str(key)] = [f"Unknown member; the body has {', '.join(ENVELOPE_KEYS)}."]
    vertical = document.get("vertical")
    if vertical is None or (isinstance(vertical, str) and not vertical.strip()):
        errors["vertical"] = ["This field is required: the slug of the lead's vertical."]
    elif not isinstance(vertical, str):
        errors["vertical"] = [f"Give the vertical's slug as text, not {_type_name(vertical)}."]
    fields = document.get("fields")
    if fields is None:
        errors["fields"] = ["This field is required: an object of the lead's fields."]
    elif not isinstance(fields, dict):
        errors["fields"] = [f"Give an object of field names to values, not {_type_name(fields)}."]
    sub_id = document.get("sub_id")
    if sub_id is None:
        sub_id = ""
    elif not isinstance(sub_id, str):
        errors["sub_id"] = [f"Give the sub-id as text, not {_type_name(sub_id)}."]
    elif len(sub_id) > 255:
        errors["sub_id"] = ["At most 255 characters."]
    test = document.get("test", False)
    if test is None:
        test = False
    elif not isinstance(test, bool):
        errors["test"] = [f"Give true or false, not {_type_name(test)}."]
    ping_id = envelope_ping_id(document)
    if document.get("ping_id") is not None and not ping_id:
        errors["ping_id"] = [f"Give the ping id as text of 1 to {MAX_PING_ID} characters."]
    consent, consent_errors = normalise_consent(document.get("consent"))
    errors.update(consent_errors)
    if errors:
        return None, errors
    return (
        Submission(
            vertical=vertical.strip(),
            fields=fields,
            sub_id=sub_id.strip(),
            consent=consent,
            test=test,
            ping_id=ping_id,
        ),
        {},
    )


NOT_UTF8 = "Not valid UTF-8 JSON: the API reads JSON in UTF-8 only."


def json_loads_utf8(body: bytes) -> Any:
    """Parse a JSON body, which must be UTF-8 (RFC 8259 section 8.1); a UTF-8 BOM is ignored.

    Raise UnicodeDecodeError for any other encoding, ValueError for what is not JSON.
    `json.loads` would guess UTF-16 or UTF-32 from the bytes and accept them, while the request's
    stored copy (read as UTF-8) would be garbled; a NUL byte is how ASCII text looks in those.
    """
    text = body.decode("utf-8-sig")
    if "\x00" in text:
        at = body.index(b"\x00")
        raise UnicodeDecodeError("utf-8", body, at, at + 1, "a NUL byte: UTF-16 or UTF-32?")
    return json.loads(text)


def envelope_ping_id(document: Any) -> str:
    """The envelope's `ping_id` (an inbound ping's, for a post that takes up its bids), or ''."""
    value = document.get("ping_id") if isinstance(document, dict) else None
    if not isinstance(value, str) or not 0 < len(value.strip()) <= MAX_PING_ID:
        return ""
    try:
        # One spelling per ping (UUID() also reads upper case, braces, no hyphens): posts that
        # spell one ping differently take the same idempotency lock and replay one answer.
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return value.strip()


def normalise_consent(consent: Any) -> tuple[dict[str, Any], Errors]:
    """Validate the TCPA consent record; return it normalised, or the errors."""
    if consent is None:
        return {}, {}
    if not isinstance(consent, dict):
        return {}, {"consent": [f"Give an object, not {_type_name(consent)}."]}
    errors: Errors = {}
    clean: dict[str, Any] = {}
    for key, value in consent.items():
        path = f"consent.{key}"
        if key not in CONSENT_KEYS:
            errors[path] = [f"Unknown member; consent has {', '.join(CONSENT_KEYS)}."]
            continue
        if value is None or value == "":
            continue
        if key == "sellers":
            if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                errors[path] = ["Give a list of the company names the consumer agreed to."]
            else:
                clean[key] = [s.strip() for s in value if s.strip()]
            continue
        if not isinstance(value, str):
            errors[path] = [f"Give text, not {_type_name(value)}."]
            continue
        try:
            clean[key] = _consent_value(key, value.strip())
        except FieldError as exc:
            errors[path] = [str(exc)]
    return clean, errors


def _consent_value(key: str, value: str) -> str:
    if key == "text" and len(value) > MAX_CONSENT_TEXT:
        raise FieldError(f"At most {MAX_CONSENT_TEXT} characters.")
    if key == "timestamp":
        unreadable = FieldError("Give an ISO 8601 time, e.g. 2026-05-01T14:03:00Z.")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise unreadable from None
        if moment.tzinfo is None:
            raise FieldError("Give the time zone, e.g. 2026-05-01T14:03:00Z or …-05:00.")
        try:
            return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
        except OverflowError:  # year 1 an hour east of UTC is year 0 in UTC
            raise unreadable from None
    if key == "ip":
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise FieldError("Give the consumer's IPv4 or IPv6 address.") from None
    if key in {"trustedform_cert_url", "page_url"}:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - reading it checks the port ("…:[x]/" is no URL)
        except ValueError:  # a bracketed host that is no IP address, a port that is no number
            raise FieldError("Give an http(s) URL.") from None
        if parts.scheme not in {"http", "https"} or not parts.hostname or len(value) > 1000:
            raise FieldError("Give an http(s) URL.")
        if key == "trustedform_cert_url" and not (
            parts.hostname == "trustedform.com" or parts.hostname.endswith(".trustedform.com")
        ):
            raise FieldError("A TrustedForm certificate URL is on trustedform.com.")
    elif len(value) > 1000:
        raise FieldError("At most 1000 characters.")
    return value


def parse_prefer_wait(header: str, *, limit: int) -> int | None:
    """Read `Prefer: wait=N` (RFC 7240); a malformed preference is ignored, as the RFC says."""
    for preference in header.split(","):
        name, _, value = preference.strip().partition("=")
        if name.strip().lower() == "wait":
            value = value.split(";")[0].strip().strip('"')
            # ASCII digits only: str.isdigit() accepts "²", which int() refuses.
            if PREFER_WAIT_RE.match(value):
                return min(int(value), limit)
    return None


def specs_from_models(fields: Iterable[Any]) -> tuple[FieldSpec, ...]:
    """Build FieldSpecs from VerticalField rows."""
    return tuple(
        FieldSpec(
            name=f.name,
            field_type=f.field_type,
            required=f.required,
            choices=tuple(f.choices or ()),
            min_value=f.min_value,
            max_value=f.max_value,
            max_length=f.max_length,
        )
        for f in fields
    )


def normalise_fields(  # noqa: PLR0912
    specs: Iterable[FieldSpec], fields: Mapping[str, Any]
) -> tuple[NormalisedLead | None, Errors]:
    """Validate and normalise a lead's fields against its vertical's schema."""
    specs = tuple(specs)
    known = {spec.name: spec for spec in specs}
    errors: Errors = {}
    for name in fields:
        if name not in known:
            errors[f"fields.{name}"] = [
                f"Unknown field; this vertical's fields are {', '.join(sorted(known))}."
            ]
    data: dict[str, Any] = {}
    for spec in specs:
        value = fields.get(spec.name)
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            if spec.required:
                errors[f"fields.{spec.name}"] = ["This field is required."]
            continue
        try:
            data[spec.name] = normalise_value(spec, value)
        except FieldError as exc:
            errors[f"fields.{spec.name}"] = [str(exc)]

    by_type: dict[str, str] = {}
    for spec in specs:
        if spec.name in data:
            by_type.setdefault(spec.field_type, spec.name)
    zip_code = data.get(by_type.get(FieldType.ZIP, ""), "")
    state = data.get(by_type.get(FieldType.STATE, ""), "")
    if zip_code:
        info = zip_lookup(zip_code)
        if info is not None:
            if state and state != info.state:
                errors[f"fields.{by_type[FieldType.STATE]}"] = [
                    f"{state} contradicts ZIP code {zip_code}, which is in {info.state}."
                ]
            # Enrichment never overwrites what the partner sent, but fills the vertical's own
            # field when it was left out (a `state` field) and the value fits that field.
            state = state or info.state
            for name, value in (
                ("city", info.city),
                ("county", info.county),
                ("state", info.state),
                ("time_zone", info.time_zone),
            ):
                if not value or name in data:
                    continue
                if name not in known:
                    data[name] = value
                    continue
                # Unless the vertical's field of that name means something else.
                with contextlib.suppress(FieldError):
                    data[name] = normalise_value(known[name], value)
    if errors:
        return None, errors
    return (
        NormalisedLead(
            data=data,
            email=data.get(by_type.get(FieldType.EMAIL, ""), ""),
            phone=data.get(by_type.get(FieldType.PHONE, ""), ""),
            zip_code=zip_code,
            state=state,
        ),
        {},
    )


def normalise_value(spec: FieldSpec, value: Any) -> Any:
    """Return the normalised value of one field, or raise FieldError saying what is wrong."""
    normaliser = _NORMALISERS.get(spec.field_type, _string)
    return normaliser(spec, value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(f"Expected text, got {_type_name(value)}.")
    return value


def _string(spec: FieldSpec, value: Any) -> str:
    text = " ".join(_text(value).split())
    if spec.max_length is not None and len(text) > spec.max_length:
        raise FieldError(f"At most {spec.max_length} characters.")
    if spec.name in NAME_FIELDS and (text.islower() or text.isupper()):
        text = _title(text)
    return text


def _title(text: str) -> str:
    # str.title() would give "O'Neil" -> "O'Neil" but "mary-ann" -> "Mary-Ann" only by accident
    # of its word rules; do it explicitly on letters after a space, hyphen or apostrophe. A few
    # letters change shape when cased ("ß" -> "Ss", "ŉ" -> "ʼN"): a second pass settles them, so
    # that normalising a name again changes nothing more.
    def once(words: str) -> str:
        return re.sub(r"(^|[\s\-'’])(\w)", lambda m: m.group(1) + m.group(2).title(), words.lower())

    return once(once(text))


def _email(spec: FieldSpec, value: Any) -> str:
    text = _text(value)
    try:
        # No DNS: intake must not wait on the network, and a partner's lead is not refused
        # because a mail server is briefly unreachable.
        result = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise FieldError(f"Not a valid email address: {exc}") from None
    normalised = result.normalized.lower()
    if spec.max_length is not None and len(normalised) > spec.max_length:
        raise FieldError(f"At most {spec.max_length} characters.")
    return normalised


def _phone(spec: FieldSpec, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    text = _text(value)
    try:
        number = phonenumbers.parse(text, "US")
    except phonenumbers.NumberParseException:
        raise FieldError("Not a phone number; give a US number such as (212) 555-0142.") from None
    region = phonenumbers.region_code_for_number(number)
    if region not in US_PHONE_REGIONS or not phonenumbers.is_valid_number(number):
        raise FieldError("Not a valid US phone number; give one such as (212) 555-0142.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _zip(spec: FieldSpec, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        raise FieldError('Send ZIP codes as text ("02134") so that leading zeros survive.')
    match = ZIP_RE.match(_text(value))
    if not match:
        raise FieldError("Give a 5-digit ZIP code (or ZIP+4), e.g. 30301.")
    zip_code = match.group(1)
    if zip_lookup(zip_code) is None:
        raise FieldError(f"{zip_code} is not a US ZIP code.")
    return zip_code


def _state(spec: FieldSpec, value: Any) -> str:
    code = state_code(_text(value))
    if code is None:
        raise FieldError("Give a US state's two-letter code or name, e.g. TX or Texas.")
    return code


def _number(spec: FieldSpec, value: Any, *, integer: bool) -> Decimal:
    if isinstance(value, bool):
        raise FieldError(f"Expected a number, got {_type_name(value)}.")
    if isinstance(value, int | float):
        number = Decimal(str(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.replace(",", ""))
        except InvalidOperation:
            raise FieldError(f"Expected a number, got {value!r}.") from None
    else:
        raise FieldError(f"Expected a number, got {_type_name(value)}.")
    if not number.is_finite():
        raise FieldError("Expected a finite number.")
    if integer and number != number.to_integral_value():
        raise FieldError("Expected a whole number.")
    if spec.min_value is not None and number < spec.min_value:
        raise FieldError(f"At least {_plain(spec.min_value, integer)}.")
    if spec.max_value is not None and number > spec.max_value:
        raise FieldError(f"At most {_plain(spec.max_value, integer)}.")
    if number.adjusted() >= MAX_DIGITS:  # a context-free test: abs() would overflow
        raise FieldError("Too large a number.")
    return number


def _plain(number: Decimal, integer: bool) -> str:
    return str(int(number)) if integer else f"{number.normalize():f}"


def _integer(spec: FieldSpec, value: Any) -> int:
    return int(_number(spec, value, integer=True))


def _decimal(spec: FieldSpec, value: Any) -> int | float:
    number = _number(spec, value, integer=False)
    # Stored as a JSON number; whole values stay integers (a "$25,000" limit reads 25000).
    return int(number) if number == number.to_integral_value() else float(number)


def read_flag(value: Any) -> bool | None:
    """A yes/no as partners spell it (true, yes, y, 1 and their opposites), or None."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def _boolean(spec: FieldSpec, value: Any) -> bool:
    flag = read_flag(value)
    if flag is None:
        raise FieldError("Give true or false (yes/no and 1/0 are understood).")
    return flag


def _date(spec: FieldSpec, value: Any) -> str:
    text = _text(value)
    try:
        match = US_DATE_RE.match(text)
        if match:
            month, day, year = (int(g) for g in match.groups())
            parsed = date(year, month, day)
        else:
            parsed = date.fromisoformat(text)
    except ValueError:
        raise FieldError("Give a date as YYYY-MM-DD (or MM/DD/YYYY).") from None
    return parsed.isoformat()


def _choice(spec: FieldSpec, value: Any) -> str:
    text = _text(value)
    if text in spec.choices:
        return text
    folded = {choice.casefold(): choice for choice in spec.choices}
    if text.casefold() in folded:
        return folded[text.casefold()]
    raise FieldError(f"Choose one of {', '.join(spec.choices)}.")


_NORMALISERS = {
    FieldType.STRING: _string,
    FieldType.EMAIL: _email,
    FieldType.PHONE: _phone,
    FieldType.ZIP: _zip,
    FieldType.STATE: _state,
    FieldType.INTEGER: _integer,
    FieldType.DECIMAL: _decimal,
    FieldType.BOOLEAN: _boolean,
    FieldType.DATE: _date,
    FieldType.CHOICE: _choice,
}
