"""Admin for routing history: auctions, attempts and sales (written by the engine, read here),
and contract health."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from django.contrib import admin
from django.db.models import BooleanField, QuerySet, Value
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.html import format_html

from buyers.fields import mask
from buyers.models import SECRET_HEADER_WORDS
from config.admin_display import (
    LeadLinkMixin,
    ReadOnlyAdminMixin,
    admin_link,
    explanation_table,
    milliseconds,
    money,
    precise_time,
    preformatted,
    pretty_json,
    search_by_lead_or,
)
from config.admin_pii import MaskedLookupsMixin, lead_pii_values, mask_text, pii_visible
from leads.selectors import personal_field_names
from routing.models import Attempt, AttemptOutcome, Auction, ContractHealth, HealthEvent, Sale
from routing.tools import attempt_answer_replay

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


def pii_field_names(vertical_id: int | None) -> list[str]:
    """Return the names of the vertical's personal fields (masked for Sales)."""
    return sorted(personal_field_names([vertical_id])[vertical_id])


def exchange_display(attempt: Attempt, *, body_mask: Any = None) -> str:
    """Render an attempt's request and response: what was sent (secrets masked) and answered.

    `body_mask`, when given, masks personal data in the URL and both bodies (for Sales).
    """
    if not attempt.method and not attempt.url:
        return "-"
    body, url, answer = attempt.request_body or "", attempt.url, attempt.response_body or ""
    error = attempt.error
    if body_mask is not None:
        # A GET sends the lead's fields in the query string; some buyers echo them back.
        body, url, answer, error = (body_mask(t) for t in (body, url, answer, error))
    headers = json.dumps(masked_headers(attempt.request_headers), indent=2, sort_keys=True)
    return format_html(
        "<details><summary>Request and response</summary>"
        '<p style="word-break: break-all;"><strong>{} {}</strong></p>'
        '<pre style="white-space: pre-wrap;">{}</pre>'
        '<pre style="white-space: pre-wrap; word-break: break-all;">{}</pre>'
        "<p><strong>HTTP {}</strong>{}</p>"
        '<pre style="white-space: pre-wrap; word-break: break-all;">{}</pre></details>',
        attempt.method,
        url,
        headers,
        body or "(no body)",
        attempt.response_status if attempt.response_status is not None else "-",
        f" · {error}" if error else "",
        answer or "(no body)",
    )


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
        "exchange",
    )
    readonly_fields = fields
    # Set per request by get_formset (the admin makes new inline instances for each request).
    _body_mask: Any = None

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        if obj is not None and not pii_visible(request):
            lead = getattr(obj, "lead", obj)  # the lead page, or an auction's page
            values = lead_pii_values(lead, pii_field_names(lead.vertical_id))
            self._body_mask = lambda text: mask_text(text, values)
        return super().get_formset(request, obj, **kwargs)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        return (
            super()
            .get_queryset(request)
            .select_related("contract__buyer")
            .order_by("created_at", "id")
        )

    @admin.display(description="Request and response")
    def exchange(self, obj: Attempt) -> str:
        return exchange_display(obj, body_mask=self._body_mask)

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
    def latency(self, obj: Attempt) -> str:
        return milliseconds(obj.latency_ms)

    @admin.display(description="Price")
    def price_display(self, obj: Attempt) -> str | None:
        return money(obj.price)

    @admin.display(description="Reason")
    def reason_display(self, obj: Attempt) -> str:
        # A buyer's reason or error may quote the lead back ("duplicate: jane@…"): masked too.
        text = obj.reason or obj.error[:200] or "-"
        return self._body_mask(text) if self._body_mask is not None else text


class LeadAuctionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Auction
    extra = 0
    show_change_link = True
    fields = ("started_at", "finished_at", "duration", "status", "eligible_count", "note")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Auction]:
        return super().get_queryset(request).order_by("started_at", "id")

    @admin.display(description="Duration")
    def duration(self, obj: Auction) -> str:
        return milliseconds(obj.duration_ms)


class SaleMoneyMixin:
    """A sale's price, the source's payout and the margin, as money (a lead's page, the sales)."""

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj: Sale) -> str | None:
        return money(obj.price)

    @admin.display(description="Payout", ordering="payout")
    def payout_display(self, obj: Sale) -> str | None:
        return money(obj.payout)

    @admin.display(description="Margin")
    def margin_display(self, obj: Sale) -> str | None:
        return money(obj.margin)


class LeadSaleInline(SaleMoneyMixin, ReadOnlyAdminMixin, admin.TabularInline):
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


class AuctionAttemptInline(LeadAttemptInline):
    """The lead's timeline, narrowed to one routing run."""

    fk_name = "auction"
    verbose_name_plural = "Pings and posts of this run, oldest first"


@admin.register(Auction)
class AuctionAdmin(MaskedLookupsMixin, LeadLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
    def duration(self, obj: Auction) -> str:
        return milliseconds(obj.duration_ms)

    @admin.display(description="Why each contract was or was not eligible")
    def explanation_display(self, obj: Auction) -> str:
        return explanation_table(obj.explanation or [])


@admin.register(Attempt)
class AttemptAdmin(MaskedLookupsMixin, LeadLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
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
                    "reason_display",
                    "buyer_reference",
                    "error_display",
                )
            },
        ),
        (
            "Request",
            {
                "fields": (
                    "method",
                    "url_display",
                    "request_headers_display",
                    "request_body_display",
                )
            },
        ),
        (
            "Response",
            {"fields": ("response_status", "latency_ms", "response_body_display")},
        ),
        (
            "Read by today's rules",
            {
                "fields": ("replay_display",),
                "description": "The stored answer read again by the contract's response rules "
                "as they are now, beside what was recorded: check a rule fix here.",
            },
        ),
    )
    readonly_fields = (
        "replay_display",
        "created_at_precise",
        "price_display",
        "reason_display",
        "error_display",
        "url_display",
        "request_headers_display",
        "request_body_display",
        "response_body_display",
    )

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        return search_by_lead_or(queryset, search_term), False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attempt]:
        # Whether this user sees personal data rides on each row: display methods get no request.
        return (
            super()
            .get_queryset(request)
            .annotate(_pii_visible=Value(pii_visible(request), output_field=BooleanField()))
        )

    @admin.display(description="Created")
    def created_at_precise(self, obj: Attempt) -> str | None:
        return precise_time(obj.created_at)

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj: Attempt) -> str | None:
        return money(obj.price)

    @admin.display(description="Request headers")
    def request_headers_display(self, obj: Attempt) -> str:
        return pretty_json(masked_headers(obj.request_headers))

    def _masked(self, obj: Attempt, text: str) -> str:
        if getattr(obj, "_pii_visible", False):
            return text
        if not hasattr(obj, "_pii_values"):
            obj._pii_values = lead_pii_values(obj.lead, pii_field_names(obj.lead.vertical_id))
        return mask_text(text, obj._pii_values)

    @admin.display(description="Reason")
    def reason_display(self, obj: Attempt) -> str:
        # A buyer's reason or error may quote the lead back ("duplicate: jane@…"): masked too.
        return self._masked(obj, obj.reason)

    @admin.display(description="Error")
    def error_display(self, obj: Attempt) -> str:
        return self._masked(obj, obj.error)

    @admin.display(description="URL")
    def url_display(self, obj: Attempt) -> str:
        return self._masked(obj, obj.url)

    @admin.display(description="Request body")
    def request_body_display(self, obj: Attempt) -> str:
        return preformatted(self._masked(obj, obj.request_body))

    @admin.display(description="Response body")
    def response_body_display(self, obj: Attempt) -> str:
        return preformatted(self._masked(obj, obj.response_body))

    @admin.display(description="Recorded, and read today")
    def replay_display(self, obj: Attempt) -> str:
        if obj.pk is None:
            return "-"
        if obj.response_status is None:
            return "The buyer never answered: there is no answer to read again."
        try:
            reading = attempt_answer_replay(attempt=obj)
        except ValueError as exc:
            return f"The contract's {obj.kind} rule cannot be read: {exc}"
        if reading is None:
            return "-"
        parsed = reading.parsed
        text = partial(self._masked, obj)
        recorded_captures = obj.captures if isinstance(obj.captures, dict) else {}
        accepted_then = obj.outcome in (AttemptOutcome.BID, AttemptOutcome.ACCEPTED)
        rows = [
            (
                "Accepted",
                f"{'yes' if accepted_then else 'no'} ({obj.get_outcome_display()})",
                "yes" if parsed.accepted else "no",
                accepted_then == parsed.accepted,
            ),
            ("Price", money(obj.price), money(parsed.price), obj.price == parsed.price),
            ("Reason", text(obj.reason), text(parsed.reason), obj.reason == parsed.reason),
            (
                "Reference",
                text(obj.buyer_reference),
                text(parsed.reference),
                obj.buyer_reference == parsed.reference,
            ),
        ]
        for name in sorted(set(recorded_captures) | set(parsed.captures)):
            then, now = recorded_captures.get(name), parsed.captures.get(name)
            rows.append(
                (
                    f"Capture {name}",
                    "-" if then is None else text(str(then)),
                    "-" if now is None else text(str(now)),
                    then == now,
                )
            )
        return render_to_string(
            "admin/routing/attempt/replay.html", {"rows": rows, "note": reading.note}
        )


@admin.register(Sale)
class SaleAdmin(
    SaleMoneyMixin, MaskedLookupsMixin, LeadLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
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
