"""The inbound ping: a seller's anonymous bid request, answered synchronously with a price."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from config.proxies import client_ip
from exchange.api.serializers import PingAnswerSerializer, PingSerializer
from exchange.models import InboundPing, PingStatus
from exchange.rules import INVALID_FIELDS, PingRequest, ping_field_errors, unread_body_note
from exchange.services import PingResult, ping_answer
from leads.api.auth import IsSource
from leads.api.serializers import ProblemSerializer
from leads.api.views import (
    PROBLEMS,
    AnswersInProfileFormat,
    Refusal,
    Rendered,
    body_text,
    post_format_refusal,
    read_request,
    request_body_refusal,
)
from leads.instructions import EXAMPLE_BUYER_PRICE
from leads.intake import specs_from_models
from leads.models import Source, Vertical
from leads.prices import prices_shown
from leads.profiles import FORMAT_NAMES, PING_PARAMETERS, QUERY, Profile, Reading, mask_key

EXAMPLE_SHA256 = hashlib.sha256(b"mary.major@example.com").hexdigest()
PING_PROBLEMS = {
    **{status: PROBLEMS[status] for status in (401, 403, 409, 411, 413, 415, 429)},
    400: OpenApiResponse(
        ProblemSerializer, description="Malformed, or carries a field a ping may not carry."
    ),
}


def _sent_size(http: Any, body: bytes) -> int:
    """The body's size as sent: its Content-Length when it was refused unread."""
    try:
        return max(int(http.META.get("CONTENT_LENGTH") or 0), len(body))
    except ValueError:
        return len(body)


def render_ping(result: PingResult, *, reading: Reading, answer_format: str) -> Rendered:
    """A ping's answer (or refusal, its errors named as the seller sent them) in the source's
    answer format, its money as every partner surface shows it (leads.prices)."""
    ping = result.ping
    if result.problem:
        errors = reading.seller_errors(result.errors) if result.errors else None
        return Rendered.problem(
            result.problem,
            result.detail,
            answer_format=answer_format,
            id=str(ping.pk),
            errors=errors,
        )
    expires_at = ping.expires_at.isoformat().replace("+00:00", "Z") if ping.expires_at else None
    answer = {
        "ping_id": str(ping.pk),
        "status": ping.status,
        **prices_shown(source=ping.source, payout=ping.price, buyer_price=ping.buyer_price),
        "expires_at": expires_at,
    }
    return Rendered(200, answer, "application/json", answer_format=answer_format)


# The posting instructions' example answers (leads.instructions): ids and times are examples.
EXAMPLE_PING_ID = uuid.UUID("5d2a8c4e-3b1f-4a6d-9e7c-2f0b1a3c4d60")
EXAMPLE_EXPIRY = datetime(2026, 5, 1, 14, 5, 0, tzinfo=UTC)


def ping_example_answers(
    source: Source, profile: Profile, vertical: Vertical, reading: Reading
) -> list[tuple[str, Rendered]]:
    """The answers to a posting instructions page's example ping, as this endpoint renders
    them: a bid at the example price, no bid, and a ping refused for carrying personal data."""
    fields = list(vertical.fields.all())
    personal = frozenset(f.name for f in fields if f.is_pii)
    pinged = frozenset(f.name for f in fields if f.in_ping) - personal
    bid = InboundPing(
        id=EXAMPLE_PING_ID,
        source=source,
        status=PingStatus.BID,
        price=source.payout_for(EXAMPLE_BUYER_PRICE),
        buyer_price=EXAMPLE_BUYER_PRICE,
        expires_at=EXAMPLE_EXPIRY,
    )
    no_bid = InboundPing(id=EXAMPLE_PING_ID, source=source, status=PingStatus.NO_BID)
    answers = [
        ("Ping bid", PingResult(ping=bid)),
        ("Ping no bid", PingResult(ping=no_bid)),
    ]
    leaked = next((f.name for f in fields if f.is_pii), None)
    if leaked is not None:
        errors = ping_field_errors(
            specs_from_models(fields), {leaked: ""}, ping_fields=pinged, personal=personal
        )
        invalid = InboundPing(id=EXAMPLE_PING_ID, source=source, status=PingStatus.INVALID)
        refused = PingResult(ping=invalid, problem="invalid-ping", detail=INVALID_FIELDS)
        answers.append(("Ping refused", replace(refused, errors=errors)))
    return [
        (title, render_ping(result, reading=reading, answer_format=profile.answer_format))
        for title, result in answers
    ]


class PingCreateView(AnswersInProfileFormat, GenericAPIView):
    serializer_class = PingSerializer
    permission_classes = [IsSource]  # an inactive source's pings are stored and answered 403

    @extend_schema(
        operation_id="pings_create",
        summary="Ping: get a price for a lead before posting it",
        description=(
            "Send the vertical's ping fields (never personal data). Eligible buyers are pinged "
            "under the vertical's deadline and the answer comes back in the same request: a "
            "`ping_id`, `bid` or `no_bid`, your `payout` if the post sells, and until "
            "when it holds. Then POST the full lead to /api/v1/leads/ with `ping_id`."
        ),
        request=PingSerializer,
        responses={200: PingAnswerSerializer, **PING_PROBLEMS},
        examples=[
            OpenApiExample(
                "Auto insurance ping",
                request_only=True,
                value={
                    "vertical": "auto-insurance",
                    "fields": {"zip_code": "10001", "currently_insured": True},
                    # sha256("mary.major@example.com")
                    "email_sha256": EXAMPLE_SHA256,
                },
            )
        ],
    )
    def post(self, request: Request) -> HttpResponse:
        principal = request.user
        http = request._request
        limit = settings.INTAKE_MAX_BODY_BYTES
        body, refusal = request_body_refusal(http, limit=limit)
        if refusal is None:
            refusal = post_format_refusal(principal.profile, http.content_type or "", what="pings")
        if refusal is not None:
            note = unread_body_note(_sent_size(http, body), http.content_type or "")
            return self._refused(request, refusal, raw_body=note)
        return self._ping(request, raw_body=mask_key(body_text(body), principal.sent_key))

    @extend_schema(exclude=True)  # a GET seller's ping (posting profiles); the JSON API POSTs
    def get(self, request: Request) -> HttpResponse:
        principal = request.user
        profile = principal.profile
        query = request._request.META.get("QUERY_STRING", "")
        if profile.format != QUERY:
            detail = f"This source sends its pings as {FORMAT_NAMES[profile.format]}, not as a GET."
            note = unread_body_note(len(query.encode()), "a query string")
            return self._refused(request, ("method-not-allowed", detail, None), raw_body=note)
        return self._ping(request, raw_body=mask_key(query, principal.sent_key))

    def _ping(self, request: Request, *, raw_body: str) -> HttpResponse:
        principal = request.user
        profile = principal.profile
        reading = read_request(request, members=PING_PARAMETERS)
        if reading.document is None:
            detail = next(iter(reading.errors.get("_", [])), "The ping has errors; see errors.")
            refusal = ("malformed-request", detail, reading.errors)
            http = request._request
            kind = "a query string" if profile.format == QUERY else http.content_type or ""
            note = unread_body_note(len(raw_body.encode()), kind)
            return self._refused(request, refusal, raw_body=note)
        parameters = reading.parameters
        if parameters is not None and principal.sent_key:
            parameters = {
                name: mask_key(value, principal.sent_key) if isinstance(value, str) else value
                for name, value in parameters.items()
            }
        result = ping_answer(
            source=principal.source,
            api_key=principal.api_key,
            sent=PingRequest(
                reading=reading,
                raw_body=raw_body,
                format=profile.format,
                parameters=parameters,
                default_vertical=profile.default_vertical,
            ),
            remote_ip=client_ip(request._request) or None,
        )
        return render_ping(result, reading=reading, answer_format=profile.answer_format).response()

    def _refused(self, request: Request, refusal: Refusal, *, raw_body: str) -> HttpResponse:
        """Store a ping refused before it could be read, and answer its problem."""
        principal = request.user
        slug, detail, errors = refusal
        ping = InboundPing.objects.create(
            source=principal.source,
            api_key=principal.api_key,
            status=PingStatus.INVALID,
            reason=detail[:500],
            errors=errors or {},
            remote_ip=client_ip(request._request) or None,
            raw_body=raw_body,
        )
        return Rendered.problem(
            slug,
            detail,
            answer_format=principal.profile.answer_format,
            id=str(ping.pk),
            errors=errors,
        ).response()
