"""A source's posting instructions: the page a seller's developer integrates from.

Everything on it is worked out from the source's posting profile and its verticals' schemas: the
endpoint, where the key goes (a placeholder, never a key), a field table per vertical in the
seller's own names, the reserved parameters, a `curl` example per vertical in the source's format
(values from `leads.samples`, which intake accepts), and the answers, rendered by the leads
endpoint's own functions (`leads.api.views.render_result` / `render_outcome`, and so
`leads.profiles.answer_bytes`). The pure parts come first; `posting_instructions` reads the
source and puts the page together. Staff share it by a signed link that expires
(`instructions_token`, `POSTING_INSTRUCTIONS_LINK_DAYS`).
"""

from __future__ import annotations

import copy
import json
import shlex
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import quote
from xml.etree.ElementTree import Element, SubElement, indent, tostring

from django.conf import settings
from django.core import signing
from django.http import HttpRequest
from django.urls import reverse
from rest_framework.request import ForcedAuthentication, Request

from config.problems import PROBLEM_TYPES
from leads import profiles
from leads.api.auth import SourcePrincipal
from leads.api.views import render_outcome, render_result
from leads.intake import (
    FieldError,
    FieldSpec,
    invalid_lead_detail,
    normalise_fields,
    normalise_value,
    parse_submission,
    specs_from_models,
)
from leads.models import FieldType, Lead, LeadStatus, Source, SourceApiKey, Vertical
from leads.profiles import (
    BEARER,
    CONSENT_PARAMETERS,
    FORMAT_NAMES,
    HEADER,
    Profile,
    Reading,
)
from leads.samples import SAMPLE_CONSENT, sample_value
from leads.selectors import posting_profile, source_schema_fields, verticals_for_source
from leads.services import IngestResult, IntakeVerdict
from leads.store import IntakeChecks

KEY_PLACEHOLDER = "YOUR_API_KEY"
EXAMPLE_SUB_ID = "example"
# The ids the answer examples carry; a real answer carries the lead's own.
EXAMPLE_LEAD_ID = uuid.UUID("3f0c5e2a-7d1b-4c8e-9a6f-0b1d2c3e4f50")
EARLIER_LEAD_ID = uuid.UUID("9b2e4d6f-1a3c-4e5f-8d7b-6c5a4b3e2d10")
EXAMPLE_BUYER_PRICE = Decimal("24.00")
EXAMPLE_SCORE, EXAMPLE_TIER = 72, "warm"
LINK_SALT = "leadswitch.posting-instructions"
# The problems the leads endpoint answers, in the order a developer meets them.
LEAD_PROBLEMS = (
    "malformed-request",
    "invalid-lead",
    "unauthenticated",
    "forbidden",
    "method-not-allowed",
    "duplicate-lead",
    "payload-too-large",
    "unsupported-media-type",
    "idempotency-key-reused",
    "rate-limited",
    # A post that follows an inbound ping (ping_id).
    "ping-not-found",
    "ping-fields-changed",
    "ping-already-posted",
    "ping-expired",
    "ping-without-bid",
    "server-error",
    "unavailable",
)
RESERVED_MEANINGS = {
    "vertical": "The slug of the lead's vertical.",
    "sub_id": "Your own tracking id (campaign, sub-affiliate), up to 255 characters; you can "
    "filter your leads by it.",
    "test": "true for a test lead (see Test mode); false or left out for a real one.",
    "ping_id": "The ping id of an inbound ping this post follows up (ping/post only).",
    "tcpa_text": "The consent (TCPA) text the consumer agreed to.",
    "consent_timestamp": "When they agreed: ISO 8601 with its time zone, e.g. "
    "2026-05-01T14:03:00Z.",
    "ip_address": "The consumer's IPv4 or IPv6 address.",
    "trustedform_cert_url": "The TrustedForm certificate URL (on trustedform.com).",
    "jornaya_leadid": "The Jornaya LeadiD token.",
    "landing_page_url": "The http(s) page the consumer agreed on.",
    "user_agent": "The consumer's browser user agent.",
    "sellers": "The companies the consumer agreed to hear from (a list).",
}
# The envelope's consent members by the flat parameter that carries each (and `sellers`).
ENVELOPE_CONSENT = {**{v: k for k, v in CONSENT_PARAMETERS.items()}, "sellers": "sellers"}
TYPE_HINTS = {
    FieldType.STRING: "text",
    FieldType.EMAIL: "e-mail address",
    FieldType.PHONE: "US phone, e.g. (212) 555-0142 or +12125550142",
    FieldType.ZIP: "5-digit ZIP (or ZIP+4), as text",
    FieldType.STATE: "two-letter US state, e.g. TX (or its name)",
    FieldType.INTEGER: "whole number",
    FieldType.DECIMAL: "number",
    FieldType.BOOLEAN: "true/false (yes/no, 1/0)",
    FieldType.DATE: "date, YYYY-MM-DD (or MM/DD/YYYY)",
    FieldType.CHOICE: "one of the allowed values (any case)",
}
# A value of each type intake refuses, for the refused answer's example.
BAD_VALUES = {
    FieldType.ZIP: "1234",
    FieldType.EMAIL: "jane.sample@",
    FieldType.PHONE: "555-01",
    FieldType.DATE: "1980-13-45",
    FieldType.STATE: "XX",
    FieldType.INTEGER: "many",
    FieldType.DECIMAL: "lots",
    FieldType.BOOLEAN: "maybe",
    FieldType.CHOICE: "none-of-these",
}


# --- The pure parts ---------------------------------------------------------------------------


def seller_name(profile: Profile, name: str) -> str:
    """The seller's own name for one of our fields or reserved parameters (its alias)."""
    for alias, target in profile.aliases.items():
        if target == name:
            return alias
    return name


@dataclass(frozen=True)
class FieldRow:
    sent_as: str
    name: str
    label: str
    type_label: str
    required: bool
    choices: tuple[str, ...]
    value_map: tuple[tuple[str, str], ...]
    limits: str
    help_text: str


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _limits(spec: Any) -> str:
    parts = []
    if spec.min_value is not None:
        parts.append(f"at least {spec.min_value.normalize():f}")
    if spec.max_value is not None:
        parts.append(f"at most {spec.max_value.normalize():f}")
    if spec.max_length:
        parts.append(f"at most {spec.max_length} characters")
    return ", ".join(parts)


def field_rows(fields: Iterable[Any], profile: Profile) -> list[FieldRow]:
    """One row per field of a vertical (VerticalField rows), named as the source sends it."""
    rows = []
    for spec in fields:
        sent_as = seller_name(profile, spec.name)
        rows.append(
            FieldRow(
                sent_as=sent_as if profile.is_flat else f"fields.{sent_as}",
                name=spec.name,
                label=spec.label,
                type_label=TYPE_HINTS.get(spec.field_type, spec.field_type),
                required=spec.required,
                choices=tuple(spec.choices or ()),
                value_map=tuple(
                    (seller, _json_text(ours))
                    for seller, ours in (profile.value_maps.get(spec.name) or {}).items()
                ),
                limits=_limits(spec),
                help_text=spec.help_text,
            )
        )
    return rows


@dataclass(frozen=True)
class ReservedRow:
    sent_as: str
    name: str
    meaning: str


def reserved_rows(profile: Profile, *, vertical_slugs: Sequence[str]) -> list[ReservedRow]:
    """The parameters that are not the vertical's fields, in the source's naming."""
    slugs = ", ".join(vertical_slugs)
    meanings = {**RESERVED_MEANINGS, "vertical": f"The slug of the lead's vertical: {slugs}."}
    if profile.default_vertical:
        meanings["vertical"] += f" Left out: {profile.default_vertical}."
    if profile.is_flat:
        names = [*profiles.ENVELOPE_PARAMETERS, *CONSENT_PARAMETERS]
        return [ReservedRow(seller_name(profile, n), n, meanings[n]) for n in names]
    rows = [ReservedRow(n, n, meanings[n]) for n in profiles.ENVELOPE_PARAMETERS]
    rows += [
        ReservedRow(f"consent.{member}", name, meanings[name])
        for member, name in ENVELOPE_CONSENT.items()
    ]
    return rows


def _example_value(spec: Any, profile: Profile) -> Any:
    """A value the source may send for the field: its own word for it when the profile maps the
    field's values (the first one that stands for a valid value), else a sample."""
    intake_spec = specs_from_models([spec])[0]
    for seller_value, ours in (profile.value_maps.get(spec.name) or {}).items():
        try:
            normalise_value(intake_spec, ours)
        except FieldError:
            continue
        return seller_value
    return sample_value(spec)


def _flat_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def example_document(
    vertical: Vertical, fields: Iterable[Any], profile: Profile, **changed: Any
) -> dict[str, Any]:
    """An example test lead of the vertical as the source sends it (flat parameters, or the
    envelope), without its key. `changed` sets fields by our name (None leaves one out)."""
    values = {spec.name: _example_value(spec, profile) for spec in fields}
    values.update(changed)
    values = {name: value for name, value in values.items() if value is not None}
    if not profile.is_flat:
        return {
            "vertical": vertical.slug,
            "sub_id": EXAMPLE_SUB_ID,
            "test": True,
            "fields": {seller_name(profile, n): v for n, v in values.items()},
            "consent": dict(SAMPLE_CONSENT),
        }
    typed = profile.format == profiles.FLAT_JSON
    parameters: dict[str, Any] = {"vertical": vertical.slug, "sub_id": EXAMPLE_SUB_ID}
    parameters["test"] = True
    parameters.update(values)
    parameters.update({name: SAMPLE_CONSENT[key] for name, key in CONSENT_PARAMETERS.items()})
    return {
        seller_name(profile, name): value if typed else _flat_text(value)
        for name, value in parameters.items()
    }


def document_reading(document: Mapping[str, Any], profile: Profile) -> Reading:
    """Read an example as the leads endpoint reads the source's requests."""
    if profile.is_flat:
        return profiles.flat_document(document, profile)
    return profiles.envelope_document(dict(document), profile)


@dataclass(frozen=True)
class ExampleRequest:
    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    # A JSON or XML body, or the form's (or query string's) parameters.
    body: str = ""
    parameters: tuple[tuple[str, str], ...] = ()

    def curl(self) -> str:
        """The request as a curl command, one option a line."""
        first = ["curl -si"]
        first.append("-G" if self.method == "GET" else f"-X {self.method}")
        first.append(shlex.quote(self.url))
        lines = [" ".join(first)]
        lines += [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in self.headers]
        lines += [
            f"--data-urlencode {shlex.quote(quote(name, safe='') + '=' + value)}"
            for name, value in self.parameters
        ]
        if self.body:
            lines.append(f"--data-binary {shlex.quote(self.body)}")
        return " \\\n  ".join(lines)


def xml_text(parameters: Mapping[str, Any]) -> str:
    root = Element("lead")
    for name, value in parameters.items():
        SubElement(root, name).text = _flat_text(value)
    indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(root, encoding="unicode")


def example_request(document: Mapping[str, Any], profile: Profile, *, url: str) -> ExampleRequest:
    """The example as an HTTP request of the source's format, its key where it sends it."""
    headers: list[tuple[str, str]] = []
    parameters = dict(document)
    if profile.key_location == BEARER:
        headers.append(("Authorization", f"Bearer {KEY_PLACEHOLDER}"))
    elif profile.key_location == HEADER:
        headers.append((profile.key_name, KEY_PLACEHOLDER))
    else:  # a parameter: in the body (a member of an envelope), never in a logged URL
        parameters = {profile.key_name: KEY_PLACEHOLDER, **parameters}
    if profile.format == profiles.QUERY:
        pairs = tuple((n, _flat_text(v)) for n, v in parameters.items())
        return ExampleRequest("GET", url, tuple(headers), parameters=pairs)
    if profile.format == profiles.FORM:
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
        pairs = tuple((n, _flat_text(v)) for n, v in parameters.items())
        return ExampleRequest("POST", url, tuple(headers), parameters=pairs)
    if profile.format == profiles.XML:
        headers.append(("Content-Type", "application/xml"))
        return ExampleRequest("POST", url, tuple(headers), body=xml_text(parameters))
    headers.append(("Content-Type", "application/json"))
    return ExampleRequest("POST", url, tuple(headers), body=json.dumps(parameters, indent=2))


def refused_changes(fields: Sequence[Any], profile: Profile) -> dict[str, Any]:
    """Changes to an example that intake refuses by field: a bad value (of an aliased field if
    there is one) and a required field left out."""
    candidates = [f for f in fields if f.field_type in BAD_VALUES]
    candidates.sort(key=lambda f: seller_name(profile, f.name) == f.name)
    changes: dict[str, Any] = {}
    if candidates:
        changes[candidates[0].name] = BAD_VALUES[candidates[0].field_type]
    missing = next((f for f in fields if f.required and f.name not in changes), None)
    if missing is not None:
        changes[missing.name] = None
    return changes


def intake_errors(
    document: Mapping[str, Any], profile: Profile, specs: Sequence[FieldSpec]
) -> tuple[Reading, dict[str, list[str]]]:
    """What intake finds wrong with a document (its own functions, in its order)."""
    reading = document_reading(document, profile)
    submission, errors = parse_submission(reading.document)
    if submission is not None:
        _, errors = normalise_fields(specs, submission.fields)
    return reading, errors


def problem_rows(*, base: str) -> list[dict[str, Any]]:
    return [
        {
            "status": PROBLEM_TYPES[slug].status,
            "type": f"{base}{PROBLEM_TYPES[slug].uri}",
            "title": PROBLEM_TYPES[slug].title,
            "meaning": PROBLEM_TYPES[slug].description,
        }
        for slug in LEAD_PROBLEMS
    ]


def ping_example_document(
    vertical: Vertical, fields: Iterable[Any], profile: Profile
) -> dict[str, Any] | None:
    """An example test ping of the vertical as the source sends it: its ping fields only (no
    personal data), without its key; None when the vertical has no ping field."""
    pinged = [spec for spec in fields if spec.in_ping and not spec.is_pii]
    if not pinged:
        return None
    values = {spec.name: _example_value(spec, profile) for spec in pinged}
    if not profile.is_flat:
        fields_sent = {seller_name(profile, n): v for n, v in values.items()}
        return {"vertical": vertical.slug, "test": True, "fields": fields_sent}
    typed = profile.format == profiles.FLAT_JSON
    parameters: dict[str, Any] = {"vertical": vertical.slug, "test": True, **values}
    return {
        seller_name(profile, name): value if typed else _flat_text(value)
        for name, value in parameters.items()
    }


# How the exchange renders its answers to the example ping (registered by exchange.apps: the
# page is the leads app's, the ping answers are the exchange's own rendering).
PingAnswers = Callable[[Source, Profile, Vertical, Reading], list[tuple[str, Any]]]
_ping_answers: PingAnswers | None = None


def ping_answers_register(render: PingAnswers) -> None:
    """Make `render` the way the page shows the answers to its example ping (one per process)."""
    global _ping_answers  # noqa: PLW0603 - set once, when the exchange app loads
    _ping_answers = render


# --- The shareable link -------------------------------------------------------------------------


def instructions_token(source: Source) -> str:
    """A signed token that shows the source's instructions without signing in, for
    `POSTING_INSTRUCTIONS_LINK_DAYS` days."""
    return signing.dumps(source.pk, salt=LINK_SALT)


def instructions_source_id(token: str) -> int:
    """The source a token was made for; raise signing.SignatureExpired when it is too old and
    signing.BadSignature when it is not one of ours."""
    max_age = settings.POSTING_INSTRUCTIONS_LINK_DAYS * 24 * 3600
    source_id = signing.loads(token, salt=LINK_SALT, max_age=max_age)
    if not isinstance(source_id, int):
        raise signing.BadSignature("not a source's token")
    return source_id


# --- The page ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    title: str
    when: str
    status: str
    headers: tuple[tuple[str, str], ...]
    body: str


@dataclass(frozen=True)
class VerticalSection:
    vertical: Vertical
    rows: list[FieldRow]
    example: ExampleRequest
    duplicates: str
    ping_example: ExampleRequest | None = None
    # The version of the vertical's fields the source posts in, and the newest there is.
    version: int | None = None
    newest_version: int | None = None


@dataclass(frozen=True)
class Instructions:
    source: Source
    profile: Profile
    endpoint: str
    format_name: str
    key_place: str
    reserved: list[ReservedRow]
    verticals: list[VerticalSection]
    answers: list[Answer] = field(default_factory=list)
    refused_example: dict[str, Any] = field(default_factory=dict)
    problems: list[dict[str, Any]] = field(default_factory=list)
    link_days: int = 0
    ping_endpoint: str = ""
    ping_answers: list[Answer] = field(default_factory=list)

    @property
    def test_name(self) -> str:
        return seller_name(self.profile, "test")


def _as_caller(request: HttpRequest, source: Source, profile: Profile) -> Request:
    """The page's request as the leads endpoint sees one of the source's, for its render
    functions (a copy: the page's own user stays)."""
    principal = SourcePrincipal(source=source, api_key=SourceApiKey(source=source), profile=profile)
    return Request(copy.copy(request), authenticators=[ForcedAuthentication(principal, None)])


def _shown(rendered: Any, *, title: str, when: str) -> Answer:
    status = f"{rendered.status} {HTTPStatus(rendered.status).phrase}"
    headers = tuple((n, v) for n, v in rendered.headers.items())
    return Answer(title, when, status, headers, rendered.body.decode())


def _duplicate_rule(vertical: Vertical) -> str:
    names = [n for n in vertical.duplicate_fields or () if isinstance(n, str)]
    if not names or not vertical.duplicate_lookback_days:
        return ""
    scope = "from your source" if vertical.duplicate_scope == "source" else "from any source"
    return (
        f"A lead with the same {' or '.join(names)} as one accepted {scope} in the last "
        f"{vertical.duplicate_lookback_days} days is a duplicate (409)."
    )


ANSWER_WHEN = {
    "Accepted": "Stored and queued for routing: the usual answer.",
    "Sold": "With Prefer: wait=N, routing finished within N seconds and a buyer bought the "
    "lead; payout is what you are paid for it.",
    "Unsold": "With Prefer: wait=N, routing finished and no buyer took the lead.",
    "Refused": "The lead breaks its vertical's schema; every field at fault is named, as you "
    "named it. The refused lead is stored under its id.",
    "Duplicate": "The same consumer was accepted within the look-back window; duplicate_of is "
    "the earlier lead when it was yours.",
}


def _outcome(source: Source, vertical: Vertical, *, sold: bool) -> Lead:
    """The example lead after routing, sold at the example price or unsold."""
    price = EXAMPLE_BUYER_PRICE if sold else None
    return Lead(
        id=EXAMPLE_LEAD_ID,
        source=source,
        vertical=vertical,
        status=LeadStatus.SOLD if sold else LeadStatus.UNSOLD,
        sale_price=price,
        payout=source.payout_for(price) if price is not None else None,
        score=EXAMPLE_SCORE,
        tier=EXAMPLE_TIER,
    )


def _duplicate(lead: Lead, reading: Reading, specs: Sequence[FieldSpec]) -> IngestResult | None:
    """The example lead refused as a duplicate of an earlier one of the source's, with intake's
    reason; None when its vertical checks no duplicates."""
    fields = reading.document["fields"] if reading.document else {}
    normalised, _ = normalise_fields(specs, fields)
    if normalised is None:
        return None
    stored = Lead(
        id=lead.pk,
        source=lead.source,
        vertical=lead.vertical,
        data=normalised.data,
        email=normalised.email,
        phone=normalised.phone,
    )
    reason = IntakeChecks.of(stored, vertical=lead.vertical).duplicate_reason
    if not reason:
        return None
    earlier = Lead(id=EARLIER_LEAD_ID, source=lead.source)
    return IngestResult(IntakeVerdict.DUPLICATE, lead, detail=reason, duplicate_of=earlier)


def _answers(
    request: HttpRequest, *, source: Source, profile: Profile, vertical: Vertical
) -> tuple[list[Answer], dict[str, Any]]:
    """The answers to the vertical's example, rendered by the leads endpoint's own functions,
    and what the refused one changed in the example."""
    fields = list(_fields(vertical))
    caller = _as_caller(request, source, profile)
    specs = specs_from_models(fields)
    reading = document_reading(example_document(vertical, fields, profile), profile)
    lead = Lead(id=EXAMPLE_LEAD_ID, source=source, vertical=vertical)
    changes = refused_changes(fields, profile)
    refused_document = example_document(vertical, fields, profile, **changes)
    refused_reading, errors = intake_errors(refused_document, profile, specs)
    invalid = IngestResult(
        IntakeVerdict.INVALID, lead, detail=invalid_lead_detail(errors), errors=errors
    )
    rendered = {
        "Accepted": render_result(caller, IngestResult(IntakeVerdict.ACCEPTED, lead), reading),
        "Sold": render_outcome(caller, _outcome(source, vertical, sold=True)),
        "Unsold": render_outcome(caller, _outcome(source, vertical, sold=False)),
        "Refused": render_result(caller, invalid, refused_reading),
    }
    duplicate = _duplicate(lead, reading, specs)
    if duplicate is not None:
        rendered["Duplicate"] = render_result(caller, duplicate, reading)
    answers = [_shown(r, title=title, when=ANSWER_WHEN[title]) for title, r in rendered.items()]
    sent = {seller_name(profile, n): v for n, v in changes.items() if v is not None}
    left_out = [seller_name(profile, n) for n, v in changes.items() if v is None]
    return answers, {"sent": sent, "left_out": left_out}


PING_ANSWER_WHEN = {
    "Ping bid": "Buyers bid: post the lead with ping_id before expires_at; payout is what you "
    "are paid if the post sells.",
    "Ping no bid": "No buyer bid: keep the lead, or post it without ping_id.",
    "Ping refused": "The ping carried personal data (or another fault): every field at fault is "
    "named, as you named it.",
}


def _ping_example(vertical: Vertical, profile: Profile, *, url: str) -> ExampleRequest | None:
    document = ping_example_document(vertical, _fields(vertical), profile)
    return None if document is None else example_request(document, profile, url=url)


def _ping_answers_shown(
    source: Source, profile: Profile, verticals: list[Vertical]
) -> list[Answer]:
    """The answers to the first example ping, by the exchange's own rendering."""
    for vertical in verticals:
        document = ping_example_document(vertical, _fields(vertical), profile)
        if document is None or _ping_answers is None:
            continue
        reading = document_reading(document, profile)
        rendered = _ping_answers(source, profile, vertical, reading)
        return [_shown(r, title=title, when=PING_ANSWER_WHEN[title]) for title, r in rendered]
    return []


def _fields(vertical: Vertical) -> list[Any]:
    """The fields of the version the source posts in (set by posting_instructions)."""
    fields = getattr(vertical, "schema_fields", None)
    return list(vertical.fields.all()) if fields is None else fields


def posting_instructions(*, source: Source, request: HttpRequest) -> Instructions:
    """Put a source's posting instructions together, for the page its request shows."""
    profile = posting_profile(source=source)
    endpoint = request.build_absolute_uri(reverse("api:lead-list"))
    ping_endpoint = request.build_absolute_uri(reverse("exchange:ping-list"))
    verticals = list(verticals_for_source(source=source))
    for vertical in verticals:
        vertical.schema_fields = source_schema_fields(vertical)  # type: ignore[attr-defined]
    sections = [
        VerticalSection(
            vertical=vertical,
            rows=field_rows(_fields(vertical), profile),
            example=example_request(
                example_document(vertical, _fields(vertical), profile), profile, url=endpoint
            ),
            duplicates=_duplicate_rule(vertical),
            ping_example=_ping_example(vertical, profile, url=ping_endpoint),
            version=vertical.pinned_number or vertical.newest_number,  # type: ignore[attr-defined]
            newest_version=vertical.newest_number,  # type: ignore[attr-defined]
        )
        for vertical in verticals
    ]
    instructions = Instructions(
        source=source,
        profile=profile,
        endpoint=endpoint,
        format_name=FORMAT_NAMES[profile.format],
        key_place=profile.key_place().replace("<key>", KEY_PLACEHOLDER),
        reserved=reserved_rows(profile, vertical_slugs=[v.slug for v in verticals]),
        verticals=sections,
        problems=problem_rows(base=request.build_absolute_uri("/").rstrip("/")),
        link_days=settings.POSTING_INSTRUCTIONS_LINK_DAYS,
    )
    if not verticals:
        return instructions
    first = next((v for v in verticals if v.slug == profile.default_vertical), verticals[0])
    answers, refused = _answers(request, source=source, profile=profile, vertical=first)
    pinged = [first, *(v for v in verticals if v != first)]
    return replace(
        instructions,
        answers=answers,
        refused_example=refused,
        ping_endpoint=ping_endpoint,
        ping_answers=_ping_answers_shown(source, profile, pinged),
    )
