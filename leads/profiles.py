"""Posting profiles: read a seller's request in its own format as the envelope intake reads, and
answer it in its own format (pure: no database).

A source's `PostingProfile` says how it posts (`leads.models`); `Profile` is its plain copy. A
flat request (flat JSON, a form, a query string, XML) is a set of named parameters: the seller's
names go through the profile's aliases onto our field names or the reserved names below, their
values through its value maps, and come out as the envelope document `parse_submission` checks
(`{"vertical", "sub_id", "test", "ping_id", "fields", "consent"}`). Errors name the seller's own
parameters (`Zip`, not `fields.zip_code`), with intake's messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as xml_fromstring

from leads.intake import NOT_UTF8, json_loads_utf8, read_flag

Errors = dict[str, list[str]]

ENVELOPE = "envelope"
FLAT_JSON = "flat_json"
FORM = "form"
QUERY = "query"
XML = "xml"
FLAT_FORMATS = frozenset({FLAT_JSON, FORM, QUERY, XML})
BEARER = "bearer"
HEADER = "header"
PARAMETER = "parameter"

# Reserved parameter names of a flat request, before aliases: the envelope's own members ...
ENVELOPE_PARAMETERS = ("vertical", "sub_id", "test", "ping_id")
# ... and the consent record's items, each with its name in the envelope's `consent`.
CONSENT_PARAMETERS = {
    "tcpa_text": "text",
    "consent_timestamp": "timestamp",
    "ip_address": "ip",
    "trustedform_cert_url": "trustedform_cert_url",
    "jornaya_leadid": "jornaya_leadid",
    "landing_page_url": "page_url",
    "user_agent": "user_agent",
}
RESERVED_PARAMETERS = frozenset(ENVELOPE_PARAMETERS) | frozenset(CONSENT_PARAMETERS)
# An inbound ping's own members: the hashed contact details of its pre-ping duplicate check
# (reserved in a ping, where consent and ping_id are refused: exchange.rules).
PING_PARAMETERS = ("email_sha256", "phone_sha256")
# The envelope path of each reserved parameter (how intake names it in its errors).
RESERVED_PATHS = {
    **{name: name for name in ENVELOPE_PARAMETERS},
    **{name: f"consent.{key}" for name, key in CONSENT_PARAMETERS.items()},
}
MAX_PARAMETERS = 500
FORMAT_NAMES = {
    ENVELOPE: "the JSON envelope (Content-Type: application/json)",
    FLAT_JSON: "flat JSON (Content-Type: application/json)",
    FORM: "a form POST (Content-Type: application/x-www-form-urlencoded)",
    QUERY: "a GET with the lead in the query string",
    XML: "XML (Content-Type: application/xml)",
}
ANSWER_CONTENT_TYPES = {
    "xml": "application/xml; charset=utf-8",
    "text": "text/plain; charset=utf-8",
}


@dataclass(frozen=True)
class Profile:
    """How a source posts, as intake reads it; the default is the JSON envelope with a Bearer
    key, answered in JSON (a source without a posting profile)."""

    format: str = ENVELOPE
    key_location: str = BEARER
    key_name: str = ""
    aliases: Mapping[str, str] = field(default_factory=dict)
    value_maps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    keep_unknown: bool = False
    answer_format: str = "json"
    default_vertical: str = ""

    @property
    def is_flat(self) -> bool:
        return self.format in FLAT_FORMATS

    def key_place(self) -> str:
        """Where this source's key goes, in words."""
        if self.key_location == HEADER:
            return f"the {self.key_name} header"
        if self.key_location == PARAMETER:
            return f"the {self.key_name} parameter"
        return "Authorization: Bearer <key>"

    def takes_key_from(self, location: str, name: str) -> bool:
        """Whether a key found at (location, name) is where this source sends it."""
        if location != self.key_location:
            return False
        return location == BEARER or name.lower() == self.key_name.lower()


DEFAULT_PROFILE = Profile()


@dataclass(frozen=True)
class Reading:
    """A request read as an envelope document, with where each of its paths came from."""

    document: dict[str, Any] | None
    errors: Errors = field(default_factory=dict)
    # Envelope path (fields.zip_code, consent.ip, sub_id) -> the seller's name for it.
    names: Mapping[str, str] = field(default_factory=dict)
    # A flat request's paths are its parameters' names: `zip_code`, not `fields.zip_code`.
    flat: bool = False
    # A flat request's parameters as sent (the key's own parameter too); None for the envelope.
    parameters: Mapping[str, Any] | None = None

    def seller_errors(self, errors: Mapping[str, list[str]]) -> Errors:
        """Intake's errors, each under the seller's own name for its path."""
        return {self.seller_name(path): messages for path, messages in errors.items()}

    def seller_name(self, path: str) -> str:
        named = self.names.get(path)
        if named:
            return named
        return _default_name(path) if self.flat else path


# --- Reading a request -----------------------------------------------------------------------


def parameters_from_query(
    text: str, *, what: str = "query string"
) -> tuple[dict[str, str], Errors]:
    """Read a query string or form body; a name sent twice is an error, not a silent choice."""
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=MAX_PARAMETERS, errors="strict"
        )
    except ValueError:
        return {}, {"_": [f"The {what} holds more than {MAX_PARAMETERS} parameters."]}
    except UnicodeDecodeError:
        return {}, {"_": [f"The {what} is not UTF-8 once %-decoded."]}
    parameters: dict[str, str] = {}
    errors: Errors = {}
    for name, value in pairs:
        if name in parameters:
            errors[name] = ["Sent more than once; send each parameter once."]
        parameters[name] = value
    return parameters, errors


def parameters_from_form(body: bytes) -> tuple[dict[str, str], Errors]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        # A browser %-encodes everything; raw UTF-8 in a form body is common enough to read.
        try:
            text = body.decode()
        except UnicodeDecodeError:
            return {}, {"_": ["The form body is not UTF-8."]}
    return parameters_from_query(text, what="form body")


def parameters_from_json(body: bytes) -> tuple[dict[str, Any], Errors]:
    """Read a flat JSON object: the lead's fields next to the reserved names."""
    if not body.strip():
        return {}, {"_": ["The body is empty; send the lead as a JSON object."]}
    try:
        document = json_loads_utf8(body)
    except UnicodeDecodeError:
        return {}, {"_": [NOT_UTF8]}
    except RecursionError:
        return {}, {"_": ["Nested too deeply to read."]}
    except ValueError as exc:
        return {}, {"_": [f"Not valid JSON: {exc}"]}
    if not isinstance(document, dict):
        return {}, {"_": ["Send a JSON object of parameters."]}
    return document, {}


def parameters_from_xml(body: bytes) -> tuple[dict[str, str], Errors]:
    """Read XML: any root, each child element a parameter (`<Zip>10001</Zip>`).

    DTDs and entity declarations are refused outright (billion laughs, external entities).
    """
    if not body.strip():
        return {}, {"_": ["The body is empty; send the lead as an XML document."]}
    try:
        root = xml_fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        return {}, {
            "_": [f"XML with a DTD or entity declarations is refused ({type(exc).__name__})."]
        }
    except ParseError as exc:
        return {}, {"_": [f"Not well-formed XML: {exc}"]}
    parameters: dict[str, str] = {}
    errors: Errors = {}
    for child in root:
        if not isinstance(child.tag, str):  # a comment or processing instruction
            continue
        name = child.tag.rpartition("}")[2]  # without its namespace
        if name in parameters:
            errors[name] = ["Sent more than once; send each element once."]
        if len(child):
            errors[name] = ["Give a plain value, not nested elements."]
        parameters[name] = (child.text or "").strip()
    if len(parameters) > MAX_PARAMETERS:
        return {}, {"_": [f"The document holds more than {MAX_PARAMETERS} elements."]}
    return parameters, errors


def _mapped(value: Any, value_map: Mapping[str, Any] | None) -> Any:
    """The value a seller's value stands for: exact first, then ignoring case."""
    if not value_map:
        return value
    if isinstance(value, bool):
        spelled = "true" if value else "false"
    elif isinstance(value, int | float | str):
        spelled = str(value)
    else:
        return value
    if spelled in value_map:
        return value_map[spelled]
    folded = spelled.strip().casefold()
    for seller_value, ours in value_map.items():
        if seller_value.casefold() == folded:
            return ours
    return value


def _flag(value: Any) -> bool | None:
    # An empty `test=` (a form's unticked box sends none, a template often sends it empty).
    return False if value == "" else read_flag(value)


def _default_name(path: str) -> str:
    """A flat request's own name for an envelope path when the seller used none of its own."""
    if path.startswith("fields."):
        return path.removeprefix("fields.")
    for name, reserved in RESERVED_PATHS.items():
        if reserved == path:
            return name
    return path


def flat_document(
    parameters: Mapping[str, Any],
    profile: Profile,
    *,
    skip: Iterable[str] = (),
    members: Iterable[str] = (),
) -> Reading:
    """Turn a flat request's parameters into the envelope document intake reads.

    `skip` names parameters that are not the lead's (the key's own parameter); `members`, the
    envelope members this kind of request has besides the reserved ones (a ping's hashes).
    """
    own = frozenset(members)
    skipped = {name.lower() for name in skip}
    document: dict[str, Any] = {"fields": {}}
    consent: dict[str, Any] = {}
    names: dict[str, str] = {}
    errors: Errors = {}
    for name, sent in parameters.items():
        if name.lower() in skipped:
            continue
        target = profile.aliases.get(name, name)
        path = RESERVED_PATHS.get(target, target if target in own else f"fields.{target}")
        if path in names:
            message = f"{names[path]} and {name} both give {target}; send one."
            errors[name] = [message]
            continue
        names[path] = name
        value = _mapped(sent, profile.value_maps.get(target))
        if target == "test":
            flag = _flag(value)
            if flag is None:
                errors[name] = ["Give true or false (yes/no and 1/0 are understood)."]
                continue
            document["test"] = flag
        elif target in CONSENT_PARAMETERS:
            consent[CONSENT_PARAMETERS[target]] = value
        elif target in ENVELOPE_PARAMETERS or target in own:
            document[target] = value
        else:
            document["fields"][target] = value
    if consent:
        document["consent"] = consent
    if "vertical" not in document and profile.default_vertical:
        document["vertical"] = profile.default_vertical
    # Paths the seller did not send (a required field left out) carry its alias, if it has one.
    for seller_name, target in profile.aliases.items():
        path = RESERVED_PATHS.get(target, target if target in own else f"fields.{target}")
        names.setdefault(path, seller_name)
    return Reading(
        document=None if errors else document,
        errors=errors,
        names=names,
        flat=True,
        parameters=dict(parameters),
    )


def parameters_text(parameters: Mapping[str, Any], fmt: str) -> str:
    """A flat request's parameters written out again in its format (a stored copy of a request
    with some values removed)."""
    if fmt == FLAT_JSON:
        return json.dumps(dict(parameters))
    if fmt == XML:
        root = Element("request")
        for name, value in parameters.items():
            SubElement(root, name).text = _plain(value)
        return tostring(root, encoding="unicode")
    return urlencode({name: _plain(value) for name, value in parameters.items()})


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def envelope_document(document: Any, profile: Profile) -> Reading:
    """The envelope as sent, with the profile's aliases and value maps applied to its fields."""
    if not (profile.aliases or profile.value_maps) or not isinstance(document, dict):
        return Reading(document=document)
    fields = document.get("fields")
    if not isinstance(fields, dict):
        return Reading(document=document)
    mapped: dict[str, Any] = {}
    names: dict[str, str] = {}
    errors: Errors = {}
    for name, value in fields.items():
        target = profile.aliases.get(name, name)
        if target in mapped:
            earlier = names[f"fields.{target}"]
            errors[f"fields.{name}"] = [f"{earlier} and {name} both give {target}; send one."]
            continue
        names[f"fields.{target}"] = f"fields.{name}"
        mapped[target] = _mapped(value, profile.value_maps.get(target))
    for seller_name, target in profile.aliases.items():
        names.setdefault(f"fields.{target}", f"fields.{seller_name}")
    if errors:
        return Reading(document=None, errors=errors, names=names)
    return Reading(document={**document, "fields": mapped}, names=names)


def split_unknown(
    fields: Mapping[str, Any], known: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a lead's fields into the vertical's own and the rest (kept as its extra data)."""
    names = set(known)
    own = {name: value for name, value in fields.items() if name in names}
    extra = {name: value for name, value in fields.items() if name not in names}
    return own, extra


def mask_key(text: str, key: str) -> str:
    """The text with every copy of the key replaced, for storing a request in which it came."""
    return text.replace(key, "[masked key]") if key else text


# --- A profile's own checks (PostingProfile.clean) -------------------------------------------


def profile_errors(  # noqa: PLR0912 - one check per rule, each with its own message
    *,
    format: str,
    key_location: str,
    key_name: str,
    aliases: Any,
    value_maps: Any,
    default_vertical: str,
    vertical_fields: Mapping[str, Iterable[str]],
) -> dict[str, str]:
    """Return what is wrong with a profile, per model field; `vertical_fields` maps each of the
    source's verticals to its field names."""
    errors: dict[str, str] = {}
    known: set[str] = set()
    for names in vertical_fields.values():
        known.update(names)
    if key_location in (HEADER, PARAMETER) and not key_name.strip():
        errors["key_name"] = f"Name the {key_location} that carries the key (e.g. X-API-Key, key)."
    elif key_location == BEARER and key_name.strip():
        errors["key_name"] = "A Bearer key has no name: leave this empty, or choose a header."
    if format == QUERY and key_location == BEARER:
        errors["key_location"] = (
            "A GET seller sends its key as a query parameter or a header, not as a Bearer token "
            "(choose 'parameter' or 'header')."
        )
    if default_vertical and default_vertical not in vertical_fields:
        errors["default_vertical"] = (
            f"{default_vertical} is not among the source's verticals "
            f"({', '.join(sorted(vertical_fields)) or 'none'})."
        )
    reserved = RESERVED_PARAMETERS | set(PING_PARAMETERS) if format in FLAT_FORMATS else frozenset()
    if not isinstance(aliases, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in aliases.items()
    ):
        errors["aliases"] = 'Give an object of the seller\'s names to ours: {"Zip": "zip_code"}.'
    else:
        problems = []
        targets: dict[str, str] = {}
        for seller_name, target in aliases.items():
            if target in targets:
                problems.append(f"{targets[target]} and {seller_name} both name {target}")
            targets[target] = seller_name
            if target not in known and target not in reserved:
                also = f" and it is no reserved name ({', '.join(sorted(reserved))})"
                problems.append(
                    f"{seller_name} -> {target}: no vertical of the source has a field {target}"
                    + (also if reserved else "")
                )
            if key_location == PARAMETER and seller_name.lower() == key_name.strip().lower():
                problems.append(f"{seller_name} carries the key: it cannot be an alias too")
        if problems:
            errors["aliases"] = "; ".join(problems) + "."
    if not isinstance(value_maps, dict) or not all(
        isinstance(m, dict) for m in value_maps.values()
    ):
        errors["value_maps"] = (
            'Give an object of our field names to objects of values: {"homeowner": {"Yes": true}}.'
        )
    else:
        unknown = sorted(
            name for name in value_maps if name not in known and name not in RESERVED_PARAMETERS
        )
        if unknown:
            errors["value_maps"] = (
                f"No vertical of the source has a field {', '.join(unknown)}: a value map is "
                "keyed by our field name (after aliases)."
            )
    return errors


# --- Answering in the profile's format -------------------------------------------------------


def _answer_items(body: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A JSON answer or problem as flat (name, value) pairs: a problem's `status` is the HTTP
    status, so it becomes `http_status` and the answer's status `error`."""
    items: list[tuple[str, Any]] = []
    problem = "type" in body and "title" in body
    if problem:
        items.append(("status", "error"))
    for name, value in body.items():
        if name == "errors":
            continue
        if problem and name == "status":
            items.append(("http_status", value))
        elif problem and name == "detail":
            items.append(("reason", value))
        else:
            items.append((name, value))
    for path, messages in (body.get("errors") or {}).items():
        for message in messages:
            items.append((f"error.{path}", message))
    return items


def _text_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return " ".join(str(value).split())  # one pair a line: no line breaks inside a value


def answer_bytes(answer_format: str, body: Mapping[str, Any]) -> tuple[bytes, str]:
    """Render a JSON answer (or problem) in a profile's answer format: (bytes, content type)."""
    if answer_format == "text":
        lines = [f"{name}={_text_value(value)}" for name, value in _answer_items(body)]
        return ("\n".join(lines) + "\n").encode(), ANSWER_CONTENT_TYPES["text"]
    root = Element("response")
    errors = body.get("errors") or {}
    for name, value in _answer_items({k: v for k, v in body.items() if k != "errors"}):
        SubElement(root, name).text = _text_value(value)
    if errors:
        element = SubElement(root, "errors")
        for path, messages in errors.items():
            for message in messages:
                SubElement(element, "error", field=path).text = message
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n'
    return (declaration + tostring(root, encoding="unicode")).encode(), ANSWER_CONTENT_TYPES["xml"]
