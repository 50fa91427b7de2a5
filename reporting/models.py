"""Hourly rollups of leads, sales and attempts for the dashboards, and returns of sold leads.

Every rollup row is keyed by the hour the lead was *received* (UTC) and its vertical and source
(and buyer, where there is one; leads and sales also by the lead's score tier): a figure for a
period is about the leads received in it, so a sale a minute after midnight or a return a week
later changes the hour its lead came in. Rows of an hour are rebuilt whole (reporting.rollup),
never incremented, so rebuilding is idempotent.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.db import models

from buyers.models import Buyer
from config.api_keys import ApiKey
from leads.models import Source, Vertical
from leads.scoring import Tier
from routing.models import Sale


class RollupState(models.Model):
    """The one row saying up to when the rollups have looked for changes."""

    watermark = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_hours = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "rollup state"
        verbose_name_plural = "rollup state"
        permissions = [
            ("view_dashboard", "Can view the delivery dashboards and reports"),
            ("view_unmasked_pii", "Can export leads with e-mail and phone unmasked"),
        ]

    def __str__(self) -> str:
        return f"Rollups current to {self.watermark:%Y-%m-%d %H:%M:%S}" if self.watermark else "-"


class DirtyHour(models.Model):
    """An hour whose rollup rows must be rebuilt (a late post, a return, a re-route)."""

    hour = models.DateTimeField(unique=True)
    marked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["hour"]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00}"


# Histograms, for percentiles over periods too long to sort every value: the upper bounds
# (exclusive) of the buckets; the last bucket holds everything above the last bound.
PING_MS_BOUNDS = (10, 20, 30, 40, 50, 75, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500)
PING_MS_BOUNDS += (2000, 3000, 5000)
SALE_SECONDS_BOUNDS = (1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1800, 3600)
SALE_SECONDS_BOUNDS += (7200, 21600, 86400)


def bucket_names(prefix: str, bounds: tuple[int, ...]) -> list[str]:
    return [f"{prefix}_{index:02d}" for index in range(len(bounds) + 1)]


def _histogram(name: str, prefix: str, bounds: tuple[int, ...], unit: str) -> type[models.Model]:
    """An abstract model with one count per bucket: {prefix}_00 below bounds[0], and so on."""
    attrs: dict = {"__module__": __name__, "Meta": type("Meta", (), {"abstract": True})}
    for index, field in enumerate(bucket_names(prefix, bounds)):
        low = bounds[index - 1] if index else 0
        high = f"under {bounds[index]}" if index < len(bounds) else "and more"
        attrs[field] = models.PositiveIntegerField(default=0, help_text=f"{low} {unit} {high}")
    return type(name, (models.Model,), attrs)


PingLatencyHistogram = _histogram("PingLatencyHistogram", "ping_ms", PING_MS_BOUNDS, "ms")
SaleDelayHistogram = _histogram("SaleDelayHistogram", "sale_s", SALE_SECONDS_BOUNDS, "s")


def describe(row: models.Model, moment) -> str:
    return f"{row._meta.verbose_name} {moment:%Y-%m-%d %H:00}, source {row.source_id}"


class Dimensions(models.Model):
    vertical = models.ForeignKey(
        Vertical, null=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+", db_index=False)

    class Meta:
        abstract = True


def _tier() -> models.CharField:
    return models.CharField(
        max_length=9,
        choices=Tier.choices,
        blank=True,
        default="",
        help_text="The leads' score tier; empty: not scored.",
    )


class LeadFigures(Dimensions):
    """Leads received from one source in one vertical, of one tier, by what became of them."""

    tier = _tier()
    received = models.PositiveIntegerField(default=0)
    accepted = models.PositiveIntegerField(default=0)
    invalid = models.PositiveIntegerField(default=0)
    duplicate = models.PositiveIntegerField(default=0)
    sold = models.PositiveIntegerField(default=0, help_text="Leads sold at least once.")
    unsold = models.PositiveIntegerField(default=0)
    missing_sub_id = models.PositiveIntegerField(default=0)
    missing_consent = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class SaleFigures(Dimensions, SaleDelayHistogram):
    """Sales of the leads, per buyer and the leads' tier; the histogram is of seconds from
    receipt to sale."""

    buyer = models.ForeignKey(Buyer, on_delete=models.CASCADE, related_name="+", db_index=False)
    tier = _tier()
    sales = models.PositiveIntegerField(default=0, help_text="Sales made, returned or not.")
    returns = models.PositiveIntegerField(default=0)
    gross_revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    revenue = models.DecimalField(
        max_digits=14, decimal_places=2, default=0, help_text="Of the sales not returned."
    )
    payout = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        default=0,
        help_text="Owed to sources: kept sales, and returned ones whose payout stands.",
    )

    class Meta:
        abstract = True


class AttemptFigures(Dimensions, PingLatencyHistogram):
    """Pings and posts for the leads, per buyer; the histogram is of ping latencies."""

    buyer = models.ForeignKey(Buyer, on_delete=models.CASCADE, related_name="+", db_index=False)
    pings = models.PositiveIntegerField(default=0)
    bids = models.PositiveIntegerField(default=0)
    posts = models.PositiveIntegerField(default=0)
    posts_accepted = models.PositiveIntegerField(default=0)
    posts_rejected = models.PositiveIntegerField(default=0)
    posts_failed = models.PositiveIntegerField(default=0, help_text="Errors and timeouts.")

    class Meta:
        abstract = True


class RejectionFigures(Dimensions):
    """Rejected posts of the leads, per buyer and reason (the top reasons)."""

    buyer = models.ForeignKey(Buyer, on_delete=models.CASCADE, related_name="+", db_index=False)
    reason = models.CharField(max_length=500, blank=True)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class PingFigures(Dimensions):
    """Inbound pings (exchange/) from one source in one vertical: received, bid, posted."""

    pings = models.PositiveIntegerField(default=0, help_text="Pings received, refused ones too.")
    bids = models.PositiveIntegerField(default=0, help_text="Pings answered with a price.")
    posted = models.PositiveIntegerField(default=0, help_text="Pings whose lead was posted.")

    class Meta:
        abstract = True


# Hourly rows serve periods of a few hours or days; daily rows (sums of the hourly ones) serve
# periods of whole days, with 24 times fewer rows to add up.


class Hourly(models.Model):
    hour = models.DateTimeField()

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["hour"], name="%(class)s_hour")]

    def __str__(self) -> str:
        return describe(self, self.hour)


class Daily(models.Model):
    day = models.DateTimeField(help_text="00:00 UTC of the day.")

    class Meta:
        abstract = True
        indexes = [models.Index(fields=["day"], name="%(class)s_day")]

    def __str__(self) -> str:
        return describe(self, self.day)


# Each takes its Meta (the index on its hour or day) from Hourly or Daily, named first.
class LeadHour(Hourly, LeadFigures):
    pass


class LeadDay(Daily, LeadFigures):
    pass


class SaleHour(Hourly, SaleFigures):
    pass


class SaleDay(Daily, SaleFigures):
    pass


class AttemptHour(Hourly, AttemptFigures):
    pass


class AttemptDay(Daily, AttemptFigures):
    pass


class RejectionHour(Hourly, RejectionFigures):
    pass


class RejectionDay(Daily, RejectionFigures):
    pass


class PingHour(Hourly, PingFigures):
    hour = models.DateTimeField(help_text="The hour the pings were received (UTC).")


class PingDay(Daily, PingFigures):
    pass


class ReturnReason(models.TextChoices):
    BAD_PHONE = "bad_phone", "Bad phone"
    DUPLICATE = "duplicate", "Duplicate"
    NOT_INTERESTED = "not_interested", "Not interested"
    FRAUD = "fraud", "Fraud"
    OTHER = "other", "Other (see note)"


class SaleReturn(models.Model):
    """A sold lead sent back by its buyer: why, by whom, and whether the source keeps its payout."""

    sale = models.OneToOneField(Sale, on_delete=models.CASCADE, related_name="return_record")
    reason = models.CharField(max_length=16, choices=ReturnReason.choices)
    note = models.TextField(blank=True)
    payout_reversed = models.BooleanField(
        help_text="The source's payout was taken back too, as its terms said at the time."
    )
    returned_by = models.CharField(max_length=150, help_text="A buyer key or a staff user.")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Return of sale {self.sale_id}: {self.get_reason_display()}"


class TokenScope(models.TextChoices):
    READ = "read", "Read"
    READ_WRITE = "read_write", "Read and write"


class StaffToken(ApiKey):
    """A staff user's API token (reports, and the configuration API's writes when it may).

    It acts as its user, with the user's own permissions (Sales see personal data masked), within
    its scope. Only its SHA-256 is stored; the token itself is shown once.
    """

    owner_field = "user"
    kind = "lst_"
    # DRF's 40-hex tokens, hashed by migration 0005: they keep working until revoked.
    legacy_key_re = re.compile(r"[0-9a-f]{40}")

    name = models.CharField(max_length=120, help_text="What the token is for (e.g. the BI tool).")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_tokens"
    )
    scope = models.CharField(
        max_length=10,
        choices=TokenScope.choices,
        default=TokenScope.READ,
        help_text="Read: GET requests only. Read and write: changes too, as far as the user's "
        "own permissions go.",
    )

    class Meta(ApiKey.Meta):
        verbose_name = "staff API token"

    @property
    def may_write(self) -> bool:
        return self.scope == TokenScope.READ_WRITE
