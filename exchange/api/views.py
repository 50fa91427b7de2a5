"""The inbound ping: a seller's anonymous bid request, answered synchronously with a price."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from exchange.api.serializers import PingAnswerSerializer, PingSerializer
from exchange.models import InboundPing, PingStatus
from exchange.services import PingResult, ping_answer
from leads.api.auth import IsSource
from leads.api.serializers import ProblemSerializer
from leads.api.views import (
    PROBLEMS,
    Rendered,
    Unreadable,
    body_text,
    read_json,
    request_body_refusal,
)
from leads.prices import BUYER_PRICE, money, prices_shown

EXAMPLE_SHA256 = hashlib.sha256(b"mary.major@example.com").hexdigest()
PING_PROBLEMS = {
    **{status: PROBLEMS[status] for status in (401, 403, 409, 411, 413, 415, 429)},
    400: OpenApiResponse(
        ProblemSerializer, description="Malformed, or carries a field a ping may not carry."
    ),
}


def render_ping(result: PingResult) -> Rendered:
    ping = result.ping
    if result.problem:
        return Rendered.problem(
            result.problem, result.detail, id=str(ping.pk), errors=result.errors or None
        )
    answer = {
        "ping_id": str(ping.pk),
        "status": ping.status,
        # The seller's payout, as `price`: a ping's answer names what the seller is offered.
        "price": money(ping.price),
        "expires_at": ping.expires_at.isoformat().replace("+00:00", "Z")
        if ping.expires_at
        else None,
    }
    if ping.status == PingStatus.BID:
        shown = prices_shown(source=ping.source, payout=ping.price, buyer_price=ping.buyer_price)
        answer.update({k: v for k, v in shown.items() if k == BUYER_PRICE})
    return Rendered(200, answer, "application/json")


class PingCreateView(GenericAPIView):
    serializer_class = PingSerializer
    permission_classes = [IsSource]  # an inactive source's pings are stored and answered 403

    @extend_schema(
        operation_id="pings_create",
        summary="Ping: get a price for a lead before posting it",
        description=(
            "Send the vertical's ping fields (never personal data). Eligible buyers are pinged "
            "under the vertical's deadline and the answer comes back in the same request: a "
            "`ping_id`, `bid` or `no_bid`, the price you are paid if the post sells, and until "
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
        remote_ip = http.META.get("REMOTE_ADDR") or None
        body, refusal = request_body_refusal(http, limit=settings.INTAKE_MAX_BODY_BYTES)
        document = read_json(body) if refusal is None else None
        if refusal is None and isinstance(document, Unreadable):
            refusal = ("malformed-request", document.message, {"_": [document.message]})
        if refusal is not None:
            slug, detail, errors = refusal
            ping = InboundPing.objects.create(
                source=principal.source,
                api_key=principal.api_key,
                status=PingStatus.INVALID,
                reason=detail[:500],
                errors=errors or {},
                remote_ip=remote_ip,
                raw_body=body_text(body),
            )
            return Rendered.problem(slug, detail, id=str(ping.pk), errors=errors).response()
        result = ping_answer(
            source=principal.source,
            api_key=principal.api_key,
            document=document,
            raw_body=body_text(body),
            remote_ip=remote_ip,
        )
        return render_ping(result).response()
