"""Admin for ops notifications: subscriptions (who is told of what, and how) and every message
sent."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from config.admin_display import (
    MaskedSecretMixin,
    ReadOnlyAdminMixin,
    SecretFormMixin,
    StoredWebhookFormMixin,
    admin_link,
    precise_time,
    preformatted,
    pretty_json,
    webhook_url_field,
)
from notifications import services
from notifications.models import (
    SUBSCRIBABLE_KINDS,
    DeliveryStatus,
    NotificationChannel,
    NotificationDelivery,
    NotificationKind,
    NotificationSubscription,
)


class NotificationSubscriptionForm(StoredWebhookFormMixin, forms.ModelForm):
    """Pick events with checkboxes; the webhook URL is a secret, typed in and never shown back.

    Blank keeps the stored URL; switching the subscription to e-mail drops it.
    """

    kinds = forms.MultipleChoiceField(
        label="Events",
        required=False,  # the model says "choose at least one event"
        choices=[(kind.value, kind.label) for kind in SUBSCRIBABLE_KINDS],
        widget=forms.CheckboxSelectMultiple,
    )
    slack_webhook_url = webhook_url_field()

    class Meta:
        model = NotificationSubscription
        fields = (
            "name",
            "active",
            "kinds",
            "channel",
            "user",
            "email",
            "slack_webhook_url",
            "buyer",
            "contract",
            "source",
            "error_rate_percent",
            "duplicate_rate_percent",
            "rate_window_minutes",
            "rate_min_leads",
            "dedup_minutes",
        )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("channel") == NotificationChannel.SLACK:
            cleaned["slack_webhook_url"] = self.webhook_typed_or_stored(cleaned)
        else:
            # An e-mail subscription keeps no webhook; one typed in anyway is refused by clean().
            cleaned["slack_webhook_url"] = (cleaned.get("slack_webhook_url") or "").strip()
        return cleaned


@admin.register(NotificationSubscription)
class NotificationSubscriptionAdmin(SecretFormMixin, MaskedSecretMixin, admin.ModelAdmin):
    form = NotificationSubscriptionForm
    secret_field, secret_display = "slack_webhook_url", "recipient_display"
    list_display = (
        "name",
        "active",
        "channel",
        "recipient_display",
        "events",
        "scope",
        "dedup_minutes",
    )
    list_filter = ("active", "channel")
    search_fields = ("name", "email", "user__username", "user__email")
    list_select_related = ("user", "buyer", "contract__buyer", "source")
    raw_id_fields = ("user", "buyer", "contract", "source")
    readonly_fields = ("created_at", "updated_at", "recent_deliveries")
    fieldsets = (
        (None, {"fields": ("name", "active", "kinds")}),
        (
            "Where",
            {
                "fields": ("channel", "user", "email", "slack_webhook_url"),
                "description": "E-mail to a user (their address at sending time) or to an "
                "address; or a Slack channel's incoming webhook.",
            },
        ),
        (
            "Scope",
            {
                "fields": ("buyer", "contract", "source"),
                "description": "Empty: every buyer, contract and source. Leads stuck in routing "
                "concern no one buyer or source: only unscoped subscriptions hear of them.",
            },
        ),
        (
            "Source rates",
            {
                "fields": (
                    "error_rate_percent",
                    "duplicate_rate_percent",
                    "rate_window_minutes",
                    "rate_min_leads",
                ),
                "description": "Measured every 5 minutes over the window; test leads never count.",
            },
        ),
        ("No avalanche", {"fields": ("dedup_minutes",)}),
        ("Record", {"fields": ("created_at", "updated_at", "recent_deliveries")}),
    )
    actions = ("send_test",)

    @admin.display(description="Sent to")
    def recipient_display(self, obj: NotificationSubscription) -> str:
        return obj.recipient or "-"

    @admin.display(description="Events")
    def events(self, obj: NotificationSubscription) -> str:
        labels = dict(NotificationKind.choices)
        return "; ".join(labels.get(kind, kind) for kind in obj.kinds or [])

    @admin.display(description="Scope")
    def scope(self, obj: NotificationSubscription) -> str:
        parts = [str(part) for part in (obj.buyer, obj.contract, obj.source) if part is not None]
        return ", ".join(parts) or "everything"

    @admin.display(description="Last 10 notifications")
    def recent_deliveries(self, obj: NotificationSubscription) -> str:
        if obj.pk is None:
            return "-"
        rows = [
            (
                admin_link(delivery, precise_time(delivery.created_at)),
                delivery.get_status_display(),
                delivery.subject,
            )
            for delivery in obj.deliveries.order_by("-created_at", "-id")[:10]
        ]
        if not rows:
            return "none yet"
        return format_html(
            "<table><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.action(description="Send a test notification", permissions=["change"])
    def send_test(self, request: HttpRequest, queryset: QuerySet[NotificationSubscription]):
        for subscription in queryset:
            delivery = services.notification_test_send(subscription=subscription)
            if delivery.status == DeliveryStatus.SENT:
                self.message_user(request, f"{subscription}: test sent to {delivery.recipient}.")
            else:
                answer = f": {delivery.response_body[:200]}" if delivery.response_body else ""
                self.message_user(
                    request,
                    f"{subscription}: test not delivered ({delivery.error}{answer}).",
                    messages.ERROR,
                )


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at",
        "kind",
        "subject",
        "channel",
        "recipient",
        "status",
        "attempts",
        "response_status",
        "repeats",
    )
    list_filter = ("status", "kind", "channel")
    search_fields = ("event_key", "recipient", "subject")
    search_help_text = "Part of the event key (e.g. contract:12), the recipient or the subject."
    list_select_related = ("subscription",)
    date_hierarchy = "created_at"
    show_full_result_count = False
    fields = (
        "subscription",
        "kind",
        "event_key",
        "channel",
        "recipient",
        "subject",
        "repeats",
        "status",
        "attempts",
        "created_at",
        "last_attempt_at",
        "sent_at",
        "response_status",
        "error",
        "latency_ms",
        "response_body_display",
        "payload_display",
        "attempt_log_display",
    )
    readonly_fields = ("response_body_display", "payload_display", "attempt_log_display")
    actions = ("send_again",)

    def has_send_again_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notifications.change_notificationdelivery")

    @admin.action(description="Send selected notifications again", permissions=["send_again"])
    def send_again(self, request: HttpRequest, queryset: QuerySet[NotificationDelivery]) -> None:
        copies = [
            services.delivery_resend(delivery=d) for d in queryset.select_related("subscription")
        ]
        sent = [c for c in copies if c is not None]
        if sent:
            self.message_user(request, f"Queued {len(sent)} notification(s) again.")
        if len(sent) < len(copies):
            self.message_user(
                request,
                f"{len(copies) - len(sent)} not queued: their subscription is gone or off.",
                messages.WARNING,
            )

    @admin.display(description="Answer")
    def response_body_display(self, obj: NotificationDelivery) -> str:
        return preformatted(obj.response_body)

    @admin.display(description="What was sent")
    def payload_display(self, obj: NotificationDelivery) -> str:
        return pretty_json(obj.payload)

    @admin.display(description="Attempts, oldest first")
    def attempt_log_display(self, obj: NotificationDelivery) -> str:
        return pretty_json(obj.attempt_log)
