"""Admin for routing history: auctions, attempts and sales. Written by the engine, read here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from buyers.fields import mask
from buyers.models import SECRET_HEADER_WORDS
from leads.admin import (
    LeadAttemptInline,
    ReadOnlyAdminMixin,
    explanation_table,
    money,
    parse_uuid,
    precise_time,
    preformatted,
    pretty_json,
)
from routing.models import Attempt, Auction, Sale

# Header names that carry credentials. The engine records attempts with secrets masked already;
# masking again here keeps a slip there from reaching the screen.


def masked_headers(headers: Any) -> Any:
    if not isinstance(headers, dict):
        return headers
    return {
        name: mask(str(value))
        if any(word in name.lower() for word in SECRET_HEADER_WORDS)
        and not str(value).startswith("••••")
        else value
        for name, value in headers.items()
    }


class LeadLinkMixin:
    @admin.display(description="Lead")
    def lead_link(self, obj: Auction | Attempt | Sale) -> str:
        # Built from lead_id: no join to the lead table just to print its id.
        url = reverse("admin:leads_lead_change", args=[obj.lead_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.lead_id)[:8])


class AuctionAttemptInline(LeadAttemptInline):
    """The lead's timeline, narrowed to one routing run."""

    fk_name = "auction"
    verbose_name_plural = "Pings and posts of this run, oldest first"


def search_by_lead_or(queryset: QuerySet, term: str, *exact_fields: str) -> QuerySet:
    """Find a lead's rows by its id, or match the term exactly on exact_fields.

    These tables grow with every lead: only exact lookups on indexed columns, never LIKE.
    """
    term = term.strip()
    if not term:
        return queryset
    lead_id = parse_uuid(term)
    if lead_id is not None:
        return queryset.filter(lead_id=lead_id)
    condition = Q()
    for field in exact_fields:
        condition |= Q(**{field: term})
    if term.isdigit():
        condition |= Q(pk=int(term))
    return queryset.filter(condition) if condition else queryset.none()


@admin.register(Auction)
class AuctionAdmin(LeadLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "lead_link",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "eligible_count",
    )
    list_filter = ("status",)
    search_fields = ("lead__id",)
    search_help_text = "A lead id or an auction number."
    date_hierarchy = "started_at"
    show_full_result_count = False
    raw_id_fields = ("lead",)
    inlines = (AuctionAttemptInline,)
    fields = (
        "lead",
        "status",
        "started_at",
        "finished_at",
        "duration",
        "eligible_count",
        "note",
        "explanation_display",
    )
    readonly_fields = ("duration", "explanation_display")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        return search_by_lead_or(queryset, search_term), False

    @admin.display(description="Duration")
    def duration(self, obj: Auction) -> str | None:
        return None if obj.duration_ms is None else f"{obj.duration_ms} ms"

    @admin.display(description="Why each contract was or was not eligible")
    def explanation_display(self, obj: Auction) -> str:
        return explanation_table(obj.explanation or [])


@admin.register(Attempt)
class AttemptAdmin(LeadLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "lead_link",
        "kind",
        "contract",
        "outcome",
        "response_status",
        "latency_ms",
        "price_display",
    )
    list_filter = ("kind", "outcome", "contract__buyer")
    search_fields = ("lead__id",)
    search_help_text = "A lead id or an attempt number."
    list_select_related = ("contract__buyer",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ("auction", "lead", "contract")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "lead",
                    "auction",
                    "contract",
                    "kind",
                    "created_at_precise",
                    "outcome",
                    "price_display",
                    "reason",
                    "buyer_reference",
                    "error",
                )
            },
        ),
        (
            "Request",
            {"fields": ("method", "url", "request_headers_display", "request_body_display")},
        ),
        (
            "Response",
            {"fields": ("response_status", "latency_ms", "response_body_display")},
        ),
    )
    readonly_fields = (
        "created_at_precise",
        "price_display",
        "request_headers_display",
        "request_body_display",
        "response_body_display",
    )

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        return search_by_lead_or(queryset, search_term), False

    @admin.display(description="Created")
    def created_at_precise(self, obj: Attempt) -> str | None:
        return precise_time(obj.created_at)

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj: Attempt) -> str | None:
        return money(obj.price)

    @admin.display(description="Request headers")
    def request_headers_display(self, obj: Attempt) -> str:
        return pretty_json(masked_headers(obj.request_headers))

    @admin.display(description="Request body")
    def request_body_display(self, obj: Attempt) -> str:
        return preformatted(obj.request_body)

    @admin.display(description="Response body")
    def response_body_display(self, obj: Attempt) -> str:
        return preformatted(obj.response_body)


@admin.register(Sale)
class SaleAdmin(LeadLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "sold_at",
        "lead_link",
        "buyer",
        "contract_name",
        "status",
        "price_display",
        "payout_display",
        "margin_display",
    )
    list_filter = ("status", "buyer")
    search_fields = ("lead__id", "buyer_reference")
    search_help_text = "A lead id, a sale number or the buyer's reference, exactly."
    list_select_related = ("buyer", "contract")
    date_hierarchy = "sold_at"
    raw_id_fields = ("lead", "contract", "buyer", "auction")
    fields = (
        "lead",
        "buyer",
        "contract",
        "auction",
        "status",
        "price_display",
        "payout_display",
        "margin_display",
        "buyer_reference",
        "sold_at",
        "returned_at",
        "return_reason",
    )
    readonly_fields = ("price_display", "payout_display", "margin_display")

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        return search_by_lead_or(queryset, search_term, "buyer_reference"), False

    @admin.display(description="Contract", ordering="contract__name")
    def contract_name(self, obj: Sale) -> str:
        return obj.contract.name

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj: Sale) -> str | None:
        return money(obj.price)

    @admin.display(description="Payout", ordering="payout")
    def payout_display(self, obj: Sale) -> str | None:
        return money(obj.payout)

    @admin.display(description="Margin")
    def margin_display(self, obj: Sale) -> str | None:
        return money(obj.margin)
