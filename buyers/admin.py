"""Admin for buyers and their contracts: one contract page edits everything the contract buys."""

from __future__ import annotations

from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from simple_history.admin import SimpleHistoryAdmin

from buyers.caps import CapUsage
from buyers.field_reads import (
    contract_served_versions,
    criterion_reads,
    endpoint_reads,
    mapping_reads,
    version_problems,
)
from buyers.forms import (
    ContractAnswerForm,
    ContractCloneForm,
    ContractForm,
    ContractPresetForm,
    ContractReasonForm,
    ContractSecretForm,
    ContractTestForm,
    ContractZipsForm,
    DeliveryEndpointForm,
    FieldCriterionForm,
    TerritoryRuleForm,
)
from buyers.models import (
    Buyer,
    BuyerCap,
    CapCounter,
    CapPeriod,
    CapReservation,
    ClosedDate,
    Contract,
    ContractCap,
    ContractSecret,
    ContractStatus,
    DeliveryEndpoint,
    FieldCriterion,
    FieldMapping,
    PriceModel,
    ResponseRule,
    ScheduleWindow,
    TerritoryRule,
)
from buyers.presets import PresetError, preset_apply, presets
from buyers.readiness import (
    ContractCannotDeliver,
    EndpointSketch,
    contract_delivery_problems,
    delivery_problems,
)
from buyers.schedule import describe_hours
from buyers.selectors import cap_usage, contract_part_changes, contract_schedule
from buyers.services import (
    buyer_touch,
    buyers_set_active,
    cap_counters_seed,
    contract_clone,
    contract_pause,
    contract_resume,
    contract_revert,
    contract_touch,
    contract_zips_set,
)
from buyers.versions import (
    ContractRevertRefused,
    contract_recorded_sources,
    contract_version,
)
from config.admin_display import (
    LeadLinkMixin,
    OwnedPartInlineMixin,
    ReadOnlyAdminMixin,
    SecretFormMixin,
    action_confirmation,
    admin_link,
    admin_object,
    admin_page,
    money,
    plural,
    search_by_lead_or,
)
from config.admin_pii import pii_visible
from config.time_zones import TimeZoneSelectAdminMixin
from leads.models import Lead, Source
from routing.health import health_force
from routing.models import ContractHealth, HealthEvent
from routing.tools import (
    TestSendResult,
    contract_answer_read,
    contract_request_preview,
    contract_test_send,
)


class CachedVerticalChoicesMixin:
    """Evaluate the vertical choices once per formset, not once per inline row."""

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        if db_field.name == "vertical" and formfield is not None:
            formfield.choices = list(formfield.choices)
        return formfield


def _test_summary(outcome: TestSendResult) -> str:
    """Say in the contract's history what a test sent and what came of it."""
    preview, result = outcome.preview, outcome.result
    if result is None:
        what = outcome.note
    elif result.status is None:
        what = result.error
    else:
        what = f"HTTP {result.status} in {result.latency_ms} ms"
    return f"Test {preview.kind} ({preview.lead_label}): {what}"


class ListedNotOpenedMixin:
    """Who may not change a row may list it, but not open it.

    Sales may list contracts (names, prices, health) but not open one: its page holds the buyer's
    endpoints and integration details, and its tools send leads. Likewise a contract's parts: an
    endpoint's page would show its credentials read-only, in the clear.
    """

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return self.has_change_permission(request, obj)
        return super().has_view_permission(request, obj)

    def get_list_display_links(self, request: HttpRequest, list_display: Any) -> Any:
        if not self.has_change_permission(request):
            return None
        return super().get_list_display_links(request, list_display)


class ContractPartInlineMixin(OwnedPartInlineMixin):
    """A contract's part (caps, schedule, territory, endpoints, ...): whoever may change the
    contract may change it."""

    owner_perm = "buyers.%s_contract"


# --- Buyers ---


class BuyerCapInline(OwnedPartInlineMixin, admin.TabularInline):
    owner_perm = "buyers.%s_buyer"
    model = BuyerCap
    extra = 0
    verbose_name_plural = "Caps across all the buyer's contracts (in the buyer's time zone)"


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


def cap_usage_table(usages: list[CapUsage], tz_name: str) -> str:
    """Render current-period cap usage: used / limit per period, in the buyer's time zone."""
    if not usages:
        return "No caps."
    zone = ZoneInfo(tz_name)

    def limit(used: Any, maximum: Any, fmt: Any) -> str:
        return "-" if maximum is None else f"{fmt(used)} / {fmt(maximum)}"

    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                "buyer" if usage.limit.scope == "buyer" else "contract",
                usage.limit.period,
                limit(usage.leads, usage.limit.max_leads, str),
                limit(usage.spend, usage.limit.max_budget, money),
                "all time"
                if usage.limit.period == CapPeriod.TOTAL
                else f"{usage.period_start.astimezone(zone):%a %Y-%m-%d %H:%M} – "
                f"{usage.period_end.astimezone(zone):%a %Y-%m-%d %H:%M} {tz_name}",
            )
            for usage in usages
        ),
    )
    return format_html(
        "<table><thead><tr><th>Cap of</th><th>Period</th><th>Leads</th><th>Spend</th>"
        "<th>Current period</th></tr></thead><tbody>{}</tbody></table>",
        rows,
    )


@admin.register(Buyer)
class BuyerAdmin(TimeZoneSelectAdminMixin, SimpleHistoryAdmin):
    list_display = ("company", "active", "time_zone", "contract_count", "contact")
    list_filter = ("active", "time_zone")
    search_fields = ("company", "consent_names", "contact_name", "contact_email")
    readonly_fields = ("created_at", "updated_at", "cap_usage_display")
    inlines = (BuyerCapInline, ContractInline)
    actions = ("deactivate", "activate")
    fieldsets = (
        (None, {"fields": ("company", "consent_names", "active", "time_zone")}),
        ("Contact", {"fields": ("contact_name", "contact_email", "contact_phone", "notes")}),
        ("Usage now", {"fields": ("cap_usage_display",)}),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Buyer-wide cap usage")
    def cap_usage_display(self, obj: Buyer) -> str:
        if obj.pk is None:
            return "-"
        return cap_usage_table(cap_usage(buyer=obj), obj.time_zone)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Buyer]:
        return super().get_queryset(request).annotate(_contract_count=Count("contracts"))

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        cap_counters_seed(caps=form.instance.caps.select_related("buyer"))

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


class ContractCapInline(ContractPartInlineMixin, admin.TabularInline):
    model = ContractCap
    extra = 0


class ScheduleWindowInline(ContractPartInlineMixin, admin.TabularInline):
    model = ScheduleWindow
    extra = 0
    verbose_name_plural = "Schedule (buyer's time zone; no windows means always open)"


class ClosedDateInline(ContractPartInlineMixin, admin.TabularInline):
    model = ClosedDate
    extra = 0
    fields = ("date", "note")
    verbose_name_plural = "Closed dates (buyer's time zone; holidays and other days off)"


class TerritoryRuleInline(ContractPartInlineMixin, admin.TabularInline):
    model = TerritoryRule
    form = TerritoryRuleForm
    extra = 0
    fields = ("mode", "kind", "values", "upload", "radius_miles", "value_count")
    readonly_fields = ("value_count",)
    verbose_name_plural = "Territory (no rules means everywhere)"

    @admin.display(description="Count")
    def value_count(self, obj: TerritoryRule) -> int | None:
        return len(obj.value_list) if obj.pk else None


class ServedVersionsFormSet(BaseInlineFormSet):
    """A contract's parts as edited on its page, refused when one reads a field that a version
    of the vertical the contract serves lacks (buyers/field_reads.py)."""

    def reads(self, data: dict[str, Any]) -> tuple[str, set[str]]:
        raise NotImplementedError

    def clean(self) -> None:
        super().clean()
        contract = self.instance
        if any(self.errors) or contract.vertical_id is None:
            return
        submitted = getattr(contract, "submitted_sources", None)
        versions = contract_served_versions(
            contract,
            source_filter=contract.source_filter,
            source_ids=None if submitted is None else [s.pk for s in submitted],
        )
        # The rows this save writes; every row when the versions served change with it. A part
        # saved before versions were checked does not stop the rest of the page being saved.
        stored = Contract.objects.filter(pk=contract.pk).first() if contract.pk else None
        every_row = stored is None or {v.number for v in versions} != {
            v.number for v in contract_served_versions(stored)
        }
        reads = [
            self.reads(f.cleaned_data)
            for f in self.forms
            if _kept(f) and (every_row or f.has_changed())
        ]
        reads = [(part, names) for part, names in reads if names]
        if not reads:
            return
        problems = version_problems(reads, versions, vertical=str(contract.vertical))
        if problems:
            raise ValidationError(problems)


class FieldMappingFormSet(ServedVersionsFormSet):
    def reads(self, data: dict[str, Any]) -> tuple[str, set[str]]:
        source = data.get("source_field") or ""
        return (
            f"Field mapping {source} → {data.get('target_field') or ''}",
            mapping_reads(source, data.get("default_value") or ""),
        )


class FieldCriterionFormSet(ServedVersionsFormSet):
    def reads(self, data: dict[str, Any]) -> tuple[str, set[str]]:
        field = (data.get("field") or "").strip()
        return (f"Criterion on {field}", criterion_reads(field, data.get("operator") or ""))


class FieldCriterionInline(ContractPartInlineMixin, admin.TabularInline):
    model = FieldCriterion
    form = FieldCriterionForm
    formset = FieldCriterionFormSet
    extra = 0


class DeliveryReadinessFormSet(BaseInlineFormSet):
    """A contract's endpoints as edited on its page, refused when the contract is to be live
    and could not deliver a lead with them (buyers/readiness.py)."""

    # The secrets formset of the same page, set by ContractAdmin._create_formsets.
    secret_formsets: list[BaseInlineFormSet] = []

    def clean(self) -> None:
        super().clean()
        contract = self.instance
        # A new contract is built up in steps (its endpoints, a preset, its secrets): it is
        # saved paused until it can deliver (ContractAdmin.save_related), not refused.
        if contract.status != ContractStatus.ACTIVE or contract._state.adding:
            return
        kept = [f.cleaned_data for f in self.forms if _kept(f)]
        endpoints = [
            EndpointSketch(
                kind=data["kind"],
                body_template=data.get("body_template") or "",
                query=data.get("query") or {},
                headers=data.get("headers") or {},
            )
            for data in kept
            if data.get("kind")
        ]
        if self.secret_formsets:
            names = [
                f.cleaned_data["name"]
                for formset in self.secret_formsets
                for f in formset.forms
                if _kept(f) and f.cleaned_data.get("name")
            ]
        else:
            names = list(contract.secrets.values_list("name", flat=True)) if contract.pk else []
        problems = delivery_problems(
            price_model=contract.price_model,
            delivery_method=contract.delivery_method,
            endpoints=endpoints,
            secret_names=names,
        )
        if problems:
            raise ValidationError(
                [f"An active contract must be able to deliver. {p}" for p in problems]
            )


def _kept(form: Any) -> bool:
    """Whether an inline form holds a row that stays: filled in, valid, not marked deleted."""
    data = getattr(form, "cleaned_data", None)
    return bool(data) and not data.get("DELETE")


class DeliveryEndpointFormSet(ServedVersionsFormSet, DeliveryReadinessFormSet):
    def reads(self, data: dict[str, Any]) -> tuple[str, set[str]]:
        return (
            f"The {data.get('kind') or ''} endpoint's template",
            endpoint_reads(data.get("body_template") or "", data.get("query"), data.get("headers")),
        )


class ContractSecretInline(ContractPartInlineMixin, admin.TabularInline):
    model = ContractSecret
    form = ContractSecretForm
    extra = 0
    verbose_name = "secret"
    verbose_name_plural = "Secrets: credentials templates name as {{ secrets.<name> }}"


class DeliveryEndpointInline(ContractPartInlineMixin, admin.StackedInline):
    model = DeliveryEndpoint
    form = DeliveryEndpointForm
    formset = DeliveryEndpointFormSet
    extra = 0
    max_num = 2  # one ping, one post
    fieldsets = (
        (None, {"fields": ("kind", "url", "method", "body_format", "headers", "query")}),
        ("Request template (the power path)", {"fields": ("body_template",)}),
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


class FieldMappingInline(ContractPartInlineMixin, admin.TabularInline):
    model = FieldMapping
    formset = FieldMappingFormSet
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


class ResponseRuleInline(ContractPartInlineMixin, admin.StackedInline):
    model = ResponseRule
    extra = 0
    max_num = 2  # one for pings, one for posts


@admin.register(Contract)
class ContractAdmin(ListedNotOpenedMixin, SecretFormMixin, SimpleHistoryAdmin):
    list_display = (
        "buyer",
        "name",
        "vertical",
        "status",
        "health_status",
        "price_model",
        "price",
        "floor",
        "priority",
        "exclusive",
    )
    list_display_links = ("name",)
    list_filter = ("status", "vertical", "price_model", "exclusive", "buyer")
    search_fields = ("name", "buyer__company")
    list_select_related = ("buyer", "vertical", "health")
    form = ContractForm
    autocomplete_fields = ("buyer", "vertical", "sources", "team")
    readonly_fields = (
        "status",
        "paused_reason",
        "paused_at",
        "preset",
        "created_at",
        "updated_at",
        "cap_usage_display",
        "hours_display",
        "health_display",
    )
    actions = ("pause_contracts", "resume_contracts", "open_breakers", "close_breakers")
    inlines = (
        ContractCapInline,
        ScheduleWindowInline,
        ClosedDateInline,
        TerritoryRuleInline,
        FieldCriterionInline,
        ContractSecretInline,
        DeliveryEndpointInline,
        FieldMappingInline,
        ResponseRuleInline,
    )

    change_form_template = "admin/buyers/contract/change_form.html"

    # Its own history and, below, its parts' (caps, schedule, territory, criteria, endpoints,
    # mappings, response rules), which are edited on its page.
    object_history_template = "admin/buyers/contract/object_history.html"
    # Each earlier version offers "Revert to this version" (revert_view) to whoever may change it.
    object_history_list_template = "admin/buyers/contract/object_history_list.html"

    def history_view(self, request: HttpRequest, object_id: str, extra_context=None):
        changes = contract_part_changes(contract_id=int(object_id)) if object_id.isdigit() else []
        return super().history_view(
            request,
            object_id,
            {
                **(extra_context or {}),
                "part_changes": changes,
                "may_revert": self.has_change_permission(request),
            },
        )

    def set_history_delta_changes(
        self, request: HttpRequest, historical_records: Any, foreign_keys_are_objs: bool = True
    ) -> None:
        """Show each row's change of the sources as the versions know the list, not as the row
        holds it: a row a service wrote in bulk before such rows recorded the list holds none,
        and would show the list emptied, and the next row refilled, though neither changed it."""
        super().set_history_delta_changes(request, historical_records, foreign_keys_are_objs)
        records = list(historical_records)
        if not records:
            return
        listed = contract_recorded_sources(list(Contract.history.filter(id=records[0].id)))
        names = dict(
            Source.objects.filter(
                pk__in={pk for ids in listed.values() if ids for pk in ids}
            ).values_list("pk", "name")
        )

        def shown(ids: list[int] | None) -> str:
            if ids is None:
                return "(not recorded)"
            return "[" + ", ".join(names.get(pk, f"#{pk}") for pk in ids) + "]"

        label = str(capfirst(Contract._meta.get_field("sources").verbose_name))
        for newer, older in pairwise(records):
            changes = getattr(newer, "history_delta_changes", None)
            if changes is None:
                continue
            kept = [change for change in changes if change["field"] != label]
            before, after = listed.get(older.history_id), listed.get(newer.history_id)
            if before != after:
                kept.append({"field": label, "old": shown(before), "new": shown(after)})
            newer.history_delta_changes = kept

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        contract = form.instance
        cap_counters_seed(caps=contract.caps.select_related("contract__buyer"))
        if not change:
            problems = contract_delivery_problems(contract)
            if problems and contract_pause(
                contract=contract, reason=f"New; to finish: {' '.join(problems)}"
            ):
                self.message_user(
                    request,
                    f"{contract} is paused until it can deliver a lead: {' '.join(problems)} "
                    "Fill it from a preset or add its endpoints, then resume it.",
                    messages.WARNING,
                )

    def _create_formsets(self, request: HttpRequest, obj: Any, change: bool) -> Any:
        formsets, inline_instances = super()._create_formsets(request, obj, change)
        secrets = [f for f in formsets if f.model is ContractSecret]
        for formset in formsets:
            if isinstance(formset, DeliveryReadinessFormSet):
                formset.secret_formsets = secrets
        return formsets, inline_instances

    # --- The tools on a contract's page (ops): test, preview, pause, resume, clone, ZIPs ---

    def get_urls(self):
        tools = [
            ("test", self.test_view),
            ("answer", self.answer_view),
            ("pause", self.pause_view),
            ("resume", self.resume_view),
            ("clone", self.clone_view),
            ("preset", self.preset_view),
            ("zips", self.zips_view),
        ]
        urls = [
            path(
                f"<path:object_id>/{name}/",
                self.admin_site.admin_view(view),
                name=f"buyers_contract_{name}",
            )
            for name, view in tools
        ]
        revert = path(
            "<path:object_id>/revert/<int:history_id>/",
            self.admin_site.admin_view(self.revert_view),
            name="buyers_contract_revert",
        )
        return [revert, *urls, *super().get_urls()]

    def _tool_page(
        self, request: HttpRequest, contract: Contract, template: str, **context: Any
    ) -> TemplateResponse:
        return admin_page(
            self,
            request,
            f"admin/buyers/contract/{template}",
            original=contract,
            contract=contract,
            change_url=reverse("admin:buyers_contract_change", args=[contract.pk]),
            **context,
        )

    def test_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Preview or send a test ping or post; nothing is recorded, sold or charged."""
        contract = admin_object(self, request, object_id)
        form = ContractTestForm(request.POST if request.method == "POST" else request.GET or None)
        outcome = preview = None
        if form.is_bound and form.is_valid():
            lead = None
            lead_id = form.cleaned_data["lead"]
            if lead_id is not None:
                # A real lead's data is personal: only those who see PII may send or preview it.
                if not pii_visible(request):
                    raise PermissionDenied
                lead = Lead.objects.filter(pk=lead_id).first()
                if lead is None:
                    form.add_error("lead", "No lead has this id.")
                elif lead.vertical_id != contract.vertical_id:
                    form.add_error("lead", f"This lead is of another vertical than {contract}.")
            if not form.errors:
                kind = form.cleaned_data["kind"]
                if request.method == "POST" and "send" in request.POST:
                    outcome = contract_test_send(
                        contract=contract,
                        kind=kind,
                        lead=lead,
                        actor=request.user.get_username(),
                    )
                    preview = outcome.preview
                    self.log_change(request, contract, _test_summary(outcome))
                else:
                    preview = contract_request_preview(contract=contract, kind=kind, lead=lead)
        return self._tool_page(
            request,
            contract,
            "test.html",
            title=f"Test {contract}",
            form=form,
            preview=preview,
            outcome=outcome,
        )

    def answer_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """'Try this answer': read a pasted buyer's answer by the contract's rules of today;
        nothing is sent or recorded."""
        contract = admin_object(self, request, object_id)
        initial = {"kind": request.GET.get("kind")} if request.GET.get("kind") else None
        form = ContractAnswerForm(
            request.POST if request.method == "POST" else None, initial=initial
        )
        reading = None
        if form.is_valid():
            reading = contract_answer_read(
                contract=contract,
                kind=form.cleaned_data["kind"],
                status=form.cleaned_data["status"],
                body=form.cleaned_data["body"],
            )
        return self._tool_page(
            request,
            contract,
            "answer.html",
            title=f"Try an answer on {contract}",
            form=form,
            intro="Paste a buyer's answer to see how this contract's response rules read it "
            "today: accepted or not, price, reason, reference and every capture. Nothing is "
            "sent or recorded.",
            submit="Read it",
            reading=reading,
            test_url=reverse("admin:buyers_contract_test", args=[contract.pk]),
        )

    def preset_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Fill the contract's delivery from the integration catalogue (buyers/presets/)."""
        contract = admin_object(self, request, object_id)
        form = ContractPresetForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                applied = preset_apply(contract=contract, slug=form.cleaned_data["preset"])
            except PresetError as exc:
                form.add_error("preset", str(exc))
            else:
                name = applied.preset.name
                self.log_change(request, contract, f"Delivery filled from the preset {name}")
                self.message_user(request, f"Filled from the preset {name}.", messages.SUCCESS)
                finish = " ".join(
                    [*applied.problems, "Check the buyer's URLs and fields, then resume."]
                )
                self.message_user(
                    request, f"The contract is paused. To finish: {finish}", messages.WARNING
                )
                return HttpResponseRedirect(
                    reverse("admin:buyers_contract_change", args=[contract.pk])
                )
        return self._tool_page(
            request,
            contract,
            "preset.html",
            title=f"Fill {contract} from a preset",
            form=form,
            intro="A preset is a ready-made integration for a buyer-side platform or format. "
            "It replaces this contract's endpoints, field mappings and response rules; you then "
            "add the secrets it names and check its URLs and fields.",
            submit="Apply the preset",
            presets=sorted(presets().values(), key=lambda p: p.name),
        )

    def pause_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        contract = admin_object(self, request, object_id)
        form = ContractReasonForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            if contract_pause(contract=contract, reason=reason):
                self.log_change(request, contract, f"Paused: {reason}")
                self.message_user(request, f"Paused {contract}: {reason}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{contract} was not active.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:buyers_contract_change", args=[contract.pk]))
        return self._tool_page(
            request,
            contract,
            "reason.html",
            title=f"Pause {contract}",
            form=form,
            intro="The contract receives no leads until it is resumed.",
            submit="Pause",
        )

    def resume_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        contract = admin_object(self, request, object_id)
        form = ContractReasonForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                resumed = contract_resume(contract=contract, reason=reason)
            except ContractCannotDeliver as exc:
                form.add_error(None, f"{contract} cannot deliver a lead: {exc}")
                return self._resume_page(request, contract, form)
            if resumed:
                self.log_change(request, contract, f"Resumed: {reason}")
                self.message_user(request, f"Resumed {contract}: {reason}.", messages.SUCCESS)
            else:
                self.message_user(request, f"{contract} was not paused.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:buyers_contract_change", args=[contract.pk]))
        return self._resume_page(request, contract, form)

    def _resume_page(
        self, request: HttpRequest, contract: Contract, form: ContractReasonForm
    ) -> HttpResponse:
        return self._tool_page(
            request,
            contract,
            "reason.html",
            title=f"Resume {contract}",
            form=form,
            intro=f"Paused since {contract.paused_at:%Y-%m-%d %H:%M} UTC: {contract.paused_reason}"
            if contract.status == ContractStatus.PAUSED and contract.paused_at
            else "The contract is not paused.",
            submit="Resume",
        )

    def revert_view(self, request: HttpRequest, object_id: str, history_id: int) -> HttpResponse:
        """Revert the contract and its parts to one of its versions (simple_history's own revert
        is off: it saves the old row unvalidated, without its parts), after a page listing what
        will change and asking why."""
        contract = admin_object(self, request, object_id)
        if not contract.history.filter(history_id=history_id).exists():
            raise Http404("No such version of this contract.")
        form = ContractReasonForm(request.POST if request.method == "POST" else None)
        form.fields["reason"].help_text = (
            "Kept in the history of the contract and of each part the revert changes, e.g. "
            "'floor price typo of Monday'."
        )
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            try:
                version = contract_revert(
                    contract=contract,
                    to=history_id,
                    actor=request.user,
                    reason=reason,
                    shown=request.POST.get("shown"),
                )
            except ContractRevertRefused as exc:
                for problem in exc.problems:
                    form.add_error(None, problem)
            else:
                when = f"{version.moment:%Y-%m-%d %H:%M:%S} UTC"
                if version.unchanged:
                    self.message_user(
                        request, f"{contract} was already as it was at {when}.", messages.WARNING
                    )
                else:
                    self.log_change(
                        request, contract, f"Reverted to its version of {when}: {reason}"
                    )
                    self.message_user(
                        request,
                        f"Reverted {contract} to its version of {when}: {reason}.",
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(
                    reverse("admin:buyers_contract_change", args=[contract.pk])
                )
        try:
            version, problems = contract_version(contract=contract, to=history_id), []
        except ContractRevertRefused as exc:
            version, problems = None, exc.problems
        return action_confirmation(
            self,
            request,
            "admin/buyers/contract/revert.html",
            action="",
            selected=[contract],
            contract=contract,
            title=f"Revert {contract}",
            form=form,
            version=version,
            # On a refused revert, the form lists them.
            problems=problems or (version.problems if version and not form.is_bound else []),
        )

    def clone_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        contract = admin_object(self, request, object_id)
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ContractCloneForm(
            request.POST if request.method == "POST" else None, contract=contract
        )
        if form.is_valid():
            try:
                result = contract_clone(
                    contract=contract,
                    name=form.cleaned_data["name"],
                    buyer=form.cleaned_data["buyer"],
                    vertical=form.cleaned_data["vertical"],
                    actor=request.user.get_username(),
                )
            except ValueError as exc:
                form.add_error("name", str(exc))
            else:
                copy = result.contract
                self.log_addition(request, copy, f"Cloned from contract {contract.pk}")
                self.log_change(request, contract, f"Cloned to contract {copy.pk}")
                self.message_user(
                    request,
                    f"Created {copy}, paused: check it, then resume it.",
                    messages.SUCCESS,
                )
                for warning in result.warnings:
                    self.message_user(request, warning, messages.WARNING)
                return HttpResponseRedirect(reverse("admin:buyers_contract_change", args=[copy.pk]))
        return self._tool_page(
            request,
            contract,
            "reason.html",
            title=f"Clone {contract}",
            form=form,
            intro="Copies the contract with its caps, schedule, closed dates, territory, "
            "criteria, endpoints, mappings, response rules and sources. The copy starts paused.",
            submit="Clone",
        )

    def zips_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        contract = admin_object(self, request, object_id)
        form = ContractZipsForm(
            request.POST if request.method == "POST" else None,
            request.FILES if request.method == "POST" else None,
        )
        if form.is_valid():
            rule = contract_zips_set(
                contract=contract,
                mode=form.cleaned_data["mode"],
                zips=form.cleaned_data["zips"],
                replace=form.cleaned_data["replace"],
            )
            count = len(form.cleaned_data["zips"])
            self.log_change(request, contract, f"ZIP list uploaded: {count} codes ({rule})")
            self.message_user(
                request,
                f"{'Set' if form.cleaned_data['replace'] else 'Added'} "
                f"{plural(count, 'ZIP code')}: the territory rule is now “{rule}”.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:buyers_contract_change", args=[contract.pk]))
        return self._tool_page(
            request,
            contract,
            "reason.html",
            title=f"Upload ZIP codes for {contract}",
            form=form,
            multipart=True,
            intro="Paste codes or upload a CSV; Excel's 4-digit codes get their leading zero back.",
            submit="Save ZIP codes",
        )

    fieldsets = (
        ("Buyer and vertical", {"fields": ("buyer", "vertical", "name")}),
        (
            "Price and distribution",
            {
                "fields": (
                    "price_model",
                    "fixed_price",
                    "floor_price",
                    "bid_valid_seconds",
                    "priority",
                    "weight",
                    "exclusive",
                )
            },
        ),
        (
            "Delivery (endpoints, mappings and response rules below)",
            {"fields": ("delivery_method", "delivery_emails", "team")},
        ),
        ("Who it buys from", {"fields": ("source_filter", "sources", "accepts_test_leads")}),
        (
            "Consent and consumers",
            {
                "fields": (
                    "consent_must_name_buyer",
                    "requires_consent_certificate",
                    "refuse_bought_within_days",
                    "refuse_bought_scope",
                )
            },
        ),
        ("Returns", {"fields": ("return_window_days", "max_return_rate")}),
        (
            "Lead age (minutes since the lead was received)",
            {"fields": ("min_lead_age_minutes", "max_lead_age_minutes")},
        ),
        (
            "Status (pause and resume with the buttons above, or the actions on the list)",
            {"fields": ("status", "paused_reason", "paused_at")},
        ),
        ("Usage now", {"fields": ("cap_usage_display", "hours_display")}),
        (
            "Health (circuit breaker; open or close it with the actions on the contract list)",
            {
                "fields": (
                    "health_display",
                    "breaker_failures",
                    "latency_limit_ms",
                    "latency_strikes",
                    "breaker_cool_down_s",
                    "breaker_max_cool_down_s",
                )
            },
        ),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    @admin.display(description="Health")
    def health_status(self, obj: Contract) -> str:
        health = getattr(obj, "health", None)
        return health.get_status_display() if health is not None else "Healthy"

    @admin.display(description="State and history")
    def health_display(self, obj: Contract) -> str:
        if obj.pk is None:
            return "-"
        health = ContractHealth.objects.filter(contract=obj).first()
        events = list(HealthEvent.objects.filter(contract=obj)[:10])
        state = health.get_status_display() if health else "Healthy"
        if health and health.reason:
            state += f": {health.reason}"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (f"{e.at:%Y-%m-%d %H:%M:%S}", e.get_status_display(), e.reason, e.actor or "-")
                for e in events
            ),
        )
        table = (
            format_html(
                "<table><tr><th>When (UTC)</th><th>State</th><th>Why</th><th>By</th></tr>"
                "{}</table>",
                rows,
            )
            if events
            else ""
        )
        return format_html("<p><strong>{}</strong></p>{}", state, table)

    @admin.action(
        description="Open circuit breakers (stop routing until closed)", permissions=["change"]
    )
    def open_breakers(self, request: HttpRequest, queryset: QuerySet[Contract]) -> None:
        actor = request.user.get_username()
        for contract in queryset:
            health_force(
                contract=contract, open_=True, reason=f"opened by hand by {actor}", actor=actor
            )
            self.log_change(request, contract, "Circuit breaker opened by hand")
        self.message_user(request, f"Opened {plural(len(queryset), 'circuit breaker')}.")

    @admin.action(description="Close circuit breakers (route again)", permissions=["change"])
    def close_breakers(self, request: HttpRequest, queryset: QuerySet[Contract]) -> None:
        actor = request.user.get_username()
        for contract in queryset:
            health_force(contract=contract, open_=False, reason="", actor=actor)
            self.log_change(request, contract, "Circuit breaker closed by hand")
        self.message_user(request, f"Closed {plural(len(queryset), 'circuit breaker')}.")

    @admin.display(description="Cap usage (this contract and its buyer)")
    def cap_usage_display(self, obj: Contract) -> str:
        if obj.pk is None:
            return "-"
        return cap_usage_table(cap_usage(contract=obj, buyer=obj.buyer), obj.buyer.time_zone)

    @admin.display(description="Hours")
    def hours_display(self, obj: Contract) -> str:
        if obj.pk is None:
            return "-"
        schedule = contract_schedule(obj)
        text = describe_hours(schedule)
        upcoming = sorted(day for day in schedule.closed_dates if day >= timezone.localdate())
        if upcoming:
            text += "; closed " + ", ".join(f"{day:%a %Y-%m-%d}" for day in upcoming[:5])
        return text

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
        form = ContractReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            reason = form.cleaned_data["reason"]
            paused = 0
            for contract in queryset:
                if contract_pause(contract=contract, reason=reason):
                    paused += 1
                    self.log_change(request, contract, f"Paused: {reason}")
            self._report(request, "Paused", paused, len(queryset) - paused, "active")
            return None
        return action_confirmation(
            self,
            request,
            "admin/buyers/contract/pause_contracts.html",
            action="pause_contracts",
            selected=queryset.select_related("buyer", "vertical"),
            title="Pause contracts",
            form=form,
            media=self.media,
        )

    @admin.action(description="Resume selected contracts", permissions=["change"])
    def resume_contracts(self, request: HttpRequest, queryset: QuerySet[Contract]) -> None:
        resumed = 0
        for contract in queryset:
            try:
                if contract_resume(contract=contract):
                    resumed += 1
                    self.log_change(request, contract, "Resumed")
            except ContractCannotDeliver as exc:
                self.message_user(
                    request, f"{contract} stays paused: it cannot deliver: {exc}", messages.ERROR
                )
        self._report(request, "Resumed", resumed, len(queryset) - resumed, "paused")

    def _report(self, request: HttpRequest, verb: str, done: int, skipped: int, state: str) -> None:
        text = f"{verb} {plural(done, 'contract')}."
        if skipped:
            text += (
                f" {plural(skipped, 'contract')} {'was' if skipped == 1 else 'were'} not {state}."
            )
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)


class OwnerTouchedMixin:
    """A row saved or deleted on its own page says that its owner (named by `owner_id_field`)
    changed, through `owner_changed`: the eligibility engine recompiles an owner's rules when
    the owner changes, and editing the row on the owner's page would have changed it."""

    owner_id_field: str

    def owner_changed(self, request: HttpRequest, owner_id: int) -> None:
        raise NotImplementedError

    def owners_lock(self, owner_ids: list[int]) -> None:
        """Lock the owners' rows before the row's, the order in which an owner's own page and a
        contract's revert lock them: the other order deadlocks with a revert changing the row.
        The admin's save or delete runs in a transaction, which keeps the lock."""
        owner = self.model._meta.get_field(self.owner_id_field).related_model
        list(
            owner._default_manager.select_for_update(no_key=True)
            .filter(pk__in=owner_ids)
            .order_by("pk")
            .values_list("pk", flat=True)
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        self.owners_lock([getattr(obj, self.owner_id_field)])
        super().save_model(request, obj, form, change)
        self.owner_changed(request, getattr(obj, self.owner_id_field))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.owners_lock([getattr(obj, self.owner_id_field)])
        super().delete_model(request, obj)
        self.owner_changed(request, getattr(obj, self.owner_id_field))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        owner_ids = list(queryset.values_list(self.owner_id_field, flat=True).distinct())
        with transaction.atomic():  # an action runs outside the change view's transaction
            self.owners_lock(owner_ids)
            super().delete_queryset(request, queryset)
            for owner_id in owner_ids:
                self.owner_changed(request, owner_id)


class ContractPartAdmin(ListedNotOpenedMixin, OwnerTouchedMixin, SimpleHistoryAdmin):
    """Base for the rows a contract owns; they are normally edited on the contract page."""

    owner_id_field = "contract_id"

    def owner_changed(self, request: HttpRequest, contract_id: int) -> None:
        """Say the contract changed; a live one that cannot deliver any more (its post endpoint
        or a secret its templates read deleted here) is paused, saying why."""
        contract_touch(contract_id=contract_id)
        contract = Contract.objects.get(pk=contract_id)
        if contract.status != ContractStatus.ACTIVE:
            return
        problems = contract_delivery_problems(contract)
        if problems and contract_pause(
            contract=contract, reason=f"Cannot deliver: {' '.join(problems)}"
        ):
            self.message_user(
                request,
                f"{contract} is paused: it cannot deliver: {' '.join(problems)}",
                messages.WARNING,
            )

    list_select_related = ("contract__buyer",)
    autocomplete_fields = ("contract",)
    search_fields = ("contract__name", "contract__buyer__company")


@admin.register(ContractCap)
class ContractCapAdmin(ContractPartAdmin):
    list_display = ("contract", "period", "max_leads", "budget")
    list_filter = ("period",)

    def save_model(self, request: HttpRequest, obj: ContractCap, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        cap_counters_seed(caps=[obj])

    @admin.display(description="Budget", ordering="max_budget")
    def budget(self, obj: ContractCap) -> str | None:
        return money(obj.max_budget)


@admin.register(ScheduleWindow)
class ScheduleWindowAdmin(ContractPartAdmin):
    list_display = ("contract", "weekday", "opens_at", "closes_at")
    list_filter = ("weekday",)


@admin.register(ClosedDate)
class ClosedDateAdmin(ContractPartAdmin):
    list_display = ("contract", "date", "note")
    list_filter = ("date",)


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
    form = FieldCriterionForm
    list_display = ("contract", "field", "operator", "value")
    list_filter = ("operator",)
    search_fields = ("field", *ContractPartAdmin.search_fields)


@admin.register(DeliveryEndpoint)
class DeliveryEndpointAdmin(SecretFormMixin, ContractPartAdmin):
    form = DeliveryEndpointForm
    list_display = ("contract", "kind", "method", "url", "auth_type", "secret")
    list_filter = ("kind", "method", "auth_type")
    search_fields = ("url", *ContractPartAdmin.search_fields)
    fieldsets = (
        (
            None,
            {"fields": ("contract", "kind", "url", "method", "body_format", "headers", "query")},
        ),
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


@admin.register(ContractSecret)
class ContractSecretAdmin(ContractPartAdmin):
    form = ContractSecretForm
    list_display = ("contract", "name", "masked_value")
    search_fields = ("name", "contract__name", "contract__buyer__company")


@admin.register(ResponseRule)
class ResponseRuleAdmin(ContractPartAdmin):
    list_display = ("contract", "kind", "success_path", "success_values", "success_status_codes")
    list_filter = ("kind",)


# --- Caps: limits per buyer, and the counters and reservations the engine keeps ---


@admin.register(BuyerCap)
class BuyerCapAdmin(OwnerTouchedMixin, SimpleHistoryAdmin):
    list_display = ("buyer", "period", "max_leads", "budget")
    list_filter = ("period",)
    search_fields = ("buyer__company",)
    list_select_related = ("buyer",)
    autocomplete_fields = ("buyer",)
    owner_id_field = "buyer_id"

    def owner_changed(self, request: HttpRequest, buyer_id: int) -> None:
        buyer_touch(buyer_id=buyer_id)

    def save_model(self, request: HttpRequest, obj: BuyerCap, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        cap_counters_seed(caps=[obj])

    @admin.display(description="Budget", ordering="max_budget")
    def budget(self, obj: BuyerCap) -> str | None:
        return money(obj.max_budget)


@admin.register(CapCounter)
class CapCounterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("owner", "period", "period_start", "leads", "spend_display")
    list_filter = ("period",)
    search_fields = ("contract__name", "contract__buyer__company", "buyer__company")
    list_select_related = ("contract__buyer", "buyer")
    raw_id_fields = ("contract", "buyer")
    # One row per owner and period: hourly caps alone add thousands a year.
    show_full_result_count = False
    fields = ("contract", "buyer", "period", "period_start", "leads", "spend_display")
    readonly_fields = ("spend_display",)

    @admin.display(description="Counts")
    def owner(self, obj: CapCounter) -> str | None:
        return admin_link(obj.contract) if obj.contract_id else admin_link(obj.buyer)

    @admin.display(description="Spend", ordering="spend")
    def spend_display(self, obj: CapCounter) -> str | None:
        return money(obj.spend)


@admin.register(CapReservation)
class CapReservationAdmin(LeadLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("lead_link", "contract", "status", "price_display", "created_at")
    list_filter = ("status",)
    # Informational: get_search_results below only makes exact, indexed lookups.
    search_fields = ("lead__id",)
    search_help_text = "A lead id or a reservation number."
    list_select_related = ("contract__buyer",)
    raw_id_fields = ("lead", "contract", "counters")
    show_full_result_count = False
    fields = (
        "lead",
        "contract",
        "status",
        "price_display",
        "counters",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("price_display", "created_at", "updated_at")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[CapReservation], search_term: str
    ) -> tuple[QuerySet[CapReservation], bool]:
        # One row per lead and contract tried.
        return search_by_lead_or(queryset, search_term), False

    @admin.display(description="Price", ordering="price")
    def price_display(self, obj: CapReservation) -> str | None:
        return money(obj.price)
