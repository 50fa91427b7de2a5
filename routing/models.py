"""Routing runs (auctions), every ping and post attempt, sales, and ops notifications."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from buyers.fields import EncryptedTextField
from buyers.models import Buyer, Contract, EndpointKind
from leads.models import Lead, Source
from outbound.guard import webhook_url_refusal


class AuctionStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SOLD = "sold", "Sold"
    UNSOLD = "unsold", "Unsold"
    FAILED = "failed", "Failed"


class Auction(models.Model):
    """One routing run of one lead: who was eligible, who bid, who bought."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="auctions")
    status = models.CharField(
        max_length=8, choices=AuctionStatus.choices, default=AuctionStatus.RUNNING
    )
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    eligible_count = models.PositiveIntegerField(default=0)
    explanation = models.JSONField(
        default=list, blank=True, help_text="Per contract: eligible, or the rule that excluded it."
    )
    note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["lead", "-started_at"], name="auction_lead_started")]

    def __str__(self) -> str:
        return f"Auction {self.pk} of lead {self.lead_id}"

    @property
    def duration_ms(self) -> int | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds() * 1000)


class AttemptOutcome(models.TextChoices):
    BID = "bid", "Bid"
    DECLINED = "declined", "Declined"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"
    ERROR = "error", "Error"
    TIMEOUT = "timeout", "Timed out"
    AMBIGUOUS = "ambiguous", "Ambiguous (sent, no answer)"


class Attempt(models.Model):
    """One ping or post sent to a buyer, as sent (secrets masked) and as answered."""

    auction = models.ForeignKey(Auction, on_delete=models.CASCADE, related_name="attempts")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="attempts")
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="attempts")
    kind = models.CharField(max_length=4, choices=EndpointKind.choices)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    url = models.CharField(max_length=1000, help_text="Query-string secrets masked.")
    method = models.CharField(max_length=6, default="POST")
    request_headers = models.JSONField(default=dict, blank=True)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="Truncated to 64 KiB.")
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices)
    price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    buyer_reference = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["lead", "created_at"], name="attempt_lead_created"),
            models.Index(fields=["contract", "-created_at"], name="attempt_contract_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gte=0), name="attempt_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.contract_id}: {self.get_outcome_display()}"


class SaleStatus(models.TextChoices):
    SOLD = "sold", "Sold"
    RETURNED = "returned", "Returned"


class Sale(models.Model):
    """A lead bought by a buyer: what it earned, what the source is paid, and the margin."""

    lead = models.ForeignKey(Lead, on_delete=models.PROTECT, related_name="sales")
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="sales")
    # Denormalised from contract so the database can forbid selling one lead twice to a buyer.
    buyer = models.ForeignKey(Buyer, on_delete=models.PROTECT, related_name="sales")
    auction = models.ForeignKey(
        Auction, null=True, blank=True, on_delete=models.SET_NULL, related_name="sales"
    )
    status = models.CharField(max_length=8, choices=SaleStatus.choices, default=SaleStatus.SOLD)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    payout = models.DecimalField(max_digits=10, decimal_places=2)
    buyer_reference = models.CharField(max_length=255, blank=True)
    sold_at = models.DateTimeField(auto_now_add=True, db_index=True)
    returned_at = models.DateTimeField(null=True, blank=True)
    return_reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-sold_at"]
        constraints = [
            models.UniqueConstraint(fields=["lead", "buyer"], name="one_sale_per_lead_and_buyer"),
            models.CheckConstraint(condition=Q(price__gte=0), name="sale_price_not_negative"),
            models.CheckConstraint(condition=Q(payout__gte=0), name="sale_payout_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Lead {self.lead_id} to {self.buyer} at ${self.price}"

    @property
    def margin(self):
        return self.price - self.payout


class HealthStatus(models.TextChoices):
    CLOSED = "closed", "Healthy"
    OPEN = "open", "Auto-paused (circuit open)"
    HALF_OPEN = "half_open", "Probing (half-open)"


class ContractHealth(models.Model):
    """A contract's circuit breaker: its state (routing.breaker) as the workers share it."""

    contract = models.OneToOneField(Contract, on_delete=models.CASCADE, related_name="health")
    status = models.CharField(
        max_length=9, choices=HealthStatus.choices, default=HealthStatus.CLOSED, db_index=True
    )
    reason = models.CharField(max_length=255, blank=True)
    state = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "contract health"
        verbose_name_plural = "contract health"

    def __str__(self) -> str:
        return f"{self.contract}: {self.get_status_display()}"


class HealthEvent(models.Model):
    """One change of a contract's breaker: opened, probing, closed, or forced by ops."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="health_events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=9, choices=HealthStatus.choices)
    reason = models.CharField(max_length=255, blank=True)
    actor = models.CharField(max_length=150, blank=True, help_text="Who, when ops forced it.")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["contract", "-at"], name="health_event_contract_at")]

    def __str__(self) -> str:
        return f"{self.contract_id} {self.status} at {self.at:%Y-%m-%d %H:%M:%S}"


# --- Notifications for ops (routing/notifications.py) ------------------------------------------


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


class NotificationChannel(models.TextChoices):
    EMAIL = "email", "E-mail"
    SLACK = "slack", "Slack (incoming webhook)"


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


def webhook_display(url: str) -> str:
    """Return a webhook URL with its secret path hidden: 'hooks.slack.com/services/T0…/••••'."""
    if not url:
        return ""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    shown = "/".join(segments[:2]) if len(segments) > 2 else ""
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{host}/{shown}/••••" if shown else f"{host}/••••"


class NotificationWindow(models.Model):
    """The de-duplication of one event key for one subscription.

    `opened_at` is when this key was last told; until `dedup_minutes` later its repeats are only
    counted. Claimed with one conditional insert-or-update (routing.notifications.window_claim).
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


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class NotificationDelivery(models.Model):
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
    channel = models.CharField(max_length=5, choices=NotificationChannel.choices)
    recipient = models.CharField(max_length=255, help_text="Address, or the webhook (masked).")
    subject = models.CharField(max_length=255, help_text="The one-line summary.")
    payload = models.JSONField(
        default=dict, help_text="Slack: the JSON posted; e-mail: subject, recipients and body."
    )
    repeats = models.PositiveIntegerField(
        default=0, help_text="Repeats of this event since it was last told, reported here."
    )
    status = models.CharField(
        max_length=7, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True, help_text="The last answer, truncated to 4 KiB.")
    error = models.CharField(max_length=500, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    attempt_log = models.JSONField(
        default=list, blank=True, help_text="Every attempt: when, answer, error, latency."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "notification deliveries"
        indexes = [
            models.Index(fields=["status", "created_at"], name="notification_status_created"),
            models.Index(fields=["subscription", "-created_at"], name="notification_sub_created"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.recipient}: {self.get_status_display()}"
