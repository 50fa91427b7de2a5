"""Admin for inbound pings: each one explained like an auction (its timeline, the eligibility
table with reasons, its buyers' pings and the bids it holds), read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from config.admin_display import (
    ReadOnlyAdminMixin,
    admin_link,
    admin_link_by_id,
    explanation_table,
    milliseconds,
    money,
    parse_uuid,
    precise_time,
    pretty_json,
    search_by_lead_or,
)
from config.admin_pii import MaskedLookupsMixin
from exchange.models import InboundPing, PingAttempt
from exchange.rules import held_bid_from_record
from routing.admin import LeadAttemptInline


class PingAttemptInline(LeadAttemptInline):
    """The routing timeline's inline, for a ping's buyers (the engine made these attempts)."""

    model = PingAttempt
    fk_name = "ping"
    verbose_name = "ping to a buyer"
    verbose_name_plural = "Timeline: the buyers pinged, oldest first"
    show_change_link = False

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        # A ping carries no personal data (a field sent by mistake is refused and not kept):
        # nothing to mask, for Sales either.
        return admin.TabularInline.get_formset(self, request, obj, **kwargs)


@admin.register(InboundPing)
class InboundPingAdmin(MaskedLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "received_at",
        "source",
        "vertical",
        "status",
        "eligible_count",
        "price_display",
        "duration",
        "posted",
    )
    list_filter = ("status", "is_test", "vertical", "source")
    search_fields = ("id",)
    search_help_text = "A ping id, or the id of the lead its post became."
    list_select_related = ("source", "vertical")
    date_hierarchy = "received_at"
    show_full_result_count = False
    raw_id_fields = ("lead", "api_key")
    inlines = (PingAttemptInline,)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "source",
                    "vertical",
                    "status",
                    "reason",
                    "errors_display",
                    "timeline_display",
                    "price_display",
                    "buyer_price_display",
                    "expires_at",
                    "lead_display",
                )
            },
        ),
        ("What was pinged", {"fields": ("fields_display", "is_test", "sub_id", "raw_body")}),
        (
            "Why each contract was or was not eligible",
            {"fields": ("eligible_count", "explanation_display")},
        ),
        ("Bids held for the post, in the order it tries them", {"fields": ("held_display",)}),
    )
    readonly_fields = (
        "errors_display",
        "timeline_display",
        "price_display",
        "buyer_price_display",
        "lead_display",
        "fields_display",
        "explanation_display",
        "held_display",
    )

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        ping_id = parse_uuid(search_term.strip())
        if ping_id is not None:
            return queryset.filter(Q(pk=ping_id) | Q(lead_id=ping_id)), False
        return search_by_lead_or(queryset, search_term), False

    @admin.display(description="Offered to the seller")
    def price_display(self, obj: InboundPing) -> str:
        return money(obj.price)

    @admin.display(description="Best bid")
    def buyer_price_display(self, obj: InboundPing) -> str:
        return money(obj.buyer_price)

    @admin.display(description="Answered in")
    def duration(self, obj: InboundPing) -> str:
        return milliseconds(obj.duration_ms)

    @admin.display(description="Posted", boolean=True)
    def posted(self, obj: InboundPing) -> bool:
        return obj.lead_id is not None

    @admin.display(description="Lead it became")
    def lead_display(self, obj: InboundPing) -> str | None:
        return admin_link(obj.lead, str(obj.lead_id)) if obj.lead_id else "not posted"

    @admin.display(description="Errors")
    def errors_display(self, obj: InboundPing) -> str:
        return pretty_json(obj.errors) if obj.errors else "-"

    @admin.display(description="Fields")
    def fields_display(self, obj: InboundPing) -> str:
        return pretty_json(obj.fields)

    @admin.display(description="Eligibility at the ping")
    def explanation_display(self, obj: InboundPing) -> str:
        return explanation_table(obj.explanation or [])

    @admin.display(description="Timeline")
    def timeline_display(self, obj: InboundPing) -> str:
        return format_html(
            "<ol>{}</ol>", format_html_join("", "<li>{} · {}</li>", ping_timeline(obj))
        )

    @admin.display(description="Held bids")
    def held_display(self, obj: InboundPing) -> str:
        if not obj.held_bids:
            return "none"
        rows = []
        for position, record in enumerate(obj.held_bids, start=1):
            bid = held_bid_from_record(record).bid
            rows.append(
                (
                    position,
                    admin_link_by_id("buyers", "contract", bid.contract_id, bid.contract_id),
                    money(bid.price),
                    "exclusive" if bid.exclusive else "shared",
                    "-" if bid.expires_at is None else f"{bid.expires_at:.0f}",
                )
            )
        return format_html(
            "<table><thead><tr><th>#</th><th>Contract</th><th>Bid</th><th>Kind</th>"
            "<th>Valid until (epoch s)</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join(
                "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
            ),
        )


def ping_timeline(ping: InboundPing) -> list[tuple[str | None, str]]:
    """The ping's steps, oldest first: received, answered, posted."""
    steps = [(precise_time(ping.received_at), f"received from {ping.source}")]
    answered = f"answered {ping.get_status_display().lower()}"
    if ping.price is not None:
        answered += f" at {money(ping.price)} to the seller"
    if ping.reason:
        answered += f": {ping.reason}"
    if ping.duration_ms is not None:
        answered += f" in {milliseconds(ping.duration_ms)}"
    steps.append((precise_time(ping.received_at), answered))
    if ping.expires_at is not None:
        steps.append((precise_time(ping.expires_at), "price held until"))
    if ping.posted_at is not None:
        steps.append((precise_time(ping.posted_at), f"posted as lead {ping.lead_id}"))
    return steps
