"""Admin for routing history: auctions, attempts and sales. Written by the engine, read here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from buyers.fields import mask
from buyers.models import SECRET_HEADER_WORDS
from config.admin_display import (
    LeadLinkMixin,
    ReadOnlyAdminMixin,
    admin_link,
    explanation_table,
    money,
    parse_uuid,
    precise_time,
    preformatted,
    pretty_json,
)
from routing.models import Attempt, Auction, ContractHealth, HealthEvent, Sale

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


# --- A lead's routing history, shown inline on the lead page (leads.admin). ---


class LeadAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Attempt
    fk_name = "lead"
    extra = 0
    show_change_link = True
    verbose_name = "attempt"
    verbose_name_plural = "Timeline: pings and posts, oldest first"
    fields = (
        "time",
        "kind",
        "contract_link",
        "outcome",
        "http_status",
        "latency",
        "price_display",
        "reason_display",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        return (
            super()
            .get_queryset(request)
            .select_related("contract__buyer")
            .order_by("created_at", "id")
        )

    @admin.display(description="Time")
    def time(self, obj: Attempt) -> str | None:
        return precise_time(obj.created_at)

    @admin.display(description="Buyer · contract")
    def contract_link(self, obj: Attempt) -> str | None:
        return admin_link(obj.contract)

    @admin.display(description="HTTP status")
    def http_status(self, obj: Attempt) -> int | None:
        return obj.response_status

    @admin.display(description="Latency")
    def latency(self, obj: Attempt) -> str | None:
        return None if obj.latency_ms is None else f"{obj.latency_ms} ms"

    @admin.display(description="Price")
    def price_display(self, obj: Attempt) -> str | None:
        return money(obj.price)

    @admin.display(description="Reason")
    def reason_display(self, obj: Attempt) -> str:
        return obj.reason or obj.error[:200] or "-"


class LeadAuctionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Auction
    extra = 0
    show_change_link = True
    fields = ("started_at", "finished_at", "duration", "status", "eligible_count", "note")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Auction]:
        return super().get_queryset(request).order_by("started_at", "id")

    @admin.display(description="Duration")
    def duration(self, obj: Auction) -> str | None:
        return None if obj.duration_ms is None else f"{obj.duration_ms} ms"


class LeadSaleInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Sale
    extra = 0
    show_change_link = True
    fields = (
        "sold_at",
        "buyer",
        "contract_link",
        "status",
        "price_display",
        "payout_display",
        "margin_display",
        "buyer_reference",
        "returned_at",
        "return_reason",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Sale]:
        return super().get_queryset(request).select_related("buyer", "contract__buyer")

    @admin.display(description="Contract")
    def contract_link(self, obj: Sale) -> str | None:
        return admin_link(obj.contract, obj.contract.name)

    @admin.display(description="Price")
    def price_display(self, obj: Sale) -> str | None:
        return money(obj.price)

    @admin.display(description="Payout")
    def payout_display(self, obj: Sale) -> str | None:
        return money(obj.payout)

    @admin.display(description="Margin")
    def margin_display(self, obj: Sale) -> str | None:
        return money(obj.margin)


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


@admin.register(ContractHealth)
class ContractHealthAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Which contracts the circuit breakers keep out of routing, and why."""

    list_display = ("contract", "status", "reason", "updated_at")
    list_filter = ("status",)
    search_fields = ("contract__name", "contract__buyer__company")
    list_select_related = ("contract__buyer",)
    fields = ("contract", "status", "reason", "state", "updated_at")


@admin.register(HealthEvent)
class HealthEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("at", "contract", "status", "reason", "actor")
    list_filter = ("status",)
    search_fields = ("contract__name", "contract__buyer__company", "reason")
    list_select_related = ("contract__buyer",)
    date_hierarchy = "at"
    show_full_result_count = False
