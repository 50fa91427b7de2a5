"""The delivery dashboards (staff with the dashboard permission) and their CSV exports."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from functools import wraps
from typing import Any

from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from config.masking import mask_email, mask_phone
from reporting.charts import bar_chart, sparkline_delta
from reporting.filters import ReportFilter, ReportQuery, report_query
from reporting.rollup import reading_reports
from reporting.selectors import (
    LEAD_EXPORT_FIELDS,
    leads_for_export,
    report_buyers,
    report_sources,
    report_summary,
    report_tiers,
    report_timeseries,
    rollup_freshness,
)

DASHBOARD_PERMISSION = "reporting.view_dashboard"
UNMASKED_PERMISSION = "reporting.view_unmasked_pii"
# (key, label, is money) of the headline figures, in the order shown.
KPIS = [
    ("received", "Received", False),
    ("accepted", "Accepted", False),
    ("invalid", "Invalid", False),
    ("duplicate", "Duplicate", False),
    ("sold", "Sold", False),
    ("unsold", "Unsold", False),
    ("returned", "Returned", False),
    ("sell_through", "Sell-through", False),
    ("revenue", "Revenue", True),
    ("payout", "Source payout", True),
    ("margin", "Margin", True),
    ("average_sale_price", "Average sale price", True),
    ("revenue_per_accepted_lead", "Revenue per accepted lead", True),
    ("submit_to_sold_p50_seconds", "Submit to sold p50 (s)", False),
    ("submit_to_sold_p95_seconds", "Submit to sold p95 (s)", False),
]
BUYER_COLUMNS = [
    "buyer",
    "pings",
    "bids",
    "bid_rate",
    "wins",
    "win_rate",
    "posts_accepted",
    "posts_rejected",
    "posts_failed",
    "rejection_rate",
    "top_rejection_reasons",
    "returns",
    "revenue",
    "average_price",
    "ping_latency_p50_ms",
    "ping_latency_p95_ms",
    "cap_usage",
    "health",
]
TIER_COLUMNS = [
    "tier",
    "received",
    "accepted",
    "sold",
    "sell_through",
    "revenue",
    "average_sale_price",
    "revenue_per_accepted_lead",
]
SOURCE_COLUMNS = [
    "source",
    "submitted",
    "invalid",
    "duplicate",
    "accepted",
    "sold",
    "sell_through",
    "revenue",
    "payout",
    "margin",
    "returns",
    "missing_sub_id",
    "missing_consent",
    "pings",
    "ping_bid_rate",
    "ping_to_post",
]


def dashboard_view(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Staff only (others go to the admin login), with the dashboard permission (else 403)."""

    @staff_member_required
    @permission_required(DASHBOARD_PERMISSION, raise_exception=True)
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return view(request, *args, **kwargs)

    return wrapped


def _query(request: HttpRequest) -> tuple[ReportFilter, ReportQuery | None, dict]:
    filterset = ReportFilter(request.GET or None)
    try:
        return filterset, report_query(request.GET), {}
    except ValidationError as exc:
        return filterset, None, exc.message_dict


def _context(request: HttpRequest, page: str, **extra: Any) -> dict[str, Any]:
    return {
        "page": page,
        "querystring": request.GET.urlencode(),
        "rollups_at": rollup_freshness(),
        "now": timezone.now(),
        **extra,
    }


def _render(request: HttpRequest, template: str, page: str, build) -> HttpResponse:
    filterset, query, errors = _query(request)
    # The figures come from the replica, if there is one; the page around them (the user, the
    # filter's choices) from the primary.
    with reading_reports():
        context = _context(request, page, filter=filterset, query=query, errors=errors)
        if query is not None:
            context.update(build(query))
    return render(request, template, context, status=400 if errors else 200)


@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    def build(query: ReportQuery) -> dict[str, Any]:
        summary = report_summary(query)
        series = report_timeseries(query)
        kpis = [
            {
                "label": label,
                "money": money,
                "ratio": key == "sell_through",
                "current": summary["current"][key],
                "previous": summary["previous"][key],
                "delta": sparkline_delta(summary["current"][key], summary["previous"][key]),
            }
            for key, label, money in KPIS
        ]
        return {
            "summary": summary,
            "kpis": kpis,
            "tiers": report_tiers(query),
            "volume_chart": bar_chart(
                series["points"],
                series=[("received", "Received", "#9aa9c0"), ("sold", "Sold", "#2f6fb3")],
                granularity=series["granularity"],
                title="Leads received and sold",
            ),
            "revenue_chart": bar_chart(
                series["points"],
                series=[("revenue", "Revenue", "#2e8b57")],
                granularity=series["granularity"],
                title="Revenue",
                money=True,
            ),
        }

    return _render(request, "reporting/overview.html", "overview", build)


@dashboard_view
def buyers(request: HttpRequest) -> HttpResponse:
    return _render(request, "reporting/buyers.html", "buyers", lambda q: {"rows": report_buyers(q)})


@dashboard_view
def sources(request: HttpRequest) -> HttpResponse:
    return _render(
        request, "reporting/sources.html", "sources", lambda q: {"rows": report_sources(q)}
    )


# --- CSV ---------------------------------------------------------------------------------------


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell; text a spreadsheet would run as a formula is quoted with '."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal | int | float):
        return value
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable[Any]]) -> HttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([csv_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _buyer_cells(row: dict[str, Any]) -> list[Any]:
    cells = []
    for column in BUYER_COLUMNS:
        value = row[column]
        if column == "top_rejection_reasons":
            value = "; ".join(f"{r['reason'] or '(none)'} ({r['count']})" for r in value)
        elif column == "cap_usage":
            value = "; ".join(
                f"{c['scope']} {c['period']}: {c['leads']}/{c['max_leads'] or '∞'}" for c in value
            )
        cells.append(value)
    return cells


def _lead_rows(query: ReportQuery, *, masked: bool) -> Iterator[list[Any]]:
    email, phone = LEAD_EXPORT_FIELDS.index("email"), LEAD_EXPORT_FIELDS.index("phone")
    for values in leads_for_export(query):
        row = list(values)
        if masked:
            row[email], row[phone] = mask_email(row[email]), mask_phone(row[phone])
        yield row


# Exports that are a report's rows, column by column.
ROW_TABLES = {"sources": (SOURCE_COLUMNS, report_sources), "tiers": (TIER_COLUMNS, report_tiers)}


@dashboard_view
def export(request: HttpRequest, table: str) -> HttpResponse:
    masked = not request.user.has_perm(UNMASKED_PERMISSION)  # on the primary, as is the admin
    with reading_reports():
        return _export(table, request.GET, masked=masked)


def _export(table: str, data: Any, *, masked: bool) -> HttpResponse:
    try:
        query = report_query(data)
    except ValidationError as exc:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
        return HttpResponse(detail, status=400, content_type="text/plain; charset=utf-8")
    stamp = f"{query.start:%Y%m%d}-{query.end:%Y%m%d}"
    if table == "summary":
        summary = report_summary(query)
        rows = [
            (label, summary["current"][key], summary["previous"][key]) for key, label, _ in KPIS
        ]
        return csv_response(f"summary-{stamp}.csv", ["figure", "period", "previous"], rows)
    if table == "timeseries":
        series = report_timeseries(query)
        rows = [(p["t"], p["received"], p["sold"], p["revenue"]) for p in series["points"]]
        return csv_response(
            f"timeseries-{stamp}.csv", ["start", "received", "sold", "revenue"], rows
        )
    if table == "buyers":
        rows = [_buyer_cells(row) for row in report_buyers(query)]
        return csv_response(f"buyers-{stamp}.csv", BUYER_COLUMNS, rows)
    if table in ROW_TABLES:
        columns, report = ROW_TABLES[table]
        rows = [[row[c] for c in columns] for row in report(query)]
        return csv_response(f"{table}-{stamp}.csv", columns, rows)
    if table == "leads":
        header = [name.replace("__", "_") for name in LEAD_EXPORT_FIELDS]
        return csv_response(f"leads-{stamp}.csv", header, _lead_rows(query, masked=masked))
    raise Http404("No such export.")
