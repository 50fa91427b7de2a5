"""The reporting API (staff, for BI tools) and the returns API (buyers)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from reporting.api.auth import (
    BuyerKeyAuthentication,
    CanViewReports,
    IsActiveBuyer,
    StaffTokenAuthentication,
    TokenScopeAllows,
)
from reporting.api.serializers import (
    BuyerRowSerializer,
    ReturnRequestSerializer,
    ReturnSerializer,
    SourceRowSerializer,
    SummarySerializer,
    TierRowSerializer,
    TimeseriesSerializer,
)
from reporting.filters import PRESETS, ReportQuery, report_query
from reporting.rollup import reading_reports
from reporting.selectors import (
    report_buyers,
    report_sources,
    report_summary,
    report_tiers,
    report_timeseries,
)
from reporting.services import ReturnRefused, sale_return
from routing.models import Sale

FILTER_PARAMETERS = [
    OpenApiParameter(
        "preset",
        str,
        enum=[value for value, _ in PRESETS],
        description="A period ending now (UTC); the default is last_7_days.",
    ),
    OpenApiParameter("start", OpenApiTypes.DATE, description="First day (UTC) of a custom period."),
    OpenApiParameter("end", OpenApiTypes.DATE, description="Last day (UTC, included)."),
    OpenApiParameter("vertical", str, description="A vertical's slug."),
    OpenApiParameter("source", int, description="A source's id."),
    OpenApiParameter("buyer", int, description="A buyer's id."),
]
REPORT_PROBLEMS = {
    400: OpenApiResponse(description="A filter is not valid; `errors` names it."),
    401: OpenApiResponse(description="No session and no valid staff token."),
    403: OpenApiResponse(description="Not staff with the dashboard permission."),
}


class ReportView(APIView):
    """The base of every report: staff by session or token, the report filters, no throttle."""

    # The docstring is the OpenAPI description of every report. A report names its selector
    # (`report`, called with the parsed query) and the serializer of what it returns (`many`
    # for a list of rows); its class's `extend_schema` gives its summary and answer.

    authentication_classes = [StaffTokenAuthentication, SessionAuthentication]
    permission_classes = [CanViewReports, TokenScopeAllows]
    throttle_classes: list = []
    report: Callable[[ReportQuery], Any]
    serializer: type[Serializer]
    many = False

    def report_query(self, request: Request) -> ReportQuery:
        try:
            return report_query(request.query_params)
        except DjangoValidationError as exc:
            raise exceptions.ValidationError(exc.message_dict) from None

    @extend_schema(parameters=FILTER_PARAMETERS, tags=["reports"])
    def get(self, request: Request) -> Response:
        # Who asks was settled on the primary (authentication); what they read comes from the
        # replica, if there is one.
        with reading_reports():
            result = type(self).report(self.report_query(request))
            return Response(self.serializer(result, many=self.many).data)


@extend_schema(
    summary="Headline figures of a period and the one before it",
    responses={200: SummarySerializer, **REPORT_PROBLEMS},
)
class SummaryView(ReportView):
    report = report_summary
    serializer = SummarySerializer


@extend_schema(
    summary="Received, sold and revenue per hour (up to two days) or per day",
    responses={200: TimeseriesSerializer, **REPORT_PROBLEMS},
)
class TimeseriesView(ReportView):
    report = report_timeseries
    serializer = TimeseriesSerializer


@extend_schema(
    summary="One row per buyer: pings, bids, wins, posts, rejections, revenue, latency, caps",
    responses={200: BuyerRowSerializer(many=True), **REPORT_PROBLEMS},
)
class BuyersReportView(ReportView):
    report = report_buyers
    serializer = BuyerRowSerializer
    many = True


@extend_schema(
    summary="One row per source: volume, quality, sell-through, money, returns, attribution",
    responses={200: SourceRowSerializer(many=True), **REPORT_PROBLEMS},
)
class SourcesReportView(ReportView):
    report = report_sources
    serializer = SourceRowSerializer
    many = True


@extend_schema(
    summary="One row per score tier: received, accepted, sold, sell-through, revenue",
    responses={200: TierRowSerializer(many=True), **REPORT_PROBLEMS},
)
class TiersReportView(ReportView):
    report = report_tiers
    serializer = TierRowSerializer
    many = True


class ReturnCreateView(APIView):
    authentication_classes = [BuyerKeyAuthentication]
    permission_classes = [IsActiveBuyer]
    throttle_classes: list = []

    @extend_schema(
        summary="Return a lead you bought, within your contract's return window",
        request=ReturnRequestSerializer,
        responses={
            201: ReturnSerializer,
            400: OpenApiResponse(
                description="Refused: past the window, already returned, over the contract's "
                "maximum return rate, or a field is missing. `errors` says which and why."
            ),
            401: OpenApiResponse(description="Missing, unknown or revoked buyer key."),
            403: OpenApiResponse(description="The buyer is inactive."),
            404: OpenApiResponse(description="You bought no lead with this id."),
        },
        tags=["returns"],
    )
    def post(self, request: Request) -> Response:
        body = ReturnRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        sale = (
            Sale.objects.filter(lead_id=body.validated_data["lead_id"], buyer=request.user.buyer)
            .select_related("lead")
            .first()
        )
        if sale is None:
            raise exceptions.NotFound("You bought no lead with this id.")
        try:
            record = sale_return(
                sale=sale,
                reason=body.validated_data["reason"],
                note=body.validated_data.get("note", ""),
                returned_by=f"buyer key {request.user.api_key.prefix}…",
            )
        except ReturnRefused as exc:
            raise exceptions.ValidationError(exc.errors) from None
        return Response(ReturnSerializer(record).data, status=status.HTTP_201_CREATED)
