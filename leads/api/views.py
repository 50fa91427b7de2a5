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

from config.problems import PROBLEM_CONTENT_TYPE, problem_bytes
from leads.api.auth import IsActiveSource, IsSource
from leads.api.serializers import (
    PARTNER_STATUSES,
    LeadAcceptedSerializer,
    LeadOutcomeSerializer,
    LeadSerializer,
    LeadSubmissionSerializer,
    ProblemSerializer,
    VerticalSerializer,
)
from leads.intake import envelope_ping_id
from leads.models import IdempotencyRecord, Lead, LeadStatus, Source
from leads.prices import prices_shown, stored_answer_shown
from leads.selectors import leads_of_source, verticals_for_source
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
    """An answer kept as bytes, so that an idempotent replay is identical to the first."""

    def __init__(self, status: int, body: dict[str, Any], content_type: str, **headers: str):
        self.status = status
        self.body = json.dumps(body, separators=(",", ":")).encode()
        self.headers = {"Content-Type": content_type, **headers}

    @classmethod
    def problem(cls, slug: str, detail: str, **extensions: Any) -> Rendered:
        rendered = cls.__new__(cls)
        body = problem_bytes(slug, detail, **extensions)
        rendered.status = json.loads(body)["status"]
        rendered.body = body
        rendered.headers = {"Content-Type": PROBLEM_CONTENT_TYPE}
        return rendered

    def response(self, *, replayed: bool = False) -> HttpResponse:
        response = HttpResponse(self.body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        if replayed:
            response["Idempotent-Replayed"] = "true"
        response["Vary"] = "Prefer"
        return response


def body_text(body: bytes) -> str:
    """The body as storable text: PostgreSQL refuses NUL, so it becomes U+FFFD like bad UTF-8."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


Refusal = tuple[str, str, dict[str, list[str]] | None]  # a problem's slug, detail and errors


def request_body_refusal(http: Any, *, limit: int) -> tuple[bytes, Refusal | None]:
    """The request's body, or its first KiB and why it is refused unread (size, media type)."""
    try:
        length = int(http.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return http.read(1024), (
            "payload-too-large",
            f"The body is {length} bytes; the limit is {limit}.",
            None,
        )
    body = http.body
    content_type = http.content_type or ""
    if content_type != "application/json" and not content_type.endswith("+json"):
        detail = f"Send JSON with Content-Type: application/json, not {content_type or 'nothing'}."
        return body, ("unsupported-media-type", detail, None)
    return body, None


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
    return Rendered.problem(slug, detail, id=str(lead.pk), errors=shown), lead


def render_result(request: Request, result: IngestResult) -> Rendered:
    lead = result.lead
    url = request.build_absolute_uri(reverse("api:lead-detail", args=[lead.pk]))
    if result.verdict == IntakeVerdict.ACCEPTED:
        return Rendered(
            202,
            {"id": str(lead.pk), "status": "accepted", "url": url},
            "application/json",
            Location=url,
        )
    if result.verdict == IntakeVerdict.SUPPRESSED:
        return Rendered(
            201,
            {"id": str(lead.pk), "status": "rejected", "reason": result.detail, "url": url},
            "application/json",
            Location=url,
        )
    if result.verdict == IntakeVerdict.DUPLICATE:
        earlier = result.duplicate_of
        same_source = earlier is not None and earlier.source_id == lead.source_id
        return Rendered.problem(
            "duplicate-lead",
            result.detail,
            id=str(lead.pk),
            duplicate_of=str(earlier.pk) if same_source else None,
        )
    if result.verdict == IntakeVerdict.FORBIDDEN:
        return Rendered.problem("forbidden", result.detail, id=str(lead.pk))
    if result.verdict == IntakeVerdict.PING_REFUSED:
        return Rendered.problem(
            result.problem, result.detail, id=str(lead.pk), errors=result.errors or None
        )
    slug = (
        "invalid-lead"
        if any(k.startswith("fields.") for k in result.errors)
        else ("malformed-request")
    )
    return Rendered.problem(slug, result.detail, id=str(lead.pk), errors=result.errors)


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
    413: OpenApiResponse(ProblemSerializer, description="Body over the size limit."),
    415: OpenApiResponse(ProblemSerializer, description="Body not sent as JSON."),
    422: OpenApiResponse(
        ProblemSerializer,
        description="Idempotency key reused with another body, or a ping that got no bid.",
    ),
    429: OpenApiResponse(ProblemSerializer, description="Over the source's rate limit."),
}


class LeadListCreateView(GenericAPIView):
    serializer_class = LeadSerializer
    filterset_class = LeadFilter
    pagination_class = LeadPagination

    def get_permissions(self):
        # An inactive source's submissions are still stored (and answered 403) by intake.
        return [IsSource()] if self.request.method == "POST" else [IsActiveSource()]

    def get_queryset(self):
        return leads_of_source(source=self.request.user.source)

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
        },
    )
    def get(self, request: Request) -> HttpResponse:
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
        source, api_key = principal.source, principal.api_key
        http = request._request
        remote_ip = http.META.get("REMOTE_ADDR") or None
        body, refusal = request_body_refusal(http, limit=settings.INTAKE_MAX_BODY_BYTES)
        raw_text = body_text(body)
        if refusal is not None:
            slug, detail, _ = refusal
            rendered, _ = refuse(
                slug, detail, principal=principal, raw_body=raw_text, remote_ip=remote_ip
            )
            return rendered.response()

        key = http.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY_RE.match(key):
            detail = "An Idempotency-Key is 1 to 255 printable ASCII characters."
            rendered, _ = refuse(
                "malformed-request",
                detail,
                principal=principal,
                raw_body=raw_text,
                remote_ip=remote_ip,
                errors={"Idempotency-Key": [detail]},
            )
            return rendered.response()

        document = read_json(body)
        submitted = lead_submit(
            submission=Submission(
                source=source,
                request_hash=hashlib.sha256(body).hexdigest(),
                idempotency_key=key,
                wait_seconds=parse_prefer_wait(http.headers.get("Prefer", "")),
                ping_id=envelope_ping_id(document),
            ),
            ingest=partial(
                self._ingest,
                request,
                source=source,
                api_key=api_key,
                document=document,
                raw_text=raw_text,
                remote_ip=remote_ip,
            ),
            key_reused=partial(
                _refuse_reused_key, principal=principal, raw_body=raw_text, remote_ip=remote_ip
            ),
            outcome=partial(render_outcome, request),
        )
        if submitted.replay is not None:
            return _replay(submitted.replay, source=source)
        return submitted.answer.response()

    def _ingest(self, request, *, source, api_key, document, raw_text, remote_ip):
        if isinstance(document, Unreadable):
            return refuse(
                "malformed-request",
                document.message,
                principal=request.user,
                raw_body=raw_text,
                remote_ip=remote_ip,
                errors={"_": [document.message]},
            )
        result = lead_ingest(
            source=source,
            api_key=api_key,
            document=document,
            raw_body=raw_text,
            remote_ip=remote_ip,
        )
        return render_result(request, result), result.lead


@dataclass(frozen=True)
class Unreadable:
    """A body that is not JSON, and why, in the words the partner is shown."""

    message: str


def read_json(body: bytes) -> Any:
    """The body's JSON document, or Unreadable saying why there is none."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        if not body.strip():
            message = "The body is empty; send the lead as a JSON object."
        elif isinstance(exc, UnicodeDecodeError):
            message = "Not valid UTF-8 JSON."
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
    """The answer kept for an Idempotency-Key, byte for byte (less what the source may no
    longer see)."""
    body = stored_answer_shown(bytes(record.response_body), source=source)
    response = HttpResponse(body, status=record.response_status)
    for name, value in record.response_headers.items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    response["Vary"] = "Prefer"
    return response


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


@extend_schema(summary="The verticals your source may submit to, with their fields")
class VerticalListView(ListAPIView):
    serializer_class = VerticalSerializer
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        return verticals_for_source(source=self.request.user.source)


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
        return get_object_or_404(self.get_queryset(), slug=self.kwargs["slug"])
