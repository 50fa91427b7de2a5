"""Admin for buyers and their contracts: one contract page edits everything the contract buys."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from buyers.forms import DeliveryEndpointForm, PauseContractsForm, TerritoryRuleForm
from buyers.models import (
    Buyer,
    Contract,
    ContractCap,
    DeliveryEndpoint,
    FieldCriterion,
    FieldMapping,
    PriceModel,
    ResponseRule,
    ScheduleWindow,
    TerritoryRule,
)
from buyers.services import buyers_set_active, contract_pause, contract_resume
from leads.admin import money


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class CachedVerticalChoicesMixin:
    """Evaluate the vertical choices once per formset, not once per inline row."""

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "vertical" and formfield is not None:
            formfield.choices = list(formfield.choices)
        return formfield


# --- Buyers ---


class ContractInline(CachedVerticalChoicesMixin, admin.TabularInline):
    model = Contract
    extra = 0
    show_change_link = True
    fields = (
        "name",
        "vertical",
        "status",
        "price_model",
        "fixed_price",
        "floor_price",
        "priority",
        "exclusive",
    )
    # Pausing needs a reason and a timestamp: it goes through the contract actions.
    readonly_fields = ("status",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Contract]:
        return super().get_queryset(request).select_related("buyer", "vertical")


@admin.register(Buyer)
class BuyerAdmin(admin.ModelAdmin):
    list_display = ("company", "active", "time_zone", "contract_count", "contact")
    list_filter = ("active", "time_zone")
    search_fields = ("company", "contact_name", "contact_email")
    readonly_fields = ("created_at", "updated_at")
    inlines = (ContractInline,)
    actions = ("deactivate", "activate")
    fieldsets = (
        (None, {"fields": ("company", "active", "time_zone")}),
        ("Contact", {"fields": ("contact_name", "contact_email", "contact_phone", "notes")}),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Buyer]:
        return super().get_queryset(request).annotate(_contract_count=Count("contracts"))

    @admin.display(description="Contracts", ordering="_contract_count")
    def contract_count(self, obj: Buyer) -> int:
        return obj._contract_count

    @admin.display(description="Contact")
    def contact(self, obj: Buyer) -> str:
        return " · ".join(p for p in (obj.contact_name, obj.contact_email) if p) or "-"

    @admin.action(description="Deactivate selected buyers", permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Buyer]) -> None:
        self._set_active(request, queryset, active=False)

    @admin.action(description="Activate selected buyers", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Buyer]) -> None:
        self._set_active(request, queryset, active=True)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Buyer], *, active: bool) -> None:
        changed = buyers_set_active(buyers=queryset, active=active)
        verb = "Activated" if active else "Deactivated"
        self.message_user(request, f"{verb} {plural(changed, 'buyer')}.", messages.SUCCESS)


# --- Contracts and everything they own ---


class ContractCapInline(admin.TabularInline):
    model = ContractCap
    extra = 0


class ScheduleWindowInline(admin.TabularInline):
    model = ScheduleWindow
    extra = 0
    verbose_name_plural = "Schedule (buyer's time zone; no windows means always open)"


class TerritoryRuleInline(admin.TabularInline):
    model = TerritoryRule
    form = TerritoryRuleForm
    extra = 0
    fields = ("mode", "kind", "values", "radius_miles", "value_count")
    readonly_fields = ("value_count",)
    verbose_name_plural = "Territory (no rules means everywhere)"

    @admin.display(description="Count")
    def value_count(self, obj: TerritoryRule) -> int | None:
        return len(obj.value_list) if obj.pk else None


class FieldCriterionInline(admin.TabularInline):
    model = FieldCriterion
    extra = 0


class DeliveryEndpointInline(admin.StackedInline):
    model = DeliveryEndpoint
    form = DeliveryEndpointForm
    extra = 0
    max_num = 2  # one ping, one post
    fieldsets = (
        (None, {"fields": ("kind", "url", "method", "body_format", "headers")}),
        (
            "Authentication",
            {
                "fields": (
                    "auth_type",
                    "auth_username",
                    "auth_param_name",
                    "auth_secret",
                    "clear_secret",
                )
            },
        ),
        ("Timeouts", {"fields": ("connect_timeout_ms", "read_timeout_ms")}),
    )


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 0
    fields = (
        "position",
        "source_field",
        "target_field",
        "transform",
        "value_map",
        "static_value",
        "default_value",
        "applies_to",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[FieldMapping]:
        return super().get_queryset(request).order_by("position", "id")


class ResponseRuleInline(admin.StackedInline):
    model = ResponseRule
    extra = 0
    max_num = 2  # one for pings, one for posts


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin):
    list_display = (
        "buyer",
        "name",
        "vertical",
        "status",
        "price_model",
        "price",
        "floor",
        "priority",
        "exclusive",
    )
    list_display_links = ("name",)
    list_filter = ("status", "vertical", "price_model", "exclusive", "buyer")
    search_fields = ("name", "buyer__company")
    list_select_related = ("buyer", "vertical")
    autocomplete_fields = ("buyer", "vertical")
    readonly_fields = ("status", "paused_reason", "paused_at", "created_at", "updated_at")
    actions = ("pause_contracts", "resume_contracts")
    inlines = (
        ContractCapInline,
        ScheduleWindowInline,
        TerritoryRuleInline,
        FieldCriterionInline,
        DeliveryEndpointInline,
        FieldMappingInline,
        ResponseRuleInline,
    )
    fieldsets = (
        (None, {"fields": ("buyer", "vertical", "name")}),
        (
            "Status (pause and resume with the actions on the contract list)",
            {"fields": ("status", "paused_reason", "paused_at")},
        ),
        ("Price", {"fields": ("price_model", "fixed_price", "floor_price")}),
        (
            "Routing",
            {"fields": ("priority", "weight", "exclusive", "accepts_test_leads")},
        ),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Price", ordering="fixed_price")
    def price(self, obj: Contract) -> str | None:
        if obj.price_model == PriceModel.FIXED:
            return money(obj.fixed_price)
        return "bid"

    @admin.display(description="Floor", ordering="floor_price")
    def floor(self, obj: Contract) -> str | None:
        return money(obj.floor_price)

    @admin.action(description="Pause selected contracts", permissions=["change"])
    def pause_contracts(
        self, request: HttpRequest, queryset: QuerySet[Contract]
    ) -> HttpResponse | None:
        """Ask for the reason on an intermediate page, as the delete action asks to confirm."""
        form = PauseContractsForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            paused = 0
            for contract in queryset:
                if contract_pause(contract=contract, reason=reason):
                    paused += 1
                    self.log_change(request, contract, f"Paused: {reason}")
            self._report(request, "Paused", paused, len(queryset) - paused, "active")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Pause contracts",
            "opts": self.opts,
            "form": form,
            "contracts": queryset.select_related("buyer", "vertical"),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/buyers/contract/pause_contracts.html", context)

    @admin.action(description="Resume selected contracts", permissions=["change"])
    def resume_contracts(self, request: HttpRequest, queryset: QuerySet[Contract]) -> None:
        resumed = 0
        for contract in queryset:
            if contract_resume(contract=contract):
                resumed += 1
                self.log_change(request, contract, "Resumed")
        self._report(request, "Resumed", resumed, len(queryset) - resumed, "paused")

    def _report(self, request: HttpRequest, verb: str, done: int, skipped: int, state: str) -> None:
        text = f"{verb} {plural(done, 'contract')}."
        if skipped:
            text += (
                f" {plural(skipped, 'contract')} {'was' if skipped == 1 else 'were'} not {state}."
            )
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)


class ContractPartAdmin(admin.ModelAdmin):
    """Base for the rows a contract owns; they are normally edited on the contract page."""

    list_select_related = ("contract__buyer",)
    autocomplete_fields = ("contract",)
    search_fields = ("contract__name", "contract__buyer__company")


@admin.register(ContractCap)
class ContractCapAdmin(ContractPartAdmin):
    list_display = ("contract", "period", "max_leads", "budget")
    list_filter = ("period",)

    @admin.display(description="Budget", ordering="max_budget")
    def budget(self, obj: ContractCap) -> str | None:
        return money(obj.max_budget)


@admin.register(ScheduleWindow)
class ScheduleWindowAdmin(ContractPartAdmin):
    list_display = ("contract", "weekday", "opens_at", "closes_at")
    list_filter = ("weekday",)


@admin.register(TerritoryRule)
class TerritoryRuleAdmin(ContractPartAdmin):
    form = TerritoryRuleForm
    list_display = ("contract", "mode", "kind", "value_count", "radius_miles")
    list_filter = ("mode", "kind")

    @admin.display(description="Count")
    def value_count(self, obj: TerritoryRule) -> int:
        return len(obj.value_list)


@admin.register(FieldCriterion)
class FieldCriterionAdmin(ContractPartAdmin):
    list_display = ("contract", "field", "operator", "value")
    list_filter = ("operator",)
    search_fields = ("field", *ContractPartAdmin.search_fields)


@admin.register(DeliveryEndpoint)
class DeliveryEndpointAdmin(ContractPartAdmin):
    form = DeliveryEndpointForm
    list_display = ("contract", "kind", "method", "url", "auth_type", "secret")
    list_filter = ("kind", "method", "auth_type")
    search_fields = ("url", *ContractPartAdmin.search_fields)
    fieldsets = (
        (None, {"fields": ("contract", "kind", "url", "method", "body_format", "headers")}),
        *DeliveryEndpointInline.fieldsets[1:],
    )

    @admin.display(description="Secret")
    def secret(self, obj: DeliveryEndpoint) -> str:
        return obj.masked_secret or "not set"


@admin.register(FieldMapping)
class FieldMappingAdmin(ContractPartAdmin):
    list_display = (
        "contract",
        "position",
        "source_field",
        "target_field",
        "transform",
        "applies_to",
    )
    list_filter = ("transform", "applies_to")
    search_fields = ("source_field", "target_field", *ContractPartAdmin.search_fields)


@admin.register(ResponseRule)
class ResponseRuleAdmin(ContractPartAdmin):
    list_display = ("contract", "kind", "success_path", "success_values", "success_status_codes")
    list_filter = ("kind",)
