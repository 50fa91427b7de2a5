"""Routing runs (auctions), every ping and post attempt, sales, and contract health."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from buyers.models import Buyer, Contract, EndpointKind
from leads.models import Lead


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


class AttemptRecord(models.Model):
    """A ping or post sent to a buyer, as sent (secrets masked) and as answered: a routing run's
    (Attempt) or an inbound ping's (exchange.PingAttempt), shown by one timeline."""

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
    captures = models.JSONField(
        default=dict,
        blank=True,
        help_text="What the response rule's captures read from the answer; a ping's reach "
        "the post.",
    )
    error = models.TextField(blank=True)

    class Meta:
        abstract = True


class Attempt(AttemptRecord):
    """One ping or post of a routing run."""

    auction = models.ForeignKey(Auction, on_delete=models.CASCADE, related_name="attempts")
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="attempts")
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="attempts")

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
