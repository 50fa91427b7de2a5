"""The partner API: lead intake, lead status, and the verticals a source may submit to."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

import django_filters
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.generics import GenericAPIView, ListAPIView, RetrieveAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request

from config.problems import PROBLEM_CONTENT_TYPE, problem_body
from config.proxies import client_ip
from leads import profiles
from leads.api.auth import IsActiveSource, IsSource, SourcePrincipal, body_kind, body_parameters
from leads.api.serializers import (
    PARTNER_STATUSES,
    LeadAcceptedSerializer,
    LeadOutcomeSerializer,
    LeadSerializer,
    LeadSubmissionSerializer,
    ProblemSerializer,
    SchemaVersionSerializer,
    SchemaVersionSummarySerializer,
    VerticalSerializer,
)
from leads.intake import NOT_UTF8, envelope_ping_id, json_loads_utf8
from leads.models import IdempotencyRecord, Lead, LeadStatus, SchemaVersion, Source, Vertical
from leads.prices import prices_shown, stored_answer_shown
from leads.profiles import PARAMETER, QUERY, Reading, answer_bytes, mask_key
from leads.schema_versions import fields_from_snapshot
from leads.selectors import (
    leads_of_source,
    source_schema_fields,
    vertical_versions,
    verticals_for_source,
)
from leads.services import (
    IngestResult,
    IntakeVerdict,
    Submission,
    lead_ingest,
    lead_reject_request,
    lead_submit,
)

MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 30, tzinfo=UTC)
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
# Text as a query filter takes it: anything but NUL, which no stored value holds.
TEXT = {"type": "string", "pattern": "^[^\\x00]*$"}


class LeadPagination(CursorPagination):
    ordering = "-received_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        """A whole number from 1 ("5.0" is one), cut to 200; anything else is a 400, not
        silently the default."""
        raw = request.query_params.get(self.page_size_query_param)
        if not raw:
            return self.page_size
        try:
            number = Decimal(raw) if raw.isascii() else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or number != number.to_integral_value():
            number = None
        if number is None or number < 1:
            raise exceptions.ValidationError(
                {self.page_size_query_param: ["Give a whole number from 1 (above 200 is 200)."]}
            )
        return int(min(number, self.max_page_size))


class UtcDateTimeField(django_filters.fields.IsoDateTimeField):
    """An ISO 8601 time, taken to UTC; any the schema allows is answered, none is a 500.

    A time before 1900 or in the calendar's last days (or past its end once taken to UTC)
    stands for the nearest one the database holds: no lead is that old or that new, so the
    answer is the same, and a valid `date-time` is never refused.
    """

    def to_python(self, value):
        try:
            parsed = super().to_python(value)
            if parsed is not None and parsed.tzinfo is not None:
                # PostgreSQL refuses offsets past ±15:59, which ISO 8601 allows.
                parsed = parsed.astimezone(UTC)
        except OverflowError:
            # Hours from either end of the calendar, past it in UTC: the year says which end.
            return MIN_TIME if str(value).strip()[:4] < "1900" else MAX_TIME
        return None if parsed is None else min(max(parsed, MIN_TIME), MAX_TIME)


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcDateTimeField


class StrictBooleanField(forms.NullBooleanField):
    """A boolean as query strings spell one; anything else is a 400, not a filter ignored."""

    # NullBooleanSelect would turn every other spelling into None before to_python saw it.
    widget = forms.TextInput
    SPELLINGS = {
        **dict.fromkeys(("true", "t", "yes", "y", "on", "1"), True),
        **dict.fromkeys(("false", "f", "no", "n", "off", "0"), False),
    }

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        spelled = self.SPELLINGS.get(str(value).strip().lower())
        if spelled is None:
            raise ValidationError("Give true or false.", code="invalid")
        return spelled


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class LeadFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[(s, s) for s in PARTNER_STATUSES], method="filter_status"
    )
    vertical = django_filters.CharFilter(field_name="vertical__slug")
    sub_id = django_filters.CharFilter()
    received_after = UtcDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = UtcDateTimeFilter(field_name="received_at", lookup_expr="lt")
    test = StrictBooleanFilter(field_name="is_test")

    class Meta:
        model = Lead
        fields: list[str] = []

    def filter_status(self, queryset, name, value):
        return queryset.filter(status=LeadStatus.SUPPRESSED if value == "rejected" else value)


class Rendered:
    """An answer kept as bytes, so that an idempotent replay is identical to the first.

    JSON unless the source's posting profile answers in XML or key=value text
    (`leads.profiles.answer_bytes`): the same members, the same status code.
    """

    def __init__(
        self,
        status: int,
        body: dict[str, Any],
        content_type: str,
        *,
        answer_format: str = "json",
        **headers: str,
    ):
        self.status = status
        self.document, self.answer_format = body, answer_format
        if answer_format == "json":
            self.body = json.dumps(body, separators=(",", ":")).encode()
        else:
            self.body, content_type = answer_bytes(answer_format, body)
        self.headers = {"Content-Type": content_type, **headers}

    @classmethod
    def problem(
        cls,
        slug: str,
        detail: str,
        *,
        answer_format: str = "json",
        **extensions: Any,
    ) -> Rendered:
        body = problem_body(slug, detail, **extensions)
        return cls(body["status"], body, PROBLEM_CONTENT_TYPE, answer_format=answer_format)

    def response(self, *, replayed: bool = False) -> HttpResponse:
        return answer_response(self.status, self.body, self.headers, replayed=replayed)


def answer_response(
    status: int, body: bytes, headers: dict[str, str], *, replayed: bool = False
) -> HttpResponse:
    response = HttpResponse(body, status=status)
    for name, value in headers.items():
        response[name] = value
    if replayed:
        response["Idempotent-Replayed"] = "true"
    response["Vary"] = "Prefer"
    return response


def body_text(body: bytes) -> str:
    """The body as storable text: PostgreSQL refuses NUL, so it becomes U+FFFD like bad UTF-8."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


Refusal = tuple[str, str, dict[str, list[str]] | None]  # a problem's slug, detail and errors


def length_refusal(http: Any, *, limit: int) -> Refusal | None:
    """Why a request's body is refused before it is read: sent in chunks without a length (it
    would be read as empty), or longer than `limit` bytes."""
    if http.META.get("HTTP_TRANSFER_ENCODING") and not http.META.get("CONTENT_LENGTH"):
        # The WSGI server hands Django no length for a chunked body, and Django reads a body
        # without one as empty: the lead would be refused as blank, or worse, taken as such.
        detail = "Send the body with a Content-Length header; a chunked body is not read."
        return "length-required", detail, None
    try:
        length = int(http.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return "payload-too-large", f"The body is {length} bytes; the limit is {limit}.", None
    return None


def request_body_refusal(http: Any, *, limit: int) -> tuple[bytes, Refusal | None]:
    """The request's body, or its first KiB and why it is refused unread (length, size); its
    format is the posting profile's to judge (post_format_refusal)."""
    refusal = length_refusal(http, limit=limit)
    if refusal is not None:
        return http.read(1024), refusal
    return http.body, None


def refuse(
    slug: str,
    detail: str,
    *,
    principal: Any,
    raw_body: str,
    remote_ip: str | None,
    errors: dict[str, list[str]] | None = None,
    show_errors: bool = True,
) -> tuple[Rendered, Lead]:
    """Store a request refused before intake could read it as a lead, and its problem answer."""
    lead = lead_reject_request(
        source=principal.source,
        api_key=principal.api_key,
        raw_body=raw_body,
        remote_ip=remote_ip,
        detail=detail,
        errors=errors,
    )
    shown = errors if show_errors else None
    answer_format = principal.profile.answer_format
    return (
        Rendered.problem(slug, detail, answer_format=answer_format, id=str(lead.pk), errors=shown),
        lead,
    )


def render_result(request: Request, result: IngestResult, reading: Reading) -> Rendered:
    lead = result.lead
    url = request.build_absolute_uri(reverse("api:lead-detail", args=[lead.pk]))
    answer = partial(Rendered, answer_format=request.user.profile.answer_format)
    problem = partial(Rendered.problem, answer_format=request.user.profile.answer_format)
    if result.verdict == IntakeVerdict.ACCEPTED:
        return answer(
            202,
            {"id": str(lead.pk), "status": "accepted", "url": url},
            "application/json",
            Location=url,
        )
    if result.verdict == IntakeVerdict.SUPPRESSED:
        return answer(
            201,
            {"id": str(lead.pk), "status": "rejected", "reason": result.detail, "url": url},
            "application/json",
            Location=url,
        )
    if result.verdict == IntakeVerdict.DUPLICATE:
        earlier = result.duplicate_of
        same_source = earlier is not None and earlier.source_id == lead.source_id
        return problem(
            "duplicate-lead",
            result.detail,
            id=str(lead.pk),
            duplicate_of=str(earlier.pk) if same_source else None,
        )
    if result.verdict == IntakeVerdict.FORBIDDEN:
        return problem("forbidden", result.detail, id=str(lead.pk))
    if result.verdict == IntakeVerdict.PING_REFUSED:
        return problem(
            result.problem,
            result.detail,
            id=str(lead.pk),
            errors=reading.seller_errors(result.errors) or None,
        )
    slug = (
        "invalid-lead"
        if any(k.startswith("fields.") for k in result.errors)
        else ("malformed-request")
    )
    # Named as the seller sent them: its own parameter names (`Zip`) where it used aliases.
    errors = reading.seller_errors(result.errors)
    return problem(slug, result.detail, id=str(lead.pk), errors=errors)


def render_outcome(request: Request, lead: Lead) -> Rendered:
    url = request.build_absolute_uri(reverse("api:lead-detail", args=[lead.pk]))
    return Rendered(
        201,
        {
            "id": str(lead.pk),
            "status": lead.status,
            **prices_shown(source=lead.source, payout=lead.payout, buyer_price=lead.sale_price),
            "score": lead.score,
            "tier": lead.tier or None,
            "url": url,
        },
        "application/json",
        answer_format=request.user.profile.answer_format,
        Location=url,
    )


PROBLEMS = {
    400: OpenApiResponse(ProblemSerializer, description="Malformed body or invalid lead."),
    401: OpenApiResponse(ProblemSerializer, description="Missing, unknown or revoked key."),
    403: OpenApiResponse(ProblemSerializer, description="Inactive source or vertical not allowed."),
    409: OpenApiResponse(
        ProblemSerializer,
        description="Duplicate of an earlier lead, or a post that changed its ping's fields.",
    ),
    411: OpenApiResponse(ProblemSerializer, description="Body sent without a Content-Length."),
    413: OpenApiResponse(ProblemSerializer, description="Body over the size limit."),
    415: OpenApiResponse(ProblemSerializer, description="Body not sent as JSON."),
    422: OpenApiResponse(
        ProblemSerializer,
        description="Idempotency key reused with another body, or a ping that got no bid.",
    ),
    429: OpenApiResponse(ProblemSerializer, description="Over the source's rate limit."),
}


class AnswersInProfileFormat:
    """A view whose problems (over the rate limit, say) are answered to a submission in the
    source's answer format, as its own answers are."""

    def is_submission(self) -> bool:
        return True

    def handle_exception(self, exc: Exception) -> HttpResponse:
        response = super().handle_exception(exc)  # type: ignore[misc]
        principal = getattr(self.request, "_user", None)  # type: ignore[attr-defined]
        if (
            isinstance(principal, SourcePrincipal)
            and principal.profile.answer_format != "json"
            and self.is_submission()
            and response.get("Content-Type") == PROBLEM_CONTENT_TYPE
        ):
            body, content_type = answer_bytes(
                principal.profile.answer_format, json.loads(response.content)
            )
            response.content = body
            response["Content-Type"] = content_type
        return response


class LeadListCreateView(AnswersInProfileFormat, GenericAPIView):
    serializer_class = LeadSerializer
    filterset_class = LeadFilter
    pagination_class = LeadPagination

    def get_permissions(self):
        # An inactive source's submissions are still stored (and answered 403) by intake.
        if self.request.method == "POST" or self._lead_parameters(self.request):
            return [IsSource()]
        return [IsActiveSource()]

    def get_queryset(self):
        return leads_of_source(source=self.request.user.source)

    @staticmethod
    def _lead_parameters(request: Request) -> list[str]:
        """The query parameters of a GET that are no list filter: a lead's data."""
        if request.method != "GET":
            return []
        names = [name for name in request._request.GET if name not in LIST_PARAMETERS]
        # Only a GET with such parameters needs its caller now: the schema generator asks for
        # the permissions of a bare GET, with no database to authenticate against.
        principal = request.user if names else None
        if not isinstance(principal, SourcePrincipal):
            return []
        profile = principal.profile
        key_name = profile.key_name.lower() if profile.key_location == PARAMETER else None
        return [name for name in names if name.lower() != key_name]

    def is_submission(self) -> bool:
        return self.request.method == "POST" or bool(self._lead_parameters(self.request))

    @extend_schema(
        operation_id="leads_list",
        summary="List your leads",
        filters=False,
        parameters=[
            OpenApiParameter(
                "page_size",
                {"type": "integer", "minimum": 1},
                description="Leads per page: 50 unless given; above 200 is 200.",
            ),
            # LeadFilter's fields, spelled out: the schema generator cannot call get_queryset.
            OpenApiParameter("status", str, enum=PARTNER_STATUSES),
            OpenApiParameter("vertical", TEXT, description="A vertical's slug."),
            OpenApiParameter("sub_id", TEXT),
            OpenApiParameter(
                "received_after",
                {"type": "string", "format": "date-time"},
                description="Received at or after this time (ISO 8601).",
            ),
            OpenApiParameter(
                "received_before",
                {"type": "string", "format": "date-time"},
                description="Received before this time (ISO 8601).",
            ),
            OpenApiParameter("test", bool, description="Only test leads, or only real ones."),
        ],
        responses={
            200: LeadSerializer(many=True),
            400: OpenApiResponse(ProblemSerializer, description="A filter value is not valid."),
            404: OpenApiResponse(ProblemSerializer, description="The cursor is not valid."),
            405: OpenApiResponse(
                ProblemSerializer,
                description="A parameter that is no filter: lead data, which only a source "
                "whose posting profile sends leads by GET may send (see the README's Posting "
                "profiles).",
            ),
        },
    )
    def get(self, request: Request) -> HttpResponse:
        lead_parameters = self._lead_parameters(request)
        if lead_parameters:
            profile = request.user.profile
            if profile.format == QUERY:
                query = request._request.META.get("QUERY_STRING", "")
                return self._submit(request, body=mask_key(query, request.user.sent_key))
            # A GET carrying a lead must never look like a success (a 200 list): a seller that
            # takes 200 for "stored" would lose every lead.
            return Rendered.problem(
                "method-not-allowed",
                f"This source posts its leads as {profiles.FORMAT_NAMES[profile.format]}; a GET "
                "with lead data in its query string is not taken. A GET lists your leads with "
                f"the filters {', '.join(sorted(LIST_PARAMETERS))} (not "
                f"{', '.join(sorted(lead_parameters)[:10])}).",
                answer_format=profile.answer_format,
            ).response()
        queryset = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(queryset)
        serializer = self.get_serializer(page, many=True)
        return self.get_paginated_response(serializer.data)

    @extend_schema(
        operation_id="leads_create",
        summary="Submit a lead",
        description=(
            "Validates, normalises, deduplicates and stores the lead, then routes it. Answers "
            "202 at once, or with `Prefer: wait=N` (N ≤ 10) waits up to N seconds for the "
            "routing outcome and answers 201 with it. Every request is stored, rejected ones "
            "with their reasons, under the returned `id`."
        ),
        request=LeadSubmissionSerializer,
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "pattern": "^[!-~]{1,255}$"},
                OpenApiParameter.HEADER,
                description="Retrying with the same key within 24 h returns the first answer.",
            ),
            OpenApiParameter(
                "Prefer",
                str,
                OpenApiParameter.HEADER,
                description="`wait=N`: wait for the outcome.",
            ),
        ],
        responses={
            201: OpenApiResponse(LeadOutcomeSerializer, description="Routed (with Prefer: wait)."),
            202: OpenApiResponse(LeadAcceptedSerializer, description="Accepted for routing."),
            **PROBLEMS,
            404: OpenApiResponse(ProblemSerializer, description="No ping of yours has `ping_id`."),
            410: OpenApiResponse(ProblemSerializer, description="The ping has expired."),
        },
        examples=[
            OpenApiExample(
                "Auto insurance lead",
                request_only=True,
                value={
                    "vertical": "auto-insurance",
                    "sub_id": "spring-campaign",
                    "fields": {
                        "first_name": "Mary",
                        "last_name": "Major",
                        "email": "mary@example.com",
                        "phone": "(212) 555-0142",
                        "street_address": "1 Main Street",
                        "zip_code": "10001",
                        "date_of_birth": "1980-04-02",
                        "currently_insured": True,
                        "vehicle_year": 2019,
                        "vehicle_make": "Toyota",
                        "vehicle_model": "Camry",
                    },
                    "consent": {
                        "text": "I agree to be contacted by Acme Insurance …",
                        "timestamp": "2026-05-01T14:03:00Z",
                        "ip": "203.0.113.7",
                    },
                },
            )
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        principal = request.user
        profile = principal.profile
        http = request._request
        remote_ip = client_ip(http) or None
        refusal = length_refusal(http, limit=settings.INTAKE_MAX_BODY_BYTES)
        if refusal is not None:
            slug, detail, _ = refusal
            prefix = mask_key(body_text(http.read(1024)), principal.sent_key)
            rendered, _ = refuse(
                slug, detail, principal=principal, raw_body=prefix, remote_ip=remote_ip
            )
            return rendered.response()

        raw_text = mask_key(body_text(http.body), principal.sent_key)
        wrong_format = post_format_refusal(profile, http.content_type or "", what="leads")
        if wrong_format is not None:
            slug, detail, _ = wrong_format
            rendered, _ = refuse(
                slug, detail, principal=principal, raw_body=raw_text, remote_ip=remote_ip
            )
            return rendered.response()
        return self._submit(request, body=raw_text)

    def _submit(self, request: Request, *, body: str) -> HttpResponse:
        """Ingest a lead at most once per Idempotency-Key, whatever the format it came in;
        `body` is the request as it is stored (the key masked), the query string of a GET."""
        principal = request.user
        http = request._request
        remote_ip = client_ip(http) or None
        key = http.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY_RE.match(key):
            detail = "An Idempotency-Key is 1 to 255 printable ASCII characters."
            rendered, _ = refuse(
                "malformed-request",
                detail,
                principal=principal,
                raw_body=body,
                remote_ip=remote_ip,
                errors={"Idempotency-Key": [detail]},
            )
            return rendered.response()

        reading = read_request(request)
        submitted = lead_submit(
            submission=Submission(
                source=principal.source,
                request_hash=hashlib.sha256(body.encode()).hexdigest(),
                idempotency_key=key,
                wait_seconds=parse_prefer_wait(http.headers.get("Prefer", "")),
                ping_id=envelope_ping_id(reading.document),
            ),
            ingest=partial(
                self._ingest, request, reading=reading, raw_text=body, remote_ip=remote_ip
            ),
            key_reused=partial(
                _refuse_reused_key, principal=principal, raw_body=body, remote_ip=remote_ip
            ),
            outcome=partial(render_outcome, request),
        )
        if submitted.replay is not None:
            return _replay(submitted.replay, source=principal.source)
        return submitted.answer.response()

    def _ingest(self, request: Request, *, reading: Reading, raw_text: str, remote_ip: str | None):
        principal = request.user
        if reading.document is None:
            return refuse(
                "malformed-request",
                next(iter(reading.errors.get("_", [])), "The request has errors; see errors."),
                principal=principal,
                raw_body=raw_text,
                remote_ip=remote_ip,
                errors=reading.errors,
            )
        result = lead_ingest(
            source=principal.source,
            api_key=principal.api_key,
            document=reading.document,
            raw_body=raw_text,
            remote_ip=remote_ip,
            keep_unknown=principal.profile.keep_unknown,
        )
        return render_result(request, result, reading), result.lead


def post_format_refusal(
    profile: profiles.Profile, content_type: str, *, what: str
) -> Refusal | None:
    """Why a POST of `what` (leads, pings) is not in the source's format: (problem slug,
    detail), or None when it is."""
    expected = EXPECTED_BODY[profile.format]
    if expected is not None and body_kind(content_type) == expected:
        return None
    if expected is None:
        return (
            "method-not-allowed",
            f"This source sends its {what} as {profiles.FORMAT_NAMES[profile.format]}, "
            "not as a POST.",
            None,
        )
    if profile.format == profiles.ENVELOPE:
        return (
            "unsupported-media-type",
            f"Send JSON with Content-Type: application/json, not {content_type or 'nothing'}.",
            None,
        )
    return (
        "unsupported-media-type",
        f"This source posts its {what} as {profiles.FORMAT_NAMES[profile.format]}, "
        f"not as {content_type or 'a body without a Content-Type'}.",
        None,
    )


# The body each posting format comes in (a GET's query string has none).
EXPECTED_BODY = {
    profiles.ENVELOPE: profiles.FLAT_JSON,  # a JSON body, read as the envelope
    profiles.FLAT_JSON: profiles.FLAT_JSON,
    profiles.FORM: profiles.FORM,
    profiles.XML: profiles.XML,
    QUERY: None,
}
# What a GET of the leads collection filters its list by; any other parameter is a lead's.
LIST_PARAMETERS = frozenset(
    {"status", "vertical", "sub_id", "received_after", "received_before", "test"}
    | {"page_size", "cursor"}
)


def read_request(request: Request, *, members: tuple[str, ...] = ()) -> Reading:
    """Read a submission in its source's format as the envelope document intake reads;
    `members` are the envelope members of this kind of request besides the reserved ones (a
    ping's hashes: leads.profiles.flat_document)."""
    principal = request.user
    profile = principal.profile
    http = request._request
    if profile.format == profiles.ENVELOPE:
        document = read_json(http.body)
        if isinstance(document, Unreadable):
            return Reading(document=None, errors={"_": [document.message]})
        if profile.key_location == PARAMETER and isinstance(document, dict):
            # The key is no member of the lead.
            key_name = profile.key_name.lower()
            document = {k: v for k, v in document.items() if str(k).lower() != key_name}
        return profiles.envelope_document(document, profile)
    if profile.format == QUERY:
        parameters, errors = profiles.parameters_from_query(http.META.get("QUERY_STRING", ""))
    else:
        parameters, errors = body_parameters(http)
    if errors:
        return Reading(document=None, errors=errors)
    skip = [profile.key_name] if profile.key_location == PARAMETER else []
    return profiles.flat_document(parameters, profile, skip=skip, members=members)


@dataclass(frozen=True)
class Unreadable:
    """A body that is not JSON, and why, in the words the partner is shown."""

    message: str


def read_json(body: bytes) -> Any:
    """The body's JSON document, or Unreadable saying why there is none."""
    try:
        return json_loads_utf8(body)
    except (ValueError, RecursionError) as exc:
        if not body.strip():
            message = "The body is empty; send the lead as a JSON object."
        elif isinstance(exc, UnicodeDecodeError):
            message = NOT_UTF8
        elif isinstance(exc, RecursionError):  # "[[[[…": the parser's stack ran out
            message = "Nested too deeply to read."
        else:
            message = f"Not valid JSON: {exc}"
        return Unreadable(message)


def _refuse_reused_key(*, principal: Any, raw_body: str, remote_ip: str | None) -> Rendered:
    detail = "This Idempotency-Key was used with a different body in the last 24 hours."
    rendered, _ = refuse(
        "idempotency-key-reused",
        detail,
        principal=principal,
        raw_body=raw_body,
        remote_ip=remote_ip,
        errors={"Idempotency-Key": [detail]},
        show_errors=False,
    )
    return rendered


def _replay(record: IdempotencyRecord, *, source: Source) -> HttpResponse:
    """The answer kept for an Idempotency-Key, rendered again as it first was (less what the
    source may no longer see), in the format it first came in."""
    headers = dict(record.response_headers)
    content_type = headers.pop("Content-Type", "application/json")
    answer_format, kept = record.answer_format, record.response_document
    if not kept:  # kept as bytes by the code before leads 0012
        body = bytes(record.response_body or b"")
        if "json" not in content_type:  # XML or text: sent again as they are
            return answer_response(
                record.response_status, body, record.response_headers, replayed=True
            )
        answer_format, kept = "json", body.decode()
    rendered = Rendered(
        record.response_status,
        stored_answer_shown(json.loads(kept), source=source),
        content_type,
        answer_format=answer_format,
        **headers,
    )
    return rendered.response(replayed=True)


def parse_prefer_wait(header: str) -> int | None:
    from leads.intake import parse_prefer_wait as parse

    return parse(header, limit=settings.INTAKE_MAX_WAIT_SECONDS)


@extend_schema(
    summary="A lead's status and outcome",
    responses={
        200: LeadSerializer,
        404: OpenApiResponse(ProblemSerializer, description="No lead of yours has this id."),
    },
)
class LeadDetailView(RetrieveAPIView):
    serializer_class = LeadSerializer
    lookup_field = "pk"

    def get_queryset(self):
        return leads_of_source(source=self.request.user.source)


def _as_posted(vertical: Vertical) -> Vertical:
    """The vertical with the fields of the version the caller's source posts in."""
    vertical.schema_fields = source_schema_fields(vertical)  # type: ignore[attr-defined]
    vertical.posted_version = vertical.pinned_number or vertical.newest_number  # type: ignore[attr-defined]
    return vertical


@extend_schema(
    summary="The verticals your source may submit to, with the fields of the version it posts in"
)
class VerticalListView(ListAPIView):
    serializer_class = VerticalSerializer
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        return [_as_posted(v) for v in verticals_for_source(source=self.request.user.source)]


@extend_schema(
    summary="One vertical's field schema",
    responses={
        200: VerticalSerializer,
        404: OpenApiResponse(ProblemSerializer, description="Not a vertical your source may use."),
    },
)
class VerticalDetailView(RetrieveAPIView):
    serializer_class = VerticalSerializer
    lookup_field = "slug"
    filter_backends: list = []

    def get_queryset(self):
        return verticals_for_source(source=self.request.user.source)

    def get_object(self):
        return _as_posted(get_object_or_404(self.get_queryset(), slug=self.kwargs["slug"]))


NOT_YOURS = OpenApiResponse(ProblemSerializer, description="Not a vertical your source may use.")


class _VersionsOf:
    """Versions of a vertical the caller's source may use (404 for any other vertical)."""

    kwargs: dict[str, Any]
    request: Any

    def vertical(self) -> Vertical:
        return get_object_or_404(
            verticals_for_source(source=self.request.user.source), slug=self.kwargs["slug"]
        )

    @staticmethod
    def marked(version: SchemaVersion, vertical: Vertical) -> SchemaVersion:
        version.vertical = vertical
        version.newest = version.number == vertical.newest_number  # type: ignore[attr-defined]
        posted = vertical.pinned_number or vertical.newest_number  # type: ignore[attr-defined]
        version.yours = version.number == posted  # type: ignore[attr-defined]
        return version


@extend_schema(
    summary="Every version of one vertical's fields, oldest first, with what changed",
    responses={200: SchemaVersionSummarySerializer(many=True), 404: NOT_YOURS},
)
class VerticalVersionListView(_VersionsOf, ListAPIView):
    serializer_class = SchemaVersionSummarySerializer
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        vertical = self.vertical()
        return [self.marked(v, vertical) for v in vertical_versions(vertical)]


@extend_schema(
    summary="One version of a vertical's fields (a number, or newest)",
    responses={
        200: SchemaVersionSerializer,
        404: OpenApiResponse(
            ProblemSerializer, description="Not a vertical your source may use, or no such version."
        ),
    },
)
class VerticalVersionView(_VersionsOf, RetrieveAPIView):
    serializer_class = SchemaVersionSerializer
    filter_backends: list = []

    def get_queryset(self):
        return SchemaVersion.objects.none()

    def get_object(self):
        vertical = self.vertical()
        number = self.kwargs.get("number", vertical.newest_number)  # type: ignore[attr-defined]
        version = get_object_or_404(vertical_versions(vertical), number=number)
        # The newest version is the vertical's own fields (labels and help as they are now).
        version.schema_fields = (  # type: ignore[attr-defined]
            list(vertical.fields.all())
            if number == vertical.newest_number  # type: ignore[attr-defined]
            else fields_from_snapshot(vertical, version.fields)
        )
        return self.marked(version, vertical)
