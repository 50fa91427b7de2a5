"""Notifications for ops: who is told of which events and how (subscriptions), the
de-duplication windows, and every message sent (deliveries)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from buyers.fields import EncryptedTextField
from buyers.models import Buyer, Contract
from config.masking import webhook_display
from leads.models import Source
from notifications.channels import (
    MessageChannel,
    MessageStatus,
    RecordedMessage,
    webhook_url_refusal,
)


class NotificationKind(models.TextChoices):
    BUYER_PAUSED = "buyer_paused", "Buyer auto-paused (circuit breaker opened)"
    BUYER_RESTORED = "buyer_restored", "Buyer restored (circuit breaker closed)"
    CAP_REACHED = "cap_reached", "Cap reached"
    SOURCE_ERROR_RATE = "source_error_rate", "Source error rate at or above a threshold"
    SOURCE_DUPLICATE_RATE = "source_duplicate_rate", "Source duplicate rate at or above a threshold"
    LEADS_STUCK = "leads_stuck", "Leads stuck in routing"
    POSTBACK_FAILED = "postback_failed", "Postback given up"
    TEST = "test", "Test notification"


# What a subscription may ask for: every kind but the test an admin sends by hand.
SUBSCRIBABLE_KINDS = tuple(kind for kind in NotificationKind if kind != NotificationKind.TEST)
# Measured by the beat task over each subscription's window, against its own thresholds.
RATE_KINDS = (NotificationKind.SOURCE_ERROR_RATE, NotificationKind.SOURCE_DUPLICATE_RATE)


# The names every recorded message (here and in teams) stores its channel and status under.
NotificationChannel = MessageChannel
DeliveryStatus = MessageStatus


class NotificationSubscription(models.Model):
    """Who is told of which ops events, through which channel, and how often at most."""

    name = models.CharField(max_length=120, help_text="E.g. 'Ops on-call Slack', 'Ana: caps'.")
    active = models.BooleanField(default=True)
    channel = models.CharField(max_length=5, choices=NotificationChannel.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_subscriptions",
        help_text="E-mail: this user, at the address on their account when it is sent.",
    )
    email = models.EmailField(blank=True, help_text="E-mail: or this address (a team list).")
    slack_webhook_url = EncryptedTextField(
        blank=True,
        help_text="Slack: the channel's incoming-webhook URL (kept encrypted; it is a secret).",
    )
    kinds = models.JSONField(default=list, help_text="The events it is told of.")
    buyer = models.ForeignKey(
        Buyer,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_subscriptions",
        help_text="Only this buyer's events (its contracts' breakers and caps, its own caps).",
    )
    contract = models.ForeignKey(
        Contract,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_subscriptions",
        help_text="Only this contract's events (and its buyer's caps, which stop it too).",
    )
    source = models.ForeignKey(
        Source,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notification_subscriptions",
        help_text="Only this source's events (error and duplicate rates, postbacks).",
    )
    error_rate_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("20.00"),
        help_text="Source error rate: tell when invalid leads reach this share of a source's "
        "leads.",
    )
    duplicate_rate_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("30.00"),
        help_text="Source duplicate rate: tell when duplicates reach this share of its leads.",
    )
    rate_window_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(5), MaxValueValidator(24 * 60)],
        help_text="Rates are measured over the last this many minutes.",
    )
    rate_min_leads = models.PositiveIntegerField(
        default=20,
        validators=[MinValueValidator(1)],
        help_text="A rate counts only over at least this many leads (one bad lead is no alert).",
    )
    dedup_minutes = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(7 * 24 * 60)],
        help_text="The same event about the same buyer, cap or source is told at most once per "
        "this many minutes; repeats are counted and told with the next one.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(error_rate_percent__gte=0) & Q(error_rate_percent__lte=100),
                name="notification_error_rate_is_a_percentage",
            ),
            models.CheckConstraint(
                condition=Q(duplicate_rate_percent__gte=0) & Q(duplicate_rate_percent__lte=100),
                name="notification_duplicate_rate_is_a_percentage",
            ),
            models.CheckConstraint(
                condition=Q(dedup_minutes__gte=1), name="notification_dedup_at_least_a_minute"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def recipient(self) -> str:
        """Where it is sent, as the admin and the delivery log show it (no secret)."""
        if self.channel == NotificationChannel.SLACK:
            return webhook_display(self.slack_webhook_url)
        if self.user_id is not None:
            return self.user.email
        return self.email

    def clean(self) -> None:
        errors: dict[str, str] = {}
        unknown = [k for k in self.kinds or [] if k not in SUBSCRIBABLE_KINDS]
        if not isinstance(self.kinds, list) or unknown:
            errors["kinds"] = f"Unknown events: {', '.join(map(str, unknown))}."
        elif not self.kinds:
            errors["kinds"] = "Choose at least one event."
        if self.channel == NotificationChannel.SLACK:
            errors.update(self._slack_errors())
        elif self.channel == NotificationChannel.EMAIL:
            errors.update(self._email_errors())
        if (
            self.contract_id is not None
            and self.buyer_id is not None
            and self.contract.buyer_id != self.buyer_id
        ):
            errors["contract"] = f"This contract belongs to {self.contract.buyer}."
        if errors:
            raise ValidationError(errors)

    def _slack_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not self.slack_webhook_url:
            errors["slack_webhook_url"] = "A Slack subscription needs its webhook URL."
        else:
            refusal = webhook_url_refusal(self.slack_webhook_url)
            if refusal:
                errors["slack_webhook_url"] = refusal
        if self.user_id is not None or self.email:
            errors["channel"] = (
                "A Slack subscription posts to its webhook: leave user and e-mail empty."
            )
        return errors

    def _email_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.slack_webhook_url:
            errors["slack_webhook_url"] = "An e-mail subscription has no webhook URL."
        if self.user_id is not None and self.email:
            errors["email"] = "Give a user or an e-mail address, not both."
        elif self.user_id is None and not self.email:
            errors["email"] = "Give a user or an e-mail address."
        elif self.user_id is not None and not self.user.email:
            errors["user"] = f"{self.user} has no e-mail address: add one to their account."
        return errors


class NotificationWindow(models.Model):
    """The de-duplication of one event key for one subscription.

    `opened_at` is when this key was last told; until `dedup_minutes` later its repeats are only
    counted. Claimed with one conditional insert-or-update (notifications.services.window_claim).
    """

    subscription = models.ForeignKey(
        NotificationSubscription, on_delete=models.CASCADE, related_name="windows"
    )
    event_key = models.CharField(max_length=255)
    opened_at = models.DateTimeField()
    # Which occurrence opened the window: of racing occurrences, the one whose token stuck won.
    claim = models.BigIntegerField()
    suppressed = models.PositiveIntegerField(default=0, help_text="Repeats since opened_at.")
    last_seen_at = models.DateTimeField()
    last_event = models.JSONField(
        default=dict, blank=True, help_text="The latest repeat, told when the window closes."
    )
    # What the notification that opened this window reported of the window before it.
    carried_suppressed = models.PositiveIntegerField(default=0)
    carried_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "event_key"], name="one_notification_window_per_key"
            ),
        ]
        indexes = [
            # The sweep looks only at windows holding repeats nobody has been told of yet.
            models.Index(
                fields=["opened_at"],
                condition=Q(suppressed__gt=0),
                name="notification_window_repeats",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_key} for subscription {self.subscription_id}"


class NotificationDelivery(RecordedMessage):
    """One notification to one subscription: what was sent, where, and how each attempt went."""

    subscription = models.ForeignKey(
        NotificationSubscription,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
    )
    kind = models.CharField(max_length=24, choices=NotificationKind.choices)
    event_key = models.CharField(max_length=255, help_text="Event and subject: what is de-duped.")
    subject = models.CharField(max_length=255, help_text="The one-line summary.")
    repeats = models.PositiveIntegerField(
        default=0, help_text="Repeats of this event since it was last told, reported here."
    )
    response_body = models.TextField(blank=True, help_text="The last answer, truncated to 4 KiB.")
    attempt_log = models.JSONField(
        default=list, blank=True, help_text="Every attempt: when, answer, error, latency."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"
        indexes = [
            models.Index(fields=["status", "created_at"], name="notification_status_created"),
            models.Index(fields=["subscription", "-created_at"], name="notification_sub_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient}: {self.get_status_display()}"
