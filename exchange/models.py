"""Inbound pings: a seller's anonymous bid request, the bids held for its post, and its timeline."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from buyers.models import Contract
from leads.models import Lead, Source, SourceApiKey, Vertical
from routing.models import AttemptRecord


class PingStatus(models.TextChoices):
    BID = "bid", "Bid"
    NO_BID = "no_bid", "No bid"
    DUPLICATE = "duplicate", "Duplicate"
    INVALID = "invalid", "Invalid"
    FORBIDDEN = "forbidden", "Forbidden"


class InboundPing(models.Model):
    """One ping of a seller: what it sent (no personal data), who was eligible, who bid, the price
    offered, until when it is held, and the lead its post became."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="pings")
    api_key = models.ForeignKey(
        SourceApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="pings"
    )
    vertical = models.ForeignKey(
        Vertical, null=True, blank=True, on_delete=models.PROTECT, related_name="pings"
    )
    status = models.CharField(max_length=10, choices=PingStatus.choices)
    reason = models.CharField(max_length=500, blank=True)
    errors = models.JSONField(default=dict, blank=True)
    is_test = models.BooleanField(default=False)
    sub_id = models.CharField(max_length=255, blank=True)
    fields = models.JSONField(
        default=dict, blank=True, help_text="The ping's fields as sent, normalised."
    )
    email_sha256 = models.CharField(max_length=64, blank=True)
    phone_sha256 = models.CharField(max_length=64, blank=True)
    raw_body = models.TextField(
        blank=True, help_text="The request body; values of personal fields sent by mistake removed."
    )
    remote_ip = models.GenericIPAddressField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    eligible_count = models.PositiveIntegerField(default=0)
    explanation = models.JSONField(
        default=list, blank=True, help_text="Per contract: eligible, or the rule that excluded it."
    )
    held_bids = models.JSONField(
        default=list,
        blank=True,
        help_text="The usable bids in the order the post tries them, with their buyers' answers.",
    )
    price = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="Offered to the seller."
    )
    buyer_price = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="The best bid."
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    lead = models.OneToOneField(
        Lead, null=True, blank=True, on_delete=models.SET_NULL, related_name="ping"
    )
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["source", "-received_at"], name="ping_source_received"),
            models.Index(fields=["vertical", "-received_at"], name="ping_vertical_received"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gte=0), name="ping_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"Ping {self.pk}"


class PingAttempt(AttemptRecord):
    """One buyer pinged for an inbound ping, or a fixed-price contract's bid."""

    ping = models.ForeignKey(InboundPing, on_delete=models.CASCADE, related_name="attempts")
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="ping_attempts")

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["ping", "created_at"], name="ping_attempt_ping_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.contract_id}: {self.get_outcome_display()}"
