"""Display helpers shared by every app's admin: money, JSON, links, read-only tables."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.utils.html import format_html, format_html_join
from django.views.decorators.debug import sensitive_post_parameters

from config.masking import webhook_display


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def money(value: Decimal | None) -> str:
    """Format dollars as $1,234.50, and no amount as the admin's empty marker."""
    if value is None:
        # Read-only fields print a None as "None"; only changelists replace it with the marker.
        return admin.site.empty_value_display
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def milliseconds(value: int | None) -> str:
    """Format a duration as "120 ms", and no duration as the admin's empty marker (as money())."""
    return admin.site.empty_value_display if value is None else f"{value} ms"


def pretty_json(value: Any) -> str:
    return preformatted(
        json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    )


def preformatted(text: str) -> str:
    if not text:
        return "-"
    return format_html(
        '<pre style="white-space: pre-wrap; word-break: break-all; max-height: 40em; '
        'overflow: auto; margin: 0;">{}</pre>',
        text,
    )


def precise_time(value: datetime | None) -> str | None:
    """Return a timestamp to the millisecond in the active time zone: timelines need it."""
    if value is None:
        return None
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def admin_link(obj: Any, text: str | None = None) -> str | None:
    if obj is None:
        return None
    opts = obj._meta
    url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, obj if text is None else text)


def explanation_table(rows: list[dict[str, Any]]) -> str:
    """Render eligibility verdicts (Verdict.as_dict rows) as a table: who may buy, and why not."""
    if not rows:
        return "No contracts in this vertical."
    body = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                admin_link_by_id("buyers", "contract", row.get("contract_id"), row.get("contract")),
                row.get("buyer", ""),
                "✔ eligible" if row.get("eligible") else f"✘ {row.get('rule', '')}",
                row.get("reason", ""),
            )
            for row in rows
        ),
    )
    eligible = sum(1 for row in rows if row.get("eligible"))
    return format_html(
        "<p>{} of {} contracts eligible.</p><table><thead><tr><th>Contract</th><th>Buyer</th>"
        "<th>Verdict</th><th>Why not</th></tr></thead><tbody>{}</tbody></table>",
        eligible,
        len(rows),
        body,
    )


def admin_link_by_id(app_label: str, model_name: str, pk: Any, text: Any) -> str:
    if pk is None:
        return str(text or "")
    url = reverse(f"admin:{app_label}_{model_name}_change", args=[pk])
    return format_html('<a href="{}">{}</a>', url, text or pk)


def admin_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, template: str, **context: Any
) -> TemplateResponse:
    """Render a page of a model's admin that is not one of Django's own (templates extending
    admin/tool_page.html), with the site's context and the model's options."""
    return TemplateResponse(
        request,
        template,
        {**model_admin.admin_site.each_context(request), "opts": model_admin.opts, **context},
    )


def admin_object(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str, *, may: str = "change"
) -> Any:
    """Return the object a page of its admin is for: 403 when the caller may not `may` ("view",
    "change", or an action's permission such as "reroute") it, 404 when there is none.

    A caller who may not `may` any of them is refused before the lookup: a refused caller cannot
    tell a real id from a made-up one.
    """
    allowed = getattr(model_admin, f"has_{may}_permission")
    if not allowed(request):
        raise PermissionDenied
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(f"No such {model_admin.opts.verbose_name}.")
    if not allowed(request, obj):
        raise PermissionDenied
    return obj


def action_confirmation(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    template: str,
    *,
    action: str,
    selected: Iterable[Model],
    **context: Any,
) -> TemplateResponse:
    """Render an action's intermediate page (templates extending admin/action_confirmation.html),
    which posts the `selected` rows back to `action` with "apply" (no `action`: to itself)."""
    return admin_page(
        model_admin,
        request,
        template,
        action=action,
        selected=selected,
        action_checkbox_name=ACTION_CHECKBOX_NAME,
        **context,
    )


def parse_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term.strip())
    except ValueError:
        return None


def search_by_lead_or(queryset: QuerySet, term: str, *exact_fields: str) -> QuerySet:
    """Find a lead's rows by its id, or the row by its number, or match the term exactly on
    exact_fields.

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
    if term.isascii() and term.isdigit() and len(term) < 19:  # fits a bigint
        condition |= Q(pk=int(term))
    return queryset.filter(condition) if condition else queryset.none()


class ReadOnlyAdminMixin:
    """Rows written by the engine, never typed: viewable, not addable, editable or deletable."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OwnedPartInlineMixin:
    """Rows edited on their owner's page: whoever may change the owner may change them.

    Ops are given the permissions of the owners (buyers, contracts, verticals), not of each of
    their parts; without this the contract page would show Ops no endpoints, mappings or caps to
    edit. `owner_perm` names the owner's permission, "%s" standing for the action.
    """

    owner_perm: str

    def _may(self, request: HttpRequest, action: str) -> bool:
        return request.user.has_perm(self.owner_perm % action)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "view") or self._may(request, "change")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "change" if obj is not None else "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "change" if obj is not None else "add")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, "change" if obj is not None else "add")


class LeadLinkMixin:
    """A short link to the row's lead, built from lead_id: no join just to print an id."""

    @admin.display(description="Lead")
    def lead_link(self, obj: Any) -> str:
        url = reverse("admin:leads_lead_change", args=[obj.lead_id])
        return format_html('<a href="{}">{}</a>', url, str(obj.lead_id)[:8])


class SecretFormMixin:
    """Keep typed credentials out of error reports: they travel in these pages' POST data."""

    @method_decorator(sensitive_post_parameters())
    def changeform_view(self, *args: Any, **kwargs: Any) -> HttpResponse:
        return super().changeform_view(*args, **kwargs)


def secret_input_field(label: str) -> forms.CharField:
    """A field a secret is typed into (see StoredSecretFormMixin): a password box that never
    renders a value."""
    return forms.CharField(
        label=label,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )


def webhook_url_field() -> forms.CharField:
    """The field a form's `slack_webhook_url` is typed into (see StoredWebhookFormMixin)."""
    return forms.CharField(
        label="Slack webhook URL",
        required=False,
        max_length=1000,
        widget=forms.TextInput(
            attrs={
                "autocomplete": "off",
                "placeholder": "https://hooks.slack.com/services/…",
                "size": 80,
            }
        ),
    )


class StoredSecretFormMixin:
    """A model form's `stored_field`, a secret kept encrypted and never rendered back: the form's
    initial data loses it, and its help text describes the stored one masked by `stored_mask`.
    `typed_or_stored` gives what clean() should save: what was typed, or else (a blank field)
    the stored secret."""

    stored_field: str
    stored_mask: Callable[[str], str]  # a staticmethod
    stored_help = "Leave blank to keep it."  # follows "Stored: <the masked secret>. "
    stored_unset = "not set"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_value = getattr(self.instance, self.stored_field) if self.instance.pk else ""
        # model_to_dict put the plaintext into initial; nothing that renders may see it.
        self.initial.pop(self.stored_field, None)
        stored = self.stored_mask(self.stored_value) if self.stored_value else self.stored_unset
        self.fields[self.stored_field].help_text = f"Stored: {stored}. {self.stored_help}"

    def typed_or_stored(self, cleaned: dict[str, Any]) -> str:
        return (cleaned.get(self.stored_field) or "").strip() or self.stored_value


class StoredWebhookFormMixin(StoredSecretFormMixin):
    """A model form's `slack_webhook_url` (a `webhook_url_field`) as its stored secret, described
    by `webhook_help`."""

    stored_field = "slack_webhook_url"
    stored_mask = staticmethod(webhook_display)
    stored_unset = "none"
    webhook_help = "The URL Slack gives for an incoming webhook"

    @property
    def stored_help(self) -> str:  # type: ignore[override]
        return (
            f"{self.webhook_help}; kept encrypted and never shown again. "
            "Leave blank to keep the stored one."
        )

    def webhook_typed_or_stored(self, cleaned: dict[str, Any]) -> str:
        return self.typed_or_stored(cleaned)


class MaskedSecretMixin:
    """On a page its user may only view, the admin prints every field read-only, a decrypted
    secret included: show `secret_display` (a masked rendering) in place of `secret_field`."""

    secret_field = ""
    secret_display = ""

    def get_fieldsets(self, request: HttpRequest, obj: Any = None):
        fieldsets = super().get_fieldsets(request, obj)
        if self.has_change_permission(request, obj):
            return fieldsets
        return [
            (
                name,
                {
                    **options,
                    "fields": tuple(
                        self.secret_display if f == self.secret_field else f
                        for f in options["fields"]
                    ),
                },
            )
            for name, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None):
        readonly = super().get_readonly_fields(request, obj)
        if self.has_change_permission(request, obj):
            return readonly
        return (*readonly, self.secret_display)
