"""Admin for returns (the action on sales, the return records), buyer API keys (returns), staff
API tokens and the rollup state."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from buyers.models import BuyerApiKey
from config.admin_display import ReadOnlyAdminMixin, action_confirmation, admin_page
from config.api_keys import api_key_mint
from reporting.forms import ReturnSalesForm
from reporting.models import RollupState, SaleReturn, StaffToken
from reporting.services import (
    ReturnRefused,
    buyer_api_key_revoke,
    sale_return,
    staff_token_create,
    staff_token_revoke,
)
from routing.admin import SaleAdmin
from routing.models import Sale


class ReturnableSaleAdmin(SaleAdmin):
    """Routing's sale list with the one change ops may make to a sale: returning it."""

    actions = ("return_sales",)

    def has_return_permission(self, request: HttpRequest) -> bool:
        # Sales are never edited by hand; returning one is the change ops may make.
        return request.user.has_perm("routing.change_sale")

    @admin.action(description="Return selected sales for their buyer", permissions=["return"])
    def return_sales(self, request: HttpRequest, queryset: QuerySet[Sale]) -> HttpResponse | None:
        """Ask for the reason on an intermediate page, then return each sale the rules allow."""
        form = ReturnSalesForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            returned = 0
            for sale in queryset.select_related("buyer"):
                try:
                    sale_return(
                        sale=sale,
                        reason=form.cleaned_data["reason"],
                        note=form.cleaned_data["note"],
                        returned_by=f"staff {request.user.get_username()}",
                    )
                except ReturnRefused as exc:
                    self.message_user(request, f"{sale}: {exc}", messages.ERROR)
                else:
                    returned += 1
                    self.log_change(request, sale, f"Returned: {form.cleaned_data['reason']}")
            if returned:
                self.message_user(request, f"Returned {returned} sale(s).", messages.SUCCESS)
            return None
        return action_confirmation(
            self,
            request,
            "reporting/admin_return_sales.html",
            action="return_sales",
            selected=queryset.select_related("buyer", "lead"),
            title="Return sales",
            form=form,
        )


# Returns live here, above routing: the sale page gains the action without routing knowing it.
admin.site.unregister(Sale)
admin.site.register(Sale, ReturnableSaleAdmin)


@admin.register(BuyerApiKey)
class BuyerApiKeyAdmin(SimpleHistoryAdmin):
    """Mint a key by adding one: it is shown once, in the message after saving."""

    list_display = ("prefix", "buyer", "name", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("prefix", "name", "buyer__company")
    list_select_related = ("buyer",)
    autocomplete_fields = ("buyer",)
    fields = ("buyer", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_keys",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        return (*self.readonly_fields, "buyer") if obj is not None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: BuyerApiKey, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        key = api_key_mint(BuyerApiKey.kind)
        obj.prefix, obj.hashed_key = key.prefix, key.hashed
        super().save_model(request, obj, form, change)
        self.message_user(
            request,
            f"The new key for {obj.buyer} is {key.raw} — copy it now: it is not shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[BuyerApiKey]) -> None:
        revoked = sum(buyer_api_key_revoke(api_key=key) for key in queryset)
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


@admin.register(StaffToken)
class StaffTokenAdmin(admin.ModelAdmin):
    """Mint a token by adding one: it is shown once, on the page after saving. A token acts as
    its user, so only whoever may add tokens (Admin) mints them."""

    list_display = ("prefix", "user", "name", "scope", "created_at", "last_used_at", "revoked_at")
    list_filter = ("scope", "revoked_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    autocomplete_fields = ("user",)
    fields = ("user", "name", "scope", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke_tokens",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        # A token's user and scope are what it was minted with: mint another to change them.
        if obj is not None:
            return (*self.readonly_fields, "user", "scope")
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: StaffToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        token, raw = staff_token_create(user=obj.user, name=obj.name, scope=obj.scope)
        obj.pk, obj.prefix, obj.created_at = token.pk, token.prefix, token.created_at
        # The token exists only in the response that follows (response_add): not in messages,
        # the session, the log entry (which names the prefix) or the database.
        obj.raw_token = raw

    def response_add(
        self, request: HttpRequest, obj: StaffToken, post_url_continue: str | None = None
    ) -> HttpResponse:
        return admin_page(
            self,
            request,
            "admin/reporting/stafftoken/minted.html",
            title="Copy the new token now",
            token=obj,
            raw_token=obj.raw_token,
        )

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[StaffToken]) -> None:
        revoked = sum(staff_token_revoke(token=token) for token in queryset)
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)


@admin.register(SaleReturn)
class SaleReturnAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "sale", "reason", "payout_reversed", "returned_by")
    list_filter = ("reason", "payout_reversed")
    search_fields = ("returned_by", "note", "sale__buyer__company")
    list_select_related = ("sale__buyer",)
    raw_id_fields = ("sale",)
    date_hierarchy = "created_at"
    fields = ("sale", "reason", "note", "payout_reversed", "returned_by", "created_at")


@admin.register(RollupState)
class RollupStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("__str__", "last_run_at", "last_run_hours")
    fields = ("watermark", "last_run_at", "last_run_hours")
