"""Turn a lead into a buyer's ping or post request (pure, no database).

`map_fields` renames and reformats the lead's fields by the contract's field mappings;
`build_request` encodes them for the buyer's endpoint (JSON, form or XML body, or a GET query),
adds authentication, and keeps a masked copy of the URL and headers that is safe to store and show.
Loading mappings and endpoints from the database is the caller's job: `mapping_from_model` and
`endpoint_from_model` turn rows into the frozen specs used here.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import SplitResult, quote, quote_plus, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

from buyers.fields import mask
from buyers.models import (
    HEADER_NAME_RE,
    SECRET_HEADER_WORDS,
    AuthType,
    BodyFormat,
    EndpointKind,
    HttpMethod,
    MappingApplies,
    Transform,
)
from routing.context import context_value, is_context_path

USER_AGENT = "Leadswitch/1"
MASK = "••••"

_MISSING = object()
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "on"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "off"})
# Characters a phone number may be written with; anything else (letters, "ext") is not a phone.
_PHONE_RE = re.compile(r"^\+?[0-9\s().\-]+$")
_ISO_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
_US_DATE_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# str.title() capitalises after digits and apostrophes ("3Rd", "It'S"): start words only.
_WORD_START_RE = re.compile(r"(^|[\s\-/])(\w)")
_XML_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9._\-]*$")
# XML 1.0 cannot carry these at all, not even as character references.
_XML_INVALID_RE = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_HEADER_VALUE_BAD_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class MappingError(ValueError):
    """A lead value a buyer's mapping cannot format, or an endpoint a request cannot be built for.

    The message is plain enough to show ops on a test post, and never repeats the value (PII) or
    a secret. Retrying does not help: the lead or the configuration has to change.
    """


@dataclass(frozen=True)
class MappingSpec:
    """One field of the buyer's request: the parts of a FieldMapping that mapping needs."""

    source_fields: tuple[str, ...]
    target_field: str
    transform: str = Transform.NONE.value
    value_map: dict[str, Any] = field(default_factory=dict)
    static_value: str = ""
    default_value: str = ""
    applies_to: str = MappingApplies.BOTH.value


@dataclass(frozen=True)
class EndpointSpec:
    """Where and how a ping or post is sent: the parts of a DeliveryEndpoint a request needs."""

    kind: str
    url: str
    method: str = HttpMethod.POST.value
    body_format: str = BodyFormat.JSON.value
    headers: dict[str, str] = field(default_factory=dict)
    auth_type: str = AuthType.NONE.value
    auth_username: str = ""
    auth_param_name: str = ""
    auth_secret: str = ""
    connect_timeout_s: float = 1.0
    read_timeout_s: float = 3.0


@dataclass(frozen=True)
class OutgoingRequest:
    """A request ready to send, and its masked twin (`masked_url`, `masked_headers`) to store."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    masked_url: str
    masked_headers: dict[str, str]
    timeout: tuple[float, float] = (1.0, 3.0)

    @property
    def body_text(self) -> str:
        """Return the body as text, for the attempt log."""
        return self.body.decode("utf-8", errors="replace")


def mapping_from_model(model: Any) -> MappingSpec:
    """Build a MappingSpec from a buyers.FieldMapping row."""
    return MappingSpec(
        source_fields=tuple(
            part.strip() for part in (model.source_field or "").split("+") if part.strip()
        ),
        target_field=model.target_field,
        transform=str(model.transform or Transform.NONE),
        value_map=dict(model.value_map) if isinstance(model.value_map, dict) else {},
        static_value=model.static_value or "",
        default_value=model.default_value or "",
        applies_to=str(model.applies_to or MappingApplies.BOTH),
    )


def endpoint_from_model(model: Any) -> EndpointSpec:
    """Build an EndpointSpec from a buyers.DeliveryEndpoint row (secret already decrypted)."""
    headers = model.headers if isinstance(model.headers, dict) else {}
    return EndpointSpec(
        kind=str(model.kind),
        url=model.url,
        method=str(model.method),
        body_format=str(model.body_format),
        headers={str(name): str(value) for name, value in headers.items()},
        auth_type=str(model.auth_type),
        auth_username=model.auth_username or "",
        auth_param_name=model.auth_param_name or "",
        auth_secret=model.auth_secret or "",
        connect_timeout_s=model.connect_timeout_ms / 1000,
        read_timeout_s=model.read_timeout_ms / 1000,
    )


# --- Transforms -------------------------------------------------------------------------------


class _Unusable(Exception):
    """The value cannot take this transform; the argument says why, in words."""


def _as_text(value: Any) -> str:
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


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        raise _Unusable("is not text")
    return _as_text(value)


def _title(value: Any) -> str:
    return _WORD_START_RE.sub(lambda m: m[1] + m[2].upper(), _text(value).lower())


def _digits(value: Any) -> str:
    digits = re.sub(r"[^0-9]", "", _text(value))
    if not digits:
        raise _Unusable("has no digits")
    return digits


def _us_phone(value: Any) -> str:
    """Return the 10 digits of a US phone number written as E.164, 10 or 11 digits, or formatted."""
    text = _text(value).strip()
    digits = re.sub(r"[^0-9]", "", text)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if not _PHONE_RE.match(text) or len(digits) != 10:
        raise _Unusable("is not a US phone number (10 digits, optionally after +1)")
    return digits


def _dashed_phone(value: Any) -> str:
    digits = _us_phone(value)
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


def _date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value).strip()
    match = _ISO_DATE_RE.match(text)
    try:
        if match:
            return date(int(match[1]), int(match[2]), int(match[3]))
        match = _US_DATE_RE.match(text)
        if match:
            return date(int(match[3]), int(match[1]), int(match[2]))
    except ValueError:
        pass
    raise _Unusable("is not a date (YYYY-MM-DD or MM/DD/YYYY)")


def _us_date(value: Any) -> str:
    day = _date(value)
    # strftime drops the zero padding of years before 1000 on some platforms.
    return f"{day.month:02d}/{day.day:02d}/{day.year:04d}"


def _yes(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal) and value in (0, 1):
        return value == 1
    word = value.strip().lower() if isinstance(value, str) else None
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise _Unusable("is not a yes/no value (true/false, yes/no, 1/0)")


def _first_word(value: Any) -> str:
    words = _text(value).split()
    return words[0] if words else ""


def _last_words(value: Any) -> str:
    return " ".join(_text(value).split()[1:])


_TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    Transform.NONE: lambda value: value,
    Transform.UPPER: lambda value: _text(value).upper(),
    Transform.LOWER: lambda value: _text(value).lower(),
    Transform.TITLE: _title,
    Transform.DIGITS: _digits,
    Transform.PHONE_E164: lambda value: "+1" + _us_phone(value),
    Transform.PHONE_10: _us_phone,
    Transform.PHONE_DASHED: _dashed_phone,
    Transform.PHONE_AREA_CODE: lambda value: _us_phone(value)[:3],
    Transform.PHONE_LOCAL: lambda value: _us_phone(value)[3:],
    Transform.DATE_US: _us_date,
    Transform.DATE_ISO: lambda value: _date(value).isoformat(),
    Transform.FIRST_WORD: _first_word,
    Transform.LAST_WORDS: _last_words,
    Transform.BOOL_YN: lambda value: "Y" if _yes(value) else "N",
    Transform.BOOL_10: lambda value: "1" if _yes(value) else "0",
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
    except _Unusable as exc:
        raise MappingError(f"{field} {exc.args[0]}.") from None


# --- Mapping ----------------------------------------------------------------------------------


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _value_map_lookup(value_map: Mapping[str, Any], value: Any) -> Any:
    if not value_map:
        return value
    key = _as_text(value)
    if key in value_map:
        return value_map[key]
    # JSON spells booleans true/false; ops may type them as Python prints them.
    if isinstance(value, bool) and str(value) in value_map:
        return value_map[str(value)]
    return value


def _source_value(name: str, data: Mapping[str, Any], context: Mapping[str, Any] | None) -> Any:
    if context is not None and is_context_path(name):
        return context_value(context, name)
    return data.get(name)


def _mapped_value(
    mapping: MappingSpec, data: Mapping[str, Any], context: Mapping[str, Any] | None
) -> Any:
    if not mapping.source_fields:
        return mapping.static_value or _MISSING
    values = [_source_value(name, data, context) for name in mapping.source_fields]
    present = [value for value in values if not _is_missing(value)]
    if not present:
        return _MISSING
    if len(mapping.source_fields) == 1:
        value = present[0]
    else:
        value = " ".join(_as_text(part).strip() for part in present)
    label = f"Field {'+'.join(mapping.source_fields)} (sent as {mapping.target_field})"
    value = apply_transform(mapping.transform, value, field=label)
    if _is_missing(value):
        return _MISSING
    return _value_map_lookup(mapping.value_map, value)


def map_fields(
    kind: str,
    data: Mapping[str, Any],
    mappings: Sequence[MappingSpec],
    ping_fields: AbstractSet[str],
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Return the fields of a ping or post, named and formatted as the buyer expects.

    Without mappings for this kind the lead's own fields go as they are (a ping: only
    `ping_fields`). A ping never carries a lead field outside `ping_fields`, whatever the
    mappings say: such a mapping is skipped for pings. Where a target has a mapping for this
    kind only, that mapping replaces the one for both kinds. A source written as a dotted path
    (`lead.id`, `consent.trustedform_cert_url`, `ping.bid_id`) reads the lead's `context`
    (routing/context.py), which for a ping holds nothing personal.
    """
    if kind not in (EndpointKind.PING, EndpointKind.POST):
        raise ValueError(f"kind must be 'ping' or 'post', not {kind!r}")
    applicable = [m for m in mappings if m.applies_to in (MappingApplies.BOTH, kind)]
    if not applicable:
        if kind == EndpointKind.PING:
            return {name: value for name, value in data.items() if name in ping_fields}
        return dict(data)

    specific = {m.target_field for m in applicable if m.applies_to == kind}
    fields: dict[str, Any] = {}
    for mapping in applicable:
        if mapping.applies_to == MappingApplies.BOTH and mapping.target_field in specific:
            continue
        # The PII guard: a ping is anonymous, so a mapping that reads any non-ping field is
        # dropped as a whole (its default too), never sent with the PII part left out.
        if kind == EndpointKind.PING and not all(
            f in ping_fields or (context is not None and is_context_path(f))
            for f in mapping.source_fields
        ):
            continue
        value = _mapped_value(mapping, data, context)
        if value is _MISSING:
            if mapping.default_value:
                fields[mapping.target_field] = mapping.default_value
            continue
        fields[mapping.target_field] = value
    return fields


# --- Requests ---------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    # Decimal as text: a float would round money.
    return str(value)


def _xml_name(name: str) -> str:
    """Return `name` as a plain XML element name (letters, digits, . _ -), replacing the rest."""
    if _XML_NAME_RE.match(name) and not name.lower().startswith("xml"):
        return name
    cleaned = re.sub(r"[^A-Za-z0-9._\-]", "_", name)
    # Names may not start with a digit, . or -, and xml... is reserved.
    if not cleaned or not re.match(r"[A-Za-z_]", cleaned) or cleaned.lower().startswith("xml"):
        cleaned = "_" + cleaned
    return cleaned


def _xml_text(value: Any) -> str:
    text = _XML_INVALID_RE.sub("", _as_text(value))
    # A raw CR is read back as LF by every parser; a character reference keeps it.
    return xml_escape(text, {"\r": "&#13;"})


def _encode_body(body_format: str, fields: Mapping[str, Any]) -> tuple[bytes, str]:
    if body_format == BodyFormat.JSON:
        try:
            text = json.dumps(
                fields,
                separators=(",", ":"),
                ensure_ascii=False,
                allow_nan=False,
                default=_json_default,
            )
        except ValueError:
            raise MappingError(
                "A field holds a number JSON cannot carry (NaN or infinity)."
            ) from None
        # Every str sits inside a JSON string, where backslashreplace's \udxxx for a lone
        # surrogate is exactly JSON's escape for it: the body stays valid instead of failing.
        return text.encode("utf-8", "backslashreplace"), "application/json"
    if body_format == BodyFormat.FORM:
        pairs = [(name, _as_text(value)) for name, value in fields.items()]
        body = urlencode(pairs, encoding="utf-8", errors="replace").encode("ascii")
        return body, "application/x-www-form-urlencoded"
    if body_format == BodyFormat.XML:
        elements = "".join(
            f"<{tag}>{_xml_text(value)}</{tag}>"
            for tag, value in ((_xml_name(name), value) for name, value in fields.items())
        )
        text = f'<?xml version="1.0" encoding="UTF-8"?><lead>{elements}</lead>'
        return text.encode("utf-8"), "application/xml; charset=utf-8"
    raise MappingError(f"The endpoint has an unknown body format {body_format!r}.")


def _set_header(headers: dict[str, str], name: str, value: str) -> None:
    """Set a header, replacing any spelling of the same name (header names ignore case)."""
    for existing in [n for n in headers if n.lower() == name.lower()]:
        del headers[existing]
    headers[name] = value


def _check_header(name: str, value: str) -> None:
    if not HEADER_NAME_RE.match(name):
        raise MappingError(f"{name!r} is not a valid HTTP header name.")
    # HTTP clients refuse line breaks (header injection) and some refuse leading white space;
    # header bytes are Latin-1 on the wire. Fail here, in words an ops test post can show,
    # rather than as an exception from deep inside the HTTP client.
    if _HEADER_VALUE_BAD_RE.search(value) or value[:1].isspace():
        raise MappingError(f"Header {name} has a line break, control character or leading space.")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise MappingError(f"Header {name} has characters HTTP headers cannot carry.") from None


def _scrub(text: str, secrets: Sequence[str]) -> str:
    """Remove every spelling of the secret that slipped into text meant to be stored."""
    # Every replacement shortens the text, so this ends even when removing one spelling forms
    # another; a short secret may blot out innocent text, which is the safe way to fail.
    while found := next((s for s in secrets if s and s in text), None):
        text = text.replace(found, MASK if len(found) > len(MASK) else "")
    return text


def _masked(name: str, value: str) -> str:
    # Refused by DeliveryEndpoint.clean; masked anyway for rows saved before that rule.
    if any(word in name.lower() for word in SECRET_HEADER_WORDS):
        return mask(value)
    return value


def _auth(endpoint: EndpointSpec) -> tuple[tuple[str, str] | None, tuple[str, str] | None, str]:
    """Return the auth header, the auth query parameter, and the base64 credential (basic)."""
    kind = endpoint.auth_type
    secret = endpoint.auth_secret
    if kind == AuthType.NONE:
        return None, None, ""
    if kind not in AuthType.values:
        raise MappingError(f"The endpoint has an unknown authentication type {kind!r}.")
    if not secret:
        raise MappingError("The endpoint's authentication has no secret.")
    if kind == AuthType.BASIC:
        if not endpoint.auth_username or ":" in endpoint.auth_username:
            raise MappingError("Basic authentication needs a user name without ':'.")
        credential = f"{endpoint.auth_username}:{secret}".encode()
        token = base64.b64encode(credential).decode("ascii")
        return ("Authorization", f"Basic {token}"), None, token
    if kind == AuthType.BEARER:
        return ("Authorization", f"Bearer {secret}"), None, ""
    if not endpoint.auth_param_name:
        raise MappingError("Name the header or query parameter that carries the key.")
    if kind == AuthType.HEADER:
        return (endpoint.auth_param_name, secret), None, ""
    return None, (endpoint.auth_param_name, secret), ""


def _with_query(url_parts: SplitResult, *extra: str) -> str:
    query = "&".join(part for part in (url_parts.query, *extra) if part)
    return urlunsplit(url_parts._replace(query=query))


@dataclass(frozen=True)
class PreparedEndpoint:
    """An endpoint with everything that does not depend on the lead worked out once: its
    method, URL, headers and authentication, checked, and their masked twins."""

    method: str
    url_parts: SplitResult
    body_format: str
    headers: dict[str, str]
    masked_headers: dict[str, str]
    auth_query: tuple[str, str] | None
    spellings: tuple[str, ...]
    timeout: tuple[float, float]
    # The URLs when they do not carry the fields (anything but GET).
    url: str
    masked_url: str

    def request(
        self, fields: Mapping[str, Any], *, personal: AbstractSet[str] = frozenset()
    ) -> OutgoingRequest:
        """Encode the lead's mapped fields into a request to this endpoint.

        `personal` names the fields that carry personal data: a GET sends them in its query,
        and the URL kept on record shows them masked.
        """
        body = b""
        url, masked_url = self.url, self.masked_url
        if self.method == HttpMethod.GET:
            pairs = [(name, _as_text(value)) for name, value in fields.items()]
            masked = [(name, MASK if name in personal else value) for name, value in pairs]
            url, masked_url = _urls(
                self.url_parts,
                urlencode(pairs, errors="replace"),
                urlencode(masked, errors="replace"),
                self.auth_query,
                self.spellings,
            )
        else:
            body, _ = _encode_body(self.body_format, fields)
        return OutgoingRequest(
            method=self.method,
            url=url,
            headers=dict(self.headers),
            body=body,
            masked_url=masked_url,
            masked_headers=dict(self.masked_headers),
            timeout=self.timeout,
        )


def _urls(
    url_parts: SplitResult,
    field_query: str,
    masked_field_query: str,
    auth_query: tuple[str, str] | None,
    spellings: Sequence[str],
) -> tuple[str, str]:
    """The URL to call and the one to store, with the fields' query and the key's, if any."""
    if auth_query:
        param = quote_plus(auth_query[0])
        url = _with_query(url_parts, field_query, f"{param}={quote_plus(auth_query[1])}")
        masked_url = _with_query(url_parts, masked_field_query, f"{param}={mask(auth_query[1])}")
    else:
        url = _with_query(url_parts, field_query)
        masked_url = _with_query(url_parts, masked_field_query)
    return url, _scrub(masked_url, spellings)


def prepare_endpoint(endpoint: EndpointSpec) -> PreparedEndpoint:
    """Check the endpoint and work out all of its requests have in common.

    GET sends the fields in the query string and no body. The masked URL and headers carry no
    secret and may be stored and shown.
    """
    method = endpoint.method.upper()
    if method not in HttpMethod.values:
        raise MappingError(f"The endpoint has an unsupported HTTP method {endpoint.method!r}.")
    url_parts = urlsplit(endpoint.url)
    if url_parts.scheme not in ("http", "https") or not url_parts.hostname:
        raise MappingError("The endpoint URL must be an http:// or https:// address.")

    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if method != HttpMethod.GET:
        _, content_type = _encode_body(endpoint.body_format, {})
        headers["Content-Type"] = content_type
    for name, value in endpoint.headers.items():
        _set_header(headers, name, value)

    auth_header, auth_query, basic_token = _auth(endpoint)
    if auth_header:
        _set_header(headers, *auth_header)
    for name, value in headers.items():
        _check_header(name, value)

    secret = endpoint.auth_secret if endpoint.auth_type != AuthType.NONE else ""
    spellings = tuple(
        s for s in (secret, quote(secret, safe=""), quote_plus(secret), basic_token) if s
    )
    auth_header_name = auth_header[0] if auth_header else None
    masked_headers = {
        name: _scrub(mask(secret) if name == auth_header_name else _masked(name, value), spellings)
        for name, value in headers.items()
    }
    url, masked_url = _urls(url_parts, "", "", auth_query, spellings)
    return PreparedEndpoint(
        method=method,
        url_parts=url_parts,
        body_format=endpoint.body_format,
        headers=headers,
        masked_headers=masked_headers,
        auth_query=auth_query,
        spellings=spellings,
        timeout=(endpoint.connect_timeout_s, endpoint.read_timeout_s),
        url=url,
        masked_url=masked_url,
    )


def build_request(endpoint: EndpointSpec, fields: Mapping[str, Any]) -> OutgoingRequest:
    """Encode mapped fields for the endpoint, with its headers and authentication."""
    return prepare_endpoint(endpoint).request(fields)
