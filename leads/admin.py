"""Admin for verticals, sources and their API keys, and leads (read-only, with their timeline)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import BooleanField, Count, Q, QuerySet, Value
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from simple_history.admin import SimpleHistoryAdmin

from buyers.models import Contract
from config.admin_display import (
    OwnedPartInlineMixin,
    ReadOnlyAdminMixin,
    action_confirmation,
    admin_link_by_id,
    admin_object,
    admin_page,
    explanation_table,
    money,
    parse_uuid,
    plural,
    precise_time,
    preformatted,
    pretty_json,
)
from config.admin_pii import (
    MaskedLookupsMixin,
    lead_pii_values,
    mask_data,
    mask_text,
    mask_value,
    pii_visible,
)
from leads.instructions import instructions_token
from leads.models import (
    CONSENT_PERSONAL_KEYS,
    FINAL_STATUSES,
    IdempotencyRecord,
    Lead,
    LeadStatus,
    PayoutModel,
    Postback,
    PostingProfile,
    SchemaPin,
    SchemaVersion,
    ScoringRule,
    Source,
    SourceApiKey,
    SuppressionList,
    Vertical,
    VerticalField,
)
from leads.schema_checks import field_set_problems, pin_problems
from leads.scoring import KnownField, Tier, TierBounds, known_fields
from leads.services import (
    schema_pins_sync,
    schema_version_record,
    source_api_key_create,
    source_api_key_revoke,
    suppression_list_add,
    vertical_touch,
)
from leads.views import instructions_page
from routing.admin import LeadAttemptInline, LeadAuctionInline, LeadSaleInline, pii_field_names
from routing.selectors import explain, lead_status_history
from routing.services import REROUTABLE_STATUSES, RerouteRefused, lead_reroute

# --- Verticals ---


class VerticalFieldFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        wanted = self.instance.duplicate_fields
        if not isinstance(wanted, list):
            return  # the vertical's own form reports the malformed value
        # Check against the fields as submitted, not as stored: the vertical may be new, and a
        # field removed or renamed here must not leave a duplicate rule pointing at nothing.
        names = {
            form.cleaned_data.get("name")
            for form in self.forms
            if form.cleaned_data and not self._should_delete_form(form)
        }
        unknown = sorted(set(wanted) - names)
        if unknown:
            raise ValidationError(
                f"Duplicates are compared on {', '.join(unknown)}, which this vertical would not "
                "have: keep the field or take it out of the duplicate fields."
            )
        if self.instance.pk is not None:
            stored = set(self.instance.fields.values_list("name", flat=True))
            problems = field_set_problems(vertical=self.instance, removed=stored - names)
            if problems:
                raise ValidationError(problems)


class VerticalFieldInline(admin.TabularInline):
    model = VerticalField
    formset = VerticalFieldFormSet
    extra = 0
    fields = (
        "position",
        "name",
        "label",
        "field_type",
        "required",
        "choices",
        "min_value",
        "max_value",
        "max_length",
        "in_ping",
        "is_pii",
        "help_text",
    )
    formfield_overrides = {
        # JSON lists of choices are short; the default 10-row textarea swamps the table.
        models.JSONField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 24})},
    }

    def get_queryset(self, request: HttpRequest) -> QuerySet[VerticalField]:
        return super().get_queryset(request).select_related("vertical").order_by("position", "id")


class ScoringRuleFormSet(BaseInlineFormSet):
    """Scoring rules, checked against the vertical's fields as submitted on the same page."""

    field_formset: VerticalFieldFormSet | None = None  # set by VerticalAdmin._create_formsets

    @cached_property
    def submitted_fields(self) -> dict[str, KnownField] | None:
        fields = self.field_formset
        if fields is None or not fields.is_bound:
            return None
        fields.is_valid()  # cleans each field's form; its own errors are shown on its rows
        return known_fields(
            (
                form.cleaned_data["name"],
                form.cleaned_data.get("field_type", ""),
                form.cleaned_data.get("choices") or (),
            )
            for form in fields.forms
            if form.cleaned_data
            and form.cleaned_data.get("name")
            and not fields._should_delete_form(form)
        )

    def _construct_form(self, i: int, **kwargs: Any):
        form = super()._construct_form(i, **kwargs)
        # Read by ScoringRule.clean, which the form runs: a rule may name a field added on this
        # page, and may not keep naming one removed or renamed here.
        form.instance.submitted_fields = self.submitted_fields
        return form


class ScoringRuleInline(OwnedPartInlineMixin, admin.TabularInline):
    # Rules are part of their vertical: whoever may change the vertical may change its rules.
    owner_perm = "leads.%s_vertical"
    model = ScoringRule
    formset = ScoringRuleFormSet
    extra = 0
    fields = (
        "position",
        "name",
        "active",
        "kind",
        "field",
        "min_value",
        "max_value",
        "values",
        "points",
        "multiplier",
        "source",
    )
    autocomplete_fields = ("source",)
    verbose_name_plural = (
        "Scoring rules (points of every rule that holds are summed, multiplied by every boost "
        "that holds, then clamped to 0-100; no active rule: leads are not scored)"
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[ScoringRule]:
        return (
            super()
            .get_queryset(request)
            .select_related("vertical", "source")
            .order_by("position", "id")
        )


class SchemaVersionInline(OwnedPartInlineMixin, ReadOnlyAdminMixin, admin.TabularInline):
    """The vertical's history of field sets: who made each version, when, and what changed."""

    owner_perm = "leads.%s_vertical"
    model = SchemaVersion
    extra = 0
    fields = ("number", "created_at", "created_by", "summary_display", "source_count")
    readonly_fields = fields
    ordering = ("-number",)
    show_change_link = True
    verbose_name_plural = (
        "Versions of the fields (a save that changes what partners may or must send makes the "
        "next; each source posts in the version it is pinned to)"
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[SchemaVersion]:
        return (
            super()
            .get_queryset(request)
            .select_related("vertical", "created_by")
            .annotate(_sources=Count("pins"))
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "view") or self._may(request, "change")

    @admin.display(description="What changed")
    def summary_display(self, obj: SchemaVersion) -> str:
        return format_html_join("", "{}<br>", ((line,) for line in obj.summary.splitlines()))

    @admin.display(description="Sources on it")
    def source_count(self, obj: SchemaVersion) -> int:
        return getattr(obj, "_sources", 0)


@admin.register(SchemaVersion)
class SchemaVersionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """One version's fields as partners pinned to it post them; versions are never edited."""

    list_display = ("__str__", "vertical", "number", "created_at", "created_by", "source_count")
    list_filter = ("vertical",)
    search_fields = ("vertical__slug", "vertical__name", "summary")
    list_select_related = ("vertical", "created_by")
    fields = (
        "vertical",
        "number",
        "created_at",
        "created_by",
        "summary",
        "fields_display",
        "sources_display",
    )
    readonly_fields = fields

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Part of the vertical: whoever may see the vertical may see its versions.
        return request.user.has_perm("leads.view_vertical") or request.user.has_perm(
            "leads.change_vertical"
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[SchemaVersion]:
        return super().get_queryset(request).annotate(_sources=Count("pins"))

    @admin.display(description="Sources on it", ordering="_sources")
    def source_count(self, obj: SchemaVersion) -> int:
        return getattr(obj, "_sources", 0)

    @admin.display(description="Fields")
    def fields_display(self, obj: SchemaVersion) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f.get("name"),
                    f.get("field_type"),
                    "yes" if f.get("required") else "no",
                    ", ".join(f.get("choices") or []) or "-",
                    _limits(f),
                )
                for f in obj.fields
                if isinstance(f, dict)
            ),
        )
        return format_html(
            "<table><thead><tr><th>Field</th><th>Type</th><th>Required</th><th>Choices</th>"
            "<th>Limits</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="Sources posting in it")
    def sources_display(self, obj: SchemaVersion) -> str:
        pins = obj.pins.select_related("source").order_by("source__name")
        return (
            format_html_join(
                ", ",
                '<a href="{}">{}</a>',
                (
                    (reverse("admin:leads_source_change", args=[p.source_id]), p.source)
                    for p in pins
                ),
            )
            or "none"
        )


def _limits(f: dict[str, Any]) -> str:
    parts = []
    if f.get("min_value") is not None:
        parts.append(f"from {f['min_value']}")
    if f.get("max_value") is not None:
        parts.append(f"to {f['max_value']}")
    if f.get("max_length") is not None:
        parts.append(f"at most {f['max_length']} characters")
    return " ".join(parts) or "-"


SCORING_DESCRIPTION = (
    "Each lead is scored at intake by the scoring rules below: the points of every rule that "
    "holds are summed, the sum is multiplied by every boost that holds, and the result is "
    "clamped to 0-100 and rounded. Tiers: Hot from the Hot bound to 100, Warm and Qualified from "
    "their bounds, Cold below. A tier floor is the least a lead of that tier is sold for, "
    "whatever its contracts' own floors (empty: none). Changes apply to leads received from now "
    "on."
)


@admin.register(Vertical)
class VerticalAdmin(SimpleHistoryAdmin):
    list_display = ("slug", "name", "active", "distribution_mode", "field_count", "tier_bounds")
    list_filter = ("active", "distribution_mode")
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    inlines = (VerticalFieldInline, ScoringRuleInline, SchemaVersionInline)
    fieldsets = (
        (None, {"fields": ("name", "slug", "description", "active")}),
        (
            "Distribution",
            {"fields": ("distribution_mode", "auction_timeout_ms", "max_buyers", "min_margin")},
        ),
        (
            "Duplicates",
            {"fields": ("duplicate_fields", "duplicate_lookback_days", "duplicate_scope")},
        ),
        (
            "Lead scoring: tiers and floors",
            {
                "fields": (
                    ("tier_hot_from", "tier_warm_from", "tier_qualified_from"),
                    ("floor_hot", "floor_warm", "floor_qualified", "floor_cold"),
                ),
                "description": SCORING_DESCRIPTION,
            },
        ),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Vertical]:
        return super().get_queryset(request).annotate(_field_count=Count("fields"))

    def _create_formsets(self, request: HttpRequest, obj: Vertical, change: bool):
        formsets, inlines = super()._create_formsets(request, obj, change)
        fields = next((f for f in formsets if isinstance(f, VerticalFieldFormSet)), None)
        for formset in formsets:
            if isinstance(formset, ScoringRuleFormSet):
                formset.field_formset = fields
        return formsets, inlines

    def get_inlines(self, request: HttpRequest, obj: Vertical | None) -> list[Any]:
        # A vertical being added has no versions yet: its first save makes version 1.
        inlines = list(super().get_inlines(request, obj))
        return inlines if obj is not None else [i for i in inlines if i is not SchemaVersionInline]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Once the fields inline are saved: one save of the page, at most one version.
        version = schema_version_record(vertical=form.instance, actor=request.user)
        if version is not None and change:
            self.message_user(
                request,
                f"The fields changed: they are version {version.number} now. Sources stay on "
                "the version they post in until you move them (on each source's page).",
                messages.INFO,
            )

    @admin.display(description="Fields", ordering="_field_count")
    def field_count(self, obj: Vertical) -> int:
        return obj._field_count

    @admin.display(description="Tiers")
    def tier_bounds(self, obj: Vertical) -> str:
        bounds = obj.tier_bounds
        return " · ".join(bounds.describe(tier) for tier in Tier.values)


class VerticalFieldForm(forms.ModelForm):
    """A field's own page: renaming it, or moving it to another vertical, takes it away from
    the vertical it was in, as deleting it on the vertical's page does."""

    class Meta:
        model = VerticalField
        fields = (
            "vertical",
            "position",
            "name",
            "label",
            "field_type",
            "required",
            "choices",
            "min_value",
            "max_value",
            "max_length",
            "in_ping",
            "is_pii",
            "help_text",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        stored = VerticalField.objects.filter(pk=self.instance.pk).select_related("vertical")
        stored_field = stored.first() if self.instance.pk is not None else None
        if stored_field is None or "name" not in cleaned or "vertical" not in cleaned:
            return cleaned
        if cleaned["name"] != stored_field.name or cleaned["vertical"] != stored_field.vertical:
            problems = field_set_problems(
                vertical=stored_field.vertical, removed={stored_field.name}
            )
            if problems:
                raise ValidationError(problems)
        return cleaned


@admin.register(VerticalField)
class VerticalFieldAdmin(SimpleHistoryAdmin):
    form = VerticalFieldForm
    list_display = (
        "name",
        "vertical",
        "position",
        "label",
        "field_type",
        "required",
        "in_ping",
        "is_pii",
    )
    list_filter = ("vertical", "field_type", "required", "in_ping", "is_pii")
    search_fields = ("name", "label", "vertical__slug", "vertical__name")
    list_select_related = ("vertical",)
    autocomplete_fields = ("vertical",)

    # Intake caches a vertical's schema until the vertical changes: a field edited on its own
    # page must mark its vertical changed.
    def save_model(self, request: HttpRequest, obj: VerticalField, form, change: bool) -> None:
        left = VerticalField.objects.filter(pk=obj.pk).values_list("vertical_id", flat=True)
        left_id = left.first() if obj.pk is not None else None
        super().save_model(request, obj, form, change)
        self._changed(request, obj.vertical_id)
        if left_id is not None and left_id != obj.vertical_id:
            # Moved to another vertical: the one it left has lost it.
            self._changed(request, left_id)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        # As on the vertical's page: a field a contract reads is not deleted (listed as
        # protected, the admin refuses the deletion).
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        removed: dict[int, set[str]] = {}
        verticals: dict[int, Vertical] = {}
        for field in objs:
            removed.setdefault(field.vertical_id, set()).add(field.name)
            verticals[field.vertical_id] = field.vertical
        for vertical_id, names in removed.items():
            protected.extend(field_set_problems(vertical=verticals[vertical_id], removed=names))
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: VerticalField) -> None:
        super().delete_model(request, obj)
        self._changed(request, obj.vertical_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[VerticalField]) -> None:
        vertical_ids = set(queryset.values_list("vertical_id", flat=True))
        super().delete_queryset(request, queryset)
        for vertical_id in vertical_ids:
            self._changed(request, vertical_id)

    def _changed(self, request: HttpRequest, vertical_id: int) -> None:
        vertical_touch(vertical_id=vertical_id)
        schema_version_record(vertical=Vertical(pk=vertical_id), actor=request.user)


@admin.register(ScoringRule)
class ScoringRuleAdmin(SimpleHistoryAdmin):
    """Each rule's own page, for its history; rules are edited on their vertical's page."""

    list_display = (
        "name",
        "vertical",
        "position",
        "active",
        "kind",
        "field",
        "points",
        "multiplier",
        "source",
    )
    list_filter = ("vertical", "kind", "active")
    search_fields = ("name", "field", "vertical__slug", "vertical__name")
    list_select_related = ("vertical", "source")
    autocomplete_fields = ("vertical", "source")


# --- Sources and API keys ---


class MintKeyForm(forms.Form):
    name = forms.CharField(
        max_length=SourceApiKey._meta.get_field("name").max_length,
        required=False,
        help_text="What the key is for, e.g. 'production web form'. Optional.",
    )


class SourceApiKeyInline(admin.TabularInline):
    model = SourceApiKey
    extra = 0
    can_delete = False
    fields = ("prefix", "name", "created_at", "last_used_at", "revoked_at", "status")
    readonly_fields = fields
    verbose_name_plural = "API keys (mint one with the button above; revoke under Source API keys)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[SourceApiKey]:
        return super().get_queryset(request).select_related("source")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are minted, never typed

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="Status")
    def status(self, obj: SourceApiKey) -> str:
        return "active" if obj.is_active else "revoked"


class PostingProfileInline(admin.StackedInline):
    """How the source posts; without one it sends the JSON envelope with a Bearer key."""

    model = PostingProfile
    extra = 0
    max_num = 1
    can_delete = True
    autocomplete_fields = ("default_vertical",)
    fields = (
        ("format", "answer_format"),
        ("key_location", "key_name"),
        "default_vertical",
        "unknown_fields",
        "aliases",
        "value_maps",
    )
    verbose_name = "posting profile"
    verbose_name_plural = (
        "Posting profile (none: the JSON envelope with a Bearer key, answered in JSON; see "
        "README, Posting profiles)"
    )


class SchemaVersionChoice(forms.ModelChoiceField):
    def label_from_instance(self, obj: SchemaVersion) -> str:
        return f"version {obj.number} ({obj.created_at:%Y-%m-%d})"


class SchemaPinForm(forms.ModelForm):
    """Move a source to another version of a vertical: a newer one only."""

    class Meta:
        model = SchemaPin
        fields = ("schema_version",)
        field_classes = {"schema_version": SchemaVersionChoice}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = self.fields["schema_version"]
        versions.queryset = SchemaVersion.objects.filter(  # type: ignore[attr-defined]
            vertical_id=self.instance.vertical_id
        ).order_by("-number")

    def clean_schema_version(self) -> SchemaVersion:
        version: SchemaVersion = self.cleaned_data["schema_version"]
        stored = (
            SchemaPin.objects.filter(pk=self.instance.pk).select_related("schema_version").first()
        )
        if stored is not None and version.number < stored.schema_version.number:
            raise ValidationError(
                f"{stored.source} posts in version {stored.schema_version.number} of "
                f"{stored.vertical}: a source is moved to a newer version only, never back to "
                f"version {version.number} (its developer may already send what the newer "
                "version added, and would be refused)."
            )
        if stored is not None and version.pk != stored.schema_version_id:
            newest = SchemaVersion.objects.filter(vertical_id=version.vertical_id)
            names = (
                set(
                    VerticalField.objects.filter(vertical_id=version.vertical_id).values_list(
                        "name", flat=True
                    )
                )
                if version.number == max(newest.values_list("number", flat=True))
                else {f.get("name") for f in version.fields if isinstance(f, dict)}
            )
            problems = pin_problems(source=stored.source, version=version, names=names)
            if problems:
                raise ValidationError(problems)
        return version


class SchemaPinInline(OwnedPartInlineMixin, admin.TabularInline):
    """The version of each vertical's fields the source posts in, and the newest there is."""

    owner_perm = "leads.%s_source"
    model = SchemaPin
    form = SchemaPinForm
    extra = 0
    can_delete = False
    fields = ("vertical", "schema_version", "newest")
    readonly_fields = ("vertical", "newest")
    verbose_name_plural = (
        "Versions of the verticals' fields it posts in (pinned when it is given a vertical; "
        "move it to a newer one once its developer sends what that version asks)"
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[SchemaPin]:
        return (
            super()
            .get_queryset(request)
            .select_related("vertical", "source", "schema_version")
            .order_by("vertical__slug")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # pinned when the source is given the vertical

    @admin.display(description="Newest")
    def newest(self, obj: SchemaPin) -> str:
        newest = SchemaVersion.objects.filter(vertical_id=obj.vertical_id).order_by("-number")
        latest = newest.first()
        if latest is None or latest.pk == obj.schema_version_id:
            return "it posts in the newest"
        return format_html(
            '<a href="{}">version {}</a>: {}',
            reverse("admin:leads_schemaversion_change", args=[latest.pk]),
            latest.number,
            latest.summary.splitlines()[0] if latest.summary else "",
        )


@admin.register(Source)
class SourceAdmin(SimpleHistoryAdmin):
    list_display = (
        "name",
        "active",
        "payout_model",
        "payout",
        "vertical_list",
        "active_key_count",
    )
    list_filter = ("active", "payout_model", "sees_buyer_price", "verticals")
    search_fields = ("name", "contact_name", "contact_email")
    filter_horizontal = ("verticals",)
    readonly_fields = ("created_at", "updated_at")
    inlines = (PostingProfileInline, SchemaPinInline, SourceApiKeyInline)
    actions = ("mint_keys",)
    change_form_template = "admin/leads/source/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "active", "verticals")}),
        (
            "Payout",
            {
                "fields": (
                    "payout_model",
                    "payout_amount",
                    "revenue_share_percent",
                    "payout_reversed_on_return",
                    "sees_buyer_price",
                )
            },
        ),
        ("Intake", {"fields": ("rate_limit_per_second", "postback_url")}),
        ("Contact", {"fields": ("contact_name", "contact_email", "notes")}),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Source]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                _active_keys=Count(
                    "api_keys", filter=Q(api_keys__revoked_at__isnull=True), distinct=True
                )
            )
            .prefetch_related("verticals")
        )

    def get_inlines(self, request: HttpRequest, obj: Source | None) -> list[Any]:
        # A source being added is pinned when it is saved with its verticals.
        inlines = list(super().get_inlines(request, obj))
        return inlines if obj is not None else [i for i in inlines if i is not SchemaPinInline]

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # A version moved on this page for a vertical taken away on it too is not kept.
        schema_pins_sync(source_ids=[form.instance.pk])

    @admin.display(description="Payout")
    def payout(self, obj: Source) -> str | None:
        if obj.payout_model == PayoutModel.REVENUE_SHARE:
            return f"{obj.revenue_share_percent.normalize():f}% of sale"
        return f"{money(obj.payout_amount)} per lead"

    @admin.display(description="Verticals")
    def vertical_list(self, obj: Source) -> str:
        return ", ".join(v.slug for v in obj.verticals.all()) or "-"

    @admin.display(description="Active keys", ordering="_active_keys")
    def active_key_count(self, obj: Source) -> int:
        return obj._active_keys

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            # Before the default URLs: their "<path:object_id>/" would swallow this one.
            path(
                "<path:object_id>/mint-key/",
                self.admin_site.admin_view(self.mint_key_view),
                name="{}_{}_mint_key".format(*info),
            ),
            path(
                "<path:object_id>/instructions/",
                self.admin_site.admin_view(self.instructions_view),
                name="{}_{}_instructions".format(*info),
            ),
            *super().get_urls(),
        ]

    def instructions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The source's posting instructions, with the link staff send its developer."""
        source = admin_object(self, request, object_id, may="view")
        token = instructions_token(source)
        staff = {
            "link": request.build_absolute_uri(
                reverse("posting-instructions-shared", args=[token])
            ),
            "source_url": reverse("admin:leads_source_change", args=[source.pk]),
        }
        return instructions_page(request, source=source, staff=staff)

    def mint_key_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then mint one key and show it once. admin_view adds CSRF and no-cache."""
        source = admin_object(self, request, object_id)
        form = MintKeyForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            return self._mint_and_show(request, [source], name=form.cleaned_data["name"])
        return admin_page(
            self,
            request,
            "admin/leads/source/mint_key.html",
            title=f"Mint an API key for {source}",
            original=source,
            form=form,
            has_view_permission=self.has_view_permission(request, source),
        )

    @admin.action(description="Mint an API key for each selected source", permissions=["change"])
    def mint_keys(self, request: HttpRequest, queryset: QuerySet[Source]) -> HttpResponse:
        return self._mint_and_show(request, list(queryset), name="")

    def _mint_and_show(
        self, request: HttpRequest, sources: list[Source], *, name: str
    ) -> HttpResponse:
        # The plaintext keys exist only in this response: not in messages, the session, the log
        # entry (which names the prefix) or anywhere in the database.
        minted = []
        for source in sources:
            api_key, raw_key = source_api_key_create(source=source, name=name)
            self.log_change(request, source, f"Minted API key {api_key.prefix}…")
            minted.append({"source": source, "api_key": api_key, "raw_key": raw_key})
        return admin_page(
            self,
            request,
            "admin/leads/source/minted_keys.html",
            title="Copy the new API key now" if len(minted) == 1 else "Copy the new API keys now",
            minted=minted,
        )


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin):
        return (("active", "Active"), ("revoked", "Revoked"))

    def queryset(self, request: HttpRequest, queryset: QuerySet[SourceApiKey]):
        if self.value() == "active":
            return queryset.filter(revoked_at__isnull=True)
        if self.value() == "revoked":
            return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(SourceApiKey)
class SourceApiKeyAdmin(SimpleHistoryAdmin):
    list_display = ("prefix", "source", "name", "created_at", "last_used_at", "status")
    list_filter = (KeyStatusFilter, "source")
    search_fields = ("prefix", "source__name")
    list_select_related = ("source",)
    fields = ("source", "name", "prefix", "created_at", "last_used_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke_keys",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # minted from the source page, where the key is shown once

    @admin.display(description="Status", ordering="revoked_at")
    def status(self, obj: SourceApiKey) -> str:
        return "active" if obj.is_active else "revoked"

    @admin.action(description="Revoke selected keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[SourceApiKey]) -> None:
        revoked = 0
        for api_key in queryset:
            if source_api_key_revoke(api_key=api_key):
                revoked += 1
                self.log_change(request, api_key, "Revoked")
        skipped = len(queryset) - revoked
        text = f"Revoked {revoked} API key{'' if revoked == 1 else 's'}."
        if skipped:
            text += f" {skipped} {'was' if skipped == 1 else 'were'} already revoked."
        self.message_user(request, text, messages.SUCCESS if revoked else messages.WARNING)


# --- Leads: everything read-only, with the lead's routing history inline. ---


PHONE_DIGITS_RE = re.compile(r"\D")
ZIP_TERM_RE = re.compile(r"^\d{5}$")


class PostbackInline(admin.TabularInline):
    model = Postback
    extra = 0
    can_delete = False
    fields = (
        "created_at",
        "attempt",
        "lead_status",
        "status",
        "response_status",
        "latency_ms",
        "error",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Lead)
class LeadAdmin(MaskedLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "vertical",
        "source",
        "status",
        "is_test",
        "email_display",
        "state",
        "score_column",
        "sale_price_display",
        "received_at",
    )
    list_display_links = ("short_id",)
    list_filter = ("status", "vertical", "source", "tier", "is_test")
    # Informational: get_search_results below turns a term into exact, indexed lookups.
    search_fields = ("id", "email", "phone", "zip_code", "sub_id")
    search_help_text = (
        "Exact match: a lead id, a 5-digit ZIP or a sub id; for whoever sees personal data, "
        "an e-mail address or a phone number too."
    )
    list_select_related = ("vertical", "source")
    date_hierarchy = "received_at"
    show_full_result_count = False
    inlines = (LeadAttemptInline, LeadAuctionInline, LeadSaleInline, PostbackInline)
    change_form_template = "admin/leads/lead/change_form.html"
    actions = ("reroute_leads",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "vertical",
                    "source",
                    "status",
                    "reason",
                    "is_test",
                    "sub_id",
                    "api_key",
                    "duplicate_of",
                    "received_at",
                    "updated_at",
                    "erased_at",
                )
            },
        ),
        (
            "Contact",
            {
                "fields": (
                    "email_display",
                    "phone_display",
                    "zip_code",
                    "state",
                    "remote_ip_display",
                )
            },
        ),
        ("Status history", {"fields": ("status_history_display",)}),
        (
            "Score",
            {
                "fields": ("score_display", "score_breakdown_display"),
                "description": "Computed at intake by the vertical's scoring rules as they were "
                "then: points summed, multiplied by boosts, clamped to 0-100.",
            },
        ),
        (
            "Sale",
            {"fields": ("sold_at", "sale_price_display", "payout_display", "margin_display")},
        ),
        (
            "Data",
            {
                "fields": (
                    "data_display",
                    "extra_display",
                    "errors_display",
                    "consent_display",
                    "raw_body_display",
                )
            },
        ),
        (
            "Eligibility if it were routed now",
            {
                "fields": ("eligibility_display", "post_previews"),
                "description": "Every contract of the vertical, evaluated now; each routing run "
                "stores its own explanation on its auction.",
            },
        ),
    )
    readonly_fields = (
        "post_previews",
        "email_display",
        "phone_display",
        "remote_ip_display",
        "status_history_display",
        "score_display",
        "score_breakdown_display",
        "eligibility_display",
        "sale_price_display",
        "payout_display",
        "margin_display",
        "data_display",
        "extra_display",
        "errors_display",
        "consent_display",
        "raw_body_display",
    )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Lead], search_term: str
    ) -> tuple[QuerySet[Lead], bool]:
        # Millions of rows: every branch is an exact lookup on an indexed column (sub_id is the
        # fallback for anything else), never a LIKE scan.
        term = search_term.strip()
        if not term:
            return queryset, False
        lead_id = parse_uuid(term)
        if lead_id is not None:
            return queryset.filter(pk=lead_id), False
        # Whoever sees personal data masked (Sales) must not confirm, by a search that finds a
        # lead, whose e-mail or phone hides behind a mask: their search reads ids, ZIPs and sub
        # ids only.
        contact = pii_visible(request)
        if "@" in term:
            return (queryset.filter(email=term.lower()) if contact else queryset.none()), False
        condition = Q(sub_id=term)
        if ZIP_TERM_RE.match(term):
            condition |= Q(zip_code=term)
        digits = PHONE_DIGITS_RE.sub("", term)
        if contact and len(digits) == 10:
            condition |= Q(phone=f"+1{digits}")
        elif contact and len(digits) > 10:
            condition |= Q(phone=f"+{digits}")
        return queryset.filter(condition), False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Lead]:
        # Whether this user sees personal data rides on each row: display methods get no request.
        return (
            super()
            .get_queryset(request)
            .annotate(_pii_visible=Value(pii_visible(request), output_field=BooleanField()))
        )

    # --- Personal data, masked for users without reporting.view_unmasked_pii (Sales) ---

    @staticmethod
    def _shows_pii(obj: Lead) -> bool:
        return bool(getattr(obj, "_pii_visible", False))

    @admin.display(description="E-mail", ordering="email")
    def email_display(self, obj: Lead) -> str:
        return obj.email if self._shows_pii(obj) else mask_value(obj.email)

    @admin.display(description="Phone")
    def phone_display(self, obj: Lead) -> str:
        return obj.phone if self._shows_pii(obj) else mask_value(obj.phone)

    @admin.display(description="Remote IP")
    def remote_ip_display(self, obj: Lead) -> str | None:
        if self._shows_pii(obj) or not obj.remote_ip:
            return obj.remote_ip
        return "hidden (personal data)"

    @admin.display(description="Status changes, oldest first")
    def status_history_display(self, obj: Lead) -> str:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((precise_time(s.at), s.status, s.detail) for s in lead_status_history(obj)),
        )
        return format_html(
            "<table><thead><tr><th>When</th><th>Status</th><th>What happened</th></tr>"
            "</thead><tbody>{}</tbody></table><p>Now: <strong>{}</strong></p>",
            rows,
            obj.get_status_display(),
        )

    # --- Re-route (ops): only unsold or failed leads, never one a buyer holds ---

    def has_reroute_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Leads are never edited by hand; routing one again is the change ops may make.
        return request.user.has_perm("leads.change_lead")

    def get_urls(self):
        urls = [
            path(
                "<path:object_id>/reroute/",
                self.admin_site.admin_view(self.reroute_view),
                name="leads_lead_reroute",
            )
        ]
        return urls + super().get_urls()

    def render_change_form(self, request: HttpRequest, context: dict, *args: Any, **kwargs: Any):
        obj = context.get("original")
        context["can_reroute"] = (
            obj is not None
            and obj.status in REROUTABLE_STATUSES
            and self.has_reroute_permission(request)
        )
        return super().render_change_form(request, context, *args, **kwargs)

    def reroute_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirm, then hand one unsold or failed lead back to routing."""
        lead = admin_object(self, request, object_id, may="reroute")
        change_url = reverse("admin:leads_lead_change", args=[lead.pk])
        if request.method == "POST":
            self._reroute(request, [lead])
            return HttpResponseRedirect(change_url)
        return self._confirm_reroute(request, [lead], single=True)

    @admin.action(
        description="Re-route selected leads (unsold or failed only)", permissions=["reroute"]
    )
    def reroute_leads(self, request: HttpRequest, queryset: QuerySet[Lead]) -> HttpResponse | None:
        """Confirm on an intermediate page, then hand each unsold or failed lead back to routing."""
        leads = list(queryset.select_related("vertical", "source")[:500])
        if "apply" in request.POST:
            self._reroute(request, leads)
            return None
        return self._confirm_reroute(request, leads, single=False)

    def _confirm_reroute(self, request: HttpRequest, leads: list[Lead], *, single: bool):
        return action_confirmation(
            self,
            request,
            "admin/leads/lead/reroute.html",
            # One lead's own page posts back to itself; the action posts the selection.
            action="" if single else "reroute_leads",
            selected=leads,
            title="Re-route leads" if not single else "Re-route this lead",
            routable=[lead for lead in leads if lead.status in REROUTABLE_STATUSES],
        )

    def _reroute(self, request: HttpRequest, leads: list[Lead]) -> None:
        done = 0
        actor = request.user.get_username()
        for lead in leads:
            try:
                lead_reroute(lead=lead, actor=actor)
            except RerouteRefused as exc:
                self.message_user(request, f"Lead {str(lead.pk)[:8]}: {exc}", messages.ERROR)
            else:
                done += 1
                self.log_change(request, lead, f"Re-routed by hand by {actor}")
        if done:
            self.message_user(
                request, f"Sent {plural(done, 'lead')} back to routing.", messages.SUCCESS
            )

    @admin.display(description="Preview the post")
    def post_previews(self, obj: Lead) -> str:
        """Link each contract of the vertical to the post it would receive (ops; sends nothing)."""
        if not self._shows_pii(obj) or obj.vertical_id is None:
            return "-"
        contracts = Contract.objects.filter(vertical_id=obj.vertical_id).select_related("buyer")
        links = format_html_join(
            " · ",
            '<a href="{}?kind=post&amp;lead={}">{}</a>',
            (
                (reverse("admin:buyers_contract_test", args=[c.pk]), obj.pk, str(c))
                for c in contracts
            ),
        )
        return links or "No contracts in this vertical."

    @admin.display(description="Contracts")
    def eligibility_display(self, obj: Lead) -> str:
        if obj.vertical_id is None or obj.status in FINAL_STATUSES - {
            LeadStatus.SOLD,
            LeadStatus.UNSOLD,
            LeadStatus.FAILED,
        }:
            return "Not routable: intake rejected it."
        return explanation_table([verdict.as_dict() for verdict in explain(obj)])

    @admin.display(description="Score", ordering="score")
    def score_column(self, obj: Lead) -> str:
        if obj.score is None:
            return "-"
        return f"{obj.score} {obj.get_tier_display()}"

    @admin.display(description="Score")
    def score_display(self, obj: Lead) -> str:
        if obj.score is None:
            if obj.status == LeadStatus.INVALID:
                return "Not scored: intake rejected it before it could be scored."
            return "Not scored: its vertical had no active scoring rule when it came in."
        bounds = (
            obj.score_breakdown.get("bounds") if isinstance(obj.score_breakdown, dict) else None
        )
        tiers = TierBounds(**bounds) if isinstance(bounds, dict) else None
        span = f" ({tiers.describe(obj.tier)})" if tiers is not None and obj.tier else ""
        return format_html("<strong>{}</strong> · {}{}", obj.score, obj.get_tier_display(), span)

    @admin.display(description="Breakdown")
    def score_breakdown_display(self, obj: Lead) -> str:
        breakdown = obj.score_breakdown if isinstance(obj.score_breakdown, dict) else {}
        if obj.score is None or not breakdown:
            return "-"
        fired = breakdown.get("rules") or []
        if not self._shows_pii(obj):
            # A breakdown stored before its rule's field counted as personal may quote a value.
            values = lead_pii_values(obj, pii_field_names(obj.vertical_id))
            fired = [{**rule, "why": mask_text(rule.get("why", ""), values)} for rule in fired]
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_link_by_id("leads", "scoringrule", rule.get("rule_id"), rule.get("rule")),
                    rule.get("kind", ""),
                    _rule_effect(rule),
                    rule.get("why", ""),
                )
                for rule in fired
            ),
        )
        if not fired:
            rows = format_html('<tr><td colspan="4">No rule held for this lead.</td></tr>')
        raw = breakdown.get("raw", "")
        return format_html(
            "<table><thead><tr><th>Rule</th><th>Kind</th><th>Effect</th><th>Why</th></tr></thead>"
            "<tbody>{}</tbody></table><p>{} points × {} = {} → clamped to 0-100 and rounded: "
            "<strong>{}</strong></p>",
            rows,
            breakdown.get("points", 0),
            breakdown.get("multiplier", "1"),
            raw,
            obj.score,
        )

    @admin.display(description="Lead")
    def short_id(self, obj: Lead) -> str:
        return str(obj.id)[:8]

    @admin.display(description="Sale price", ordering="sale_price")
    def sale_price_display(self, obj: Lead) -> str | None:
        return money(obj.sale_price)

    @admin.display(description="Source payout")
    def payout_display(self, obj: Lead) -> str | None:
        return money(obj.payout)

    @admin.display(description="Margin")
    def margin_display(self, obj: Lead) -> str | None:
        return money(obj.margin)

    @admin.display(description="Normalised data")
    def data_display(self, obj: Lead) -> str:
        if self._shows_pii(obj):
            return pretty_json(obj.data)
        return pretty_json(mask_data(obj.data, pii_field_names(obj.vertical_id)))

    @admin.display(description="Extra data")
    def extra_display(self, obj: Lead) -> str:
        """What the source sent beyond the vertical's fields (its profile keeps them)."""
        if not obj.extra:
            return "-"
        if not self._shows_pii(obj):
            return f"Hidden: {', '.join(sorted(obj.extra))} (may hold personal data)."
        return pretty_json(obj.extra)

    @admin.display(description="Errors")
    def errors_display(self, obj: Lead) -> str:
        return pretty_json(obj.errors) if obj.errors else "-"

    @admin.display(description="Consent")
    def consent_display(self, obj: Lead) -> str:
        if not obj.consent:
            return "-"
        if self._shows_pii(obj) or not isinstance(obj.consent, dict):
            return pretty_json(obj.consent)
        # What was agreed stays; who agreed (address, browser, the page and the certificates
        # that record the visit) is the consumer's.
        return pretty_json(
            {k: "hidden" if k in CONSENT_PERSONAL_KEYS else v for k, v in obj.consent.items()}
        )

    @admin.display(description="Raw request body")
    def raw_body_display(self, obj: Lead) -> str:
        if not self._shows_pii(obj):
            return "Hidden: it holds personal data."
        # Shown exactly as received: it is the evidence, so it is not re-formatted.
        return preformatted(obj.raw_body)


def _rule_effect(rule: dict[str, Any]) -> str:
    effects = []
    if rule.get("points"):
        effects.append(f"{rule['points']:+d} points")
    if rule.get("multiplier") is not None:
        effects.append(f"× {rule['multiplier']}")
    return ", ".join(effects) or "-"


class SuppressionListForm(forms.ModelForm):
    contacts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60}),
        help_text="Emails and phone numbers to add, separated by new lines, commas or spaces.",
    )
    upload = forms.FileField(
        required=False, help_text="Or a CSV or text file of emails and phone numbers."
    )

    class Meta:
        model = SuppressionList
        fields = ("name", "description", "active")

    def clean_upload(self) -> str:
        upload = self.cleaned_data.get("upload")
        if not upload:
            return ""
        if upload.size > 50 * 1024 * 1024:
            raise ValidationError("Upload at most 50 MB at a time.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValidationError("The file is not UTF-8 text (save it as CSV UTF-8).") from None


@admin.register(SuppressionList)
class SuppressionListAdmin(admin.ModelAdmin):
    form = SuppressionListForm
    list_display = ("name", "active", "entry_count", "updated_at")
    list_filter = ("active",)
    search_fields = ("name",)
    readonly_fields = ("entry_count", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "description", "active", "entry_count")}),
        (
            "Add contacts",
            {
                "fields": ("contacts", "upload"),
                "description": "Entries are stored as keyed hashes: they cannot be listed or "
                "read back, only matched against incoming leads.",
            },
        ),
        ("Audit", {"fields": ("created_at", "updated_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[SuppressionList]:
        return super().get_queryset(request).annotate(_entries=Count("entries"))

    @admin.display(description="Entries", ordering="_entries")
    def entry_count(self, obj: SuppressionList) -> int:
        return getattr(obj, "_entries", None) or obj.entries.count() if obj.pk else 0

    def save_model(self, request: HttpRequest, obj: SuppressionList, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        text = "\n".join(
            part
            for part in (form.cleaned_data.get("contacts"), form.cleaned_data.get("upload"))
            if part
        )
        if not text.strip():
            return
        result = suppression_list_add(suppression_list=obj, text=text)
        self.message_user(
            request,
            f"Added {result.added} contacts; {result.already_listed} were already listed.",
            messages.SUCCESS,
        )
        if result.rejected:
            self.message_user(
                request,
                "Not an email or US phone number, skipped: " + ", ".join(result.rejected),
                messages.WARNING,
            )


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(MaskedLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "source", "response_status", "lead", "created_at")
    list_filter = ("response_status", "source")
    search_fields = ("key",)
    list_select_related = ("source", "lead")
    raw_id_fields = ("lead",)
    show_full_result_count = False
