"""Admin for buyer API keys (returns), the return records and the rollup state."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from simple_history.admin import SimpleHistoryAdmin

from buyers.models import BuyerApiKey
from config.admin_display import ReadOnlyAdminMixin
from config.api_keys import api_key_mint
from reporting.models import RollupState, SaleReturn
from reporting.services import buyer_api_key_revoke


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
