"""Buyers and their contracts: price, caps, schedule, territory, criteria, delivery and mapping."""

from __future__ import annotations

import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    validate_email,
)
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from buyers.delivery_checks import delivery_check
from buyers.fields import EncryptedTextField, mask
from config.api_keys import ApiKey
from config.time_zones import time_zone_names
from leads.geo import zip_lookup
from leads.models import HttpsAssumedUrlField, Vertical
from leads.states import parse_states
from outbound.guard import url_refusal

ZIP_RE = re.compile(r"^\d{5}$")
# Header names that carry credentials: refused in the plain headers, masked in attempt logs.
SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "password", "signature", "cookie")
HEADER_NAME_RE = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
# A template naming one of the contract's secrets: {{ secrets.api_key }}.
SECRET_REFERENCE_RE = re.compile(r"\bsecrets\s*(\.|\[)")
SECRET_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def validate_time_zone(value: str) -> None:
    if value not in time_zone_names():
        raise ValidationError(f"{value!r} is not an IANA time zone such as America/Chicago.")


def split_values(text: str) -> list[str]:
    """Split a pasted list on commas, semicolons and white space, dropping blanks."""
    # str.split() in C: compiling a vertical splits millions of pasted ZIP codes.
    return (text or "").replace(",", " ").replace(";", " ").split()


class Buyer(models.Model):
    """A company that buys leads through one or more contracts."""

    company = models.CharField(max_length=160, unique=True)
    active = models.BooleanField(default=True)
    time_zone = models.CharField(
        max_length=64,
        default="America/New_York",
        validators=[validate_time_zone],
        help_text="Schedules and caps are counted in this time zone.",
    )
    consent_names = models.CharField(
        max_length=500,
        blank=True,
        help_text="Other names consumers' consent may give this buyer, comma-separated "
        "(brands, legal names); the company name always counts.",
    )
    contact_name = models.CharField(max_length=120, blank=True)
    contact_email = models.EmailField(blank=True)
    contact_phone = models.CharField(max_length=32, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["company"]

    def __str__(self) -> str:
        return self.company

    @property
    def names_for_consent(self) -> list[str]:
        return [self.company, *(n.strip() for n in self.consent_names.split(",") if n.strip())]


class PriceModel(models.TextChoices):
    FIXED = "fixed", "Fixed price (direct post)"
    PING_POST = "ping_post", "Ping for bid, then post"


class DeliveryMethod(models.TextChoices):
    HTTP = "http", "Buyer's API (post endpoint and response rules)"
    WEBHOOK = "webhook", "Plain webhook (post endpoint; any 2xx answer accepts)"
    EMAIL = "email", "E-mail"
    TEAM = "team", "Internal sales team (assigned to a member)"


class ContractStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"


class SourceFilter(models.TextChoices):
    ALL = "all", "Every source"
    ALLOW = "allow", "Only the listed sources"
    BLOCK = "block", "Every source but the listed ones"


class BoughtScope(models.TextChoices):
    CONTRACT = "contract", "by this contract"
    BUYER = "buyer", "by any contract of this buyer"


class Contract(models.Model):
    """What one buyer buys in one vertical, and how the lead is delivered."""

    buyer = models.ForeignKey(Buyer, on_delete=models.CASCADE, related_name="contracts")
    vertical = models.ForeignKey(Vertical, on_delete=models.PROTECT, related_name="contracts")
    name = models.CharField(max_length=160)
    status = models.CharField(
        max_length=8, choices=ContractStatus.choices, default=ContractStatus.ACTIVE, db_index=True
    )
    paused_reason = models.CharField(max_length=255, blank=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    price_model = models.CharField(
        max_length=10, choices=PriceModel.choices, default=PriceModel.PING_POST
    )
    fixed_price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Price paid per lead under a fixed-price contract.",
    )
    floor_price = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0.00"),
        help_text="Bids below this are ignored.",
    )
    priority = models.PositiveSmallIntegerField(
        default=1, help_text="Ping tree tier: 1 is tried first."
    )
    weight = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Relative share under weighted distribution.",
    )
    exclusive = models.BooleanField(
        default=True, help_text="Buys leads that are sold to no other buyer."
    )
    accepts_test_leads = models.BooleanField(default=False)
    source_filter = models.CharField(
        max_length=5, choices=SourceFilter.choices, default=SourceFilter.ALL
    )
    sources = models.ManyToManyField(
        "leads.Source",
        blank=True,
        related_name="listed_in_contracts",
        help_text="The allow or block list, as the source filter says.",
    )
    refuse_bought_within_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(3650)],
        help_text="Refuse a consumer (same email or phone) bought within this many days.",
    )
    refuse_bought_scope = models.CharField(
        max_length=8, choices=BoughtScope.choices, default=BoughtScope.BUYER
    )
    consent_must_name_buyer = models.BooleanField(
        default=False,
        help_text="One-to-one consent: the lead's consent must name this buyer.",
    )
    requires_consent_certificate = models.BooleanField(
        default=False, help_text="The lead must carry a TrustedForm or Jornaya certificate."
    )
    bid_valid_seconds = models.PositiveIntegerField(
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(86400)],
        help_text="How long the buyer honours a bid; an older bid is pinged again before a post.",
    )
    delivery_method = models.CharField(
        max_length=7,
        choices=DeliveryMethod.choices,
        default=DeliveryMethod.HTTP,
        help_text="How a bought lead reaches the buyer.",
    )
    delivery_emails = models.CharField(
        max_length=500,
        blank=True,
        help_text="E-mail delivery: the addresses the lead is sent to, comma-separated.",
    )
    team = models.ForeignKey(
        "teams.Team",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="contracts",
        help_text="Team delivery: the internal team whose members are assigned the leads.",
    )
    breaker_failures = models.PositiveSmallIntegerField(
        default=5,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Consecutive failed pings or posts that pause the contract automatically.",
    )
    latency_limit_ms = models.PositiveIntegerField(
        default=200,
        validators=[MinValueValidator(1), MaxValueValidator(60000)],
        help_text="A ping slower than this counts as slow.",
    )
    latency_strikes = models.PositiveSmallIntegerField(
        default=10,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Consecutive slow pings that pause the contract automatically.",
    )
    breaker_cool_down_s = models.PositiveIntegerField(
        "breaker cool-down (s)",
        default=60,
        validators=[MinValueValidator(1), MaxValueValidator(86400)],
        help_text="Seconds a paused contract waits before one lead probes it; doubles after "
        "each failed probe.",
    )
    breaker_max_cool_down_s = models.PositiveIntegerField(
        "longest breaker cool-down (s)",
        default=900,
        validators=[MinValueValidator(1), MaxValueValidator(86400)],
        help_text="The doubling cool-down never exceeds this.",
    )
    return_window_days = models.PositiveSmallIntegerField(
        default=7,
        validators=[MaxValueValidator(365)],
        help_text="Days after a sale in which the buyer may return the lead; 0 refuses returns.",
    )
    max_return_rate = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
        help_text="Most returns allowed, as a percentage of the sales of the last 30 days; "
        "blank for no limit.",
    )
    min_lead_age_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only leads at least this old (aged-lead contracts)."
    )
    max_lead_age_minutes = models.PositiveIntegerField(
        null=True, blank=True, help_text="Only leads younger than this (real-time contracts)."
    )
    preset = models.CharField(
        max_length=64,
        blank=True,
        help_text="The integration preset this contract's delivery was filled from, if any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[sources])

    class Meta:
        ordering = ["vertical", "priority", "buyer__company", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["buyer", "vertical", "name"], name="unique_contract_name_per_buyer"
            ),
            models.CheckConstraint(
                condition=Q(fixed_price__isnull=True) | Q(fixed_price__gte=0),
                name="contract_fixed_price_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(floor_price__gte=0), name="contract_floor_not_negative"
            ),
            models.CheckConstraint(
                condition=~Q(price_model="fixed") | Q(fixed_price__isnull=False),
                name="fixed_contract_has_price",
            ),
            models.CheckConstraint(condition=Q(weight__gte=1), name="contract_weight_positive"),
            models.CheckConstraint(
                condition=Q(min_lead_age_minutes__isnull=True)
                | Q(max_lead_age_minutes__isnull=True)
                | Q(min_lead_age_minutes__lt=models.F("max_lead_age_minutes")),
                name="contract_lead_age_range",
            ),
        ]
        indexes = [models.Index(fields=["vertical", "status"], name="contract_vertical_status")]

    def __str__(self) -> str:
        return f"{self.buyer} · {self.name}"

    def clean(self) -> None:
        if self.price_model == PriceModel.FIXED and self.fixed_price is None:
            raise ValidationError({"fixed_price": "A fixed-price contract needs its price."})
        if self.status == ContractStatus.PAUSED and not self.paused_reason:
            raise ValidationError({"paused_reason": "Say why the contract is paused."})
        if self.delivery_method == DeliveryMethod.EMAIL:
            addresses = self.delivery_email_list
            if not addresses:
                raise ValidationError({"delivery_emails": "Give the addresses to e-mail leads to."})
            for address in addresses:
                try:
                    validate_email(address)
                except ValidationError:
                    raise ValidationError(
                        {"delivery_emails": f"{address!r} is not an e-mail address."}
                    ) from None
            if self.price_model != PriceModel.FIXED:
                raise ValidationError(
                    {"delivery_method": "E-mail delivery has no ping: use a fixed price."}
                )
        self._clean_team_delivery()
        if (
            self.min_lead_age_minutes is not None
            and self.max_lead_age_minutes is not None
            and self.min_lead_age_minutes >= self.max_lead_age_minutes
        ):
            raise ValidationError(
                {"max_lead_age_minutes": "The youngest age must be below the oldest."}
            )
        if self.breaker_max_cool_down_s < self.breaker_cool_down_s:
            raise ValidationError(
                {"breaker_max_cool_down_s": "The longest cool-down cannot be below the first."}
            )

    def _clean_team_delivery(self) -> None:
        if self.delivery_method != DeliveryMethod.TEAM:
            if self.team_id is not None:
                raise ValidationError(
                    {"team": "Only team delivery goes to a team: choose that delivery, or no team."}
                )
            return
        if self.team_id is None:
            raise ValidationError({"team": "Choose the team that is assigned the leads."})
        if self.price_model != PriceModel.FIXED:
            raise ValidationError(
                {"price_model": "A team is not pinged: use a fixed price (0.00 for your own team)."}
            )

    @property
    def is_active(self) -> bool:
        return self.status == ContractStatus.ACTIVE and self.buyer.active

    @property
    def delivery_email_list(self) -> list[str]:
        return [a.strip() for a in self.delivery_emails.split(",") if a.strip()]


class BuyerApiKey(ApiKey):
    """A buyer's API key (returns). Only its SHA-256 is stored; the key itself is shown once."""

    owner_field = "buyer"
    kind = "lbk_"

    buyer = models.ForeignKey(Buyer, on_delete=models.CASCADE, related_name="api_keys")

    history = HistoricalRecords(excluded_fields=["hashed_key"])

    class Meta(ApiKey.Meta):
        verbose_name = "buyer API key"


class CapPeriod(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"
    WEEK = "week", "Week"
    MONTH = "month", "Month"
    TOTAL = "total", "All time"


class CapLimit(models.Model):
    """A limit on leads and/or spend per period, counted in the buyer's time zone."""

    period = models.CharField(max_length=5, choices=CapPeriod.choices)
    max_leads = models.PositiveIntegerField(null=True, blank=True)
    max_budget = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)

    class Meta:
        abstract = True
        # Declared once for contract and buyer caps; %(class)s names each table's own.
        constraints = [
            models.CheckConstraint(
                condition=Q(max_leads__isnull=False) | Q(max_budget__isnull=False),
                name="%(class)s_has_a_limit",
            ),
            models.CheckConstraint(
                condition=Q(max_budget__isnull=True) | Q(max_budget__gte=0),
                name="%(class)s_budget_not_negative",
            ),
        ]

    def __str__(self) -> str:
        parts = []
        if self.max_leads is not None:
            parts.append(f"{self.max_leads} leads")
        if self.max_budget is not None:
            parts.append(f"${self.max_budget:,.2f}")
        return f"{' / '.join(parts)} per {self.get_period_display().lower()}"

    def clean(self) -> None:
        if self.max_leads is None and self.max_budget is None:
            raise ValidationError("Set a lead count, a budget, or both.")
        if self.max_budget is not None and self.max_budget < 0:
            raise ValidationError({"max_budget": "A budget cannot be negative."})


class ContractCap(CapLimit):
    """A cap on one contract."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="caps")

    history = HistoricalRecords()

    class Meta(CapLimit.Meta):
        ordering = ["contract", "period"]
        constraints = [
            *CapLimit.Meta.constraints,
            models.UniqueConstraint(fields=["contract", "period"], name="one_cap_per_period"),
        ]


class BuyerCap(CapLimit):
    """A cap on a buyer across all its contracts."""

    buyer = models.ForeignKey(Buyer, on_delete=models.CASCADE, related_name="caps")

    history = HistoricalRecords()

    class Meta(CapLimit.Meta):
        ordering = ["buyer", "period"]
        constraints = [
            *CapLimit.Meta.constraints,
            models.UniqueConstraint(fields=["buyer", "period"], name="one_buyer_cap_per_period"),
        ]


class CapCounter(models.Model):
    """What a contract or a buyer has bought in one cap period (held and committed sales)."""

    contract = models.ForeignKey(
        Contract, null=True, blank=True, on_delete=models.CASCADE, related_name="cap_counters"
    )
    buyer = models.ForeignKey(
        Buyer, null=True, blank=True, on_delete=models.CASCADE, related_name="cap_counters"
    )
    period = models.CharField(max_length=5, choices=CapPeriod.choices)
    period_start = models.DateTimeField(help_text="Start of the period in the buyer's time zone.")
    leads = models.PositiveIntegerField(default=0)
    spend = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(contract__isnull=False, buyer__isnull=True)
                | Q(contract__isnull=True, buyer__isnull=False),
                name="counter_counts_a_contract_or_a_buyer",
            ),
            models.UniqueConstraint(
                fields=["contract", "period", "period_start"],
                condition=Q(contract__isnull=False),
                name="one_counter_per_contract_period",
            ),
            models.UniqueConstraint(
                fields=["buyer", "period", "period_start"],
                condition=Q(buyer__isnull=False),
                name="one_counter_per_buyer_period",
            ),
            models.CheckConstraint(condition=Q(spend__gte=0), name="counter_spend_not_negative"),
        ]

    def __str__(self) -> str:
        owner = f"contract {self.contract_id}" if self.contract_id else f"buyer {self.buyer_id}"
        return f"{owner} {self.period} from {self.period_start:%Y-%m-%d %H:%M}: {self.leads} leads"


class ReservationStatus(models.TextChoices):
    HELD = "held", "Held while posting"
    COMMITTED = "committed", "Committed (sold)"
    RELEASED = "released", "Released"


class CapReservation(models.Model):
    """Cap room taken for a lead and contract: held before the post, then committed or released."""

    lead = models.ForeignKey(
        "leads.Lead", on_delete=models.CASCADE, related_name="cap_reservations"
    )
    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="reservations")
    status = models.CharField(
        max_length=9, choices=ReservationStatus.choices, default=ReservationStatus.HELD
    )
    price = models.DecimalField(max_digits=10, decimal_places=2)
    counters = models.ManyToManyField(CapCounter, blank=True, related_name="reservations")
    # The instant the caps were charged for (cap_reserve's `now`), not the INSERT's wall clock:
    # a reservation that waited on row locks across midnight still belongs to the day it charged.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["lead", "contract"],
                condition=~Q(status="released"),
                name="one_live_reservation_per_lead_and_contract",
            ),
            models.CheckConstraint(
                condition=Q(price__gte=0), name="reservation_price_not_negative"
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="reservation_status_age")]

    def __str__(self) -> str:
        return f"{self.get_status_display()}: lead {self.lead_id} for contract {self.contract_id}"


class ClosedDate(models.Model):
    """A day (in the buyer's time zone) when the contract buys nothing, such as a holiday."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="closed_dates")
    date = models.DateField()
    note = models.CharField(max_length=120, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "date"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "date"], name="one_closed_date_per_day"),
        ]

    def __str__(self) -> str:
        return f"Closed {self.date:%a %Y-%m-%d}" + (f" ({self.note})" if self.note else "")


class Weekday(models.IntegerChoices):
    MONDAY = 0, "Monday"
    TUESDAY = 1, "Tuesday"
    WEDNESDAY = 2, "Wednesday"
    THURSDAY = 3, "Thursday"
    FRIDAY = 4, "Friday"
    SATURDAY = 5, "Saturday"
    SUNDAY = 6, "Sunday"


class ScheduleWindow(models.Model):
    """Weekly open hours in the buyer's time zone. A contract without windows is always open."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="schedule")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    opens_at = models.TimeField()
    closes_at = models.TimeField(help_text="Exclusive; 23:59 means until midnight.")

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "weekday", "opens_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(opens_at__lt=models.F("closes_at")), name="window_opens_before_close"
            ),
            models.CheckConstraint(
                condition=Q(weekday__gte=0) & Q(weekday__lte=6), name="window_weekday_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_weekday_display()} {self.opens_at:%H:%M}–{self.closes_at:%H:%M}"

    def clean(self) -> None:
        if self.opens_at and self.closes_at and self.opens_at >= self.closes_at:
            raise ValidationError(
                {"closes_at": "Closes before it opens; split an overnight window in two days."}
            )


class TerritoryKind(models.TextChoices):
    STATES = "states", "States"
    ZIPS = "zips", "ZIP codes"
    RADIUS = "radius", "Radius around ZIP codes"


class TerritoryMode(models.TextChoices):
    INCLUDE = "include", "Only"
    EXCLUDE = "exclude", "Except"


class TerritoryRule(models.Model):
    """Where a contract buys: states, ZIP lists or a radius, included or excluded."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="territory")
    mode = models.CharField(
        max_length=8, choices=TerritoryMode.choices, default=TerritoryMode.INCLUDE
    )
    kind = models.CharField(max_length=8, choices=TerritoryKind.choices)
    values = models.TextField(
        help_text="State codes or 5-digit ZIP codes, separated by commas, spaces or new lines."
    )
    radius_miles = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(3000)]
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "mode", "kind"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind="radius") | Q(radius_miles__isnull=False),
                name="radius_rule_has_miles",
            ),
        ]

    def __str__(self) -> str:
        count = len(self.value_list)
        what = {
            TerritoryKind.STATES: f"{count} state(s)",
            TerritoryKind.ZIPS: f"{count} ZIP(s)",
            TerritoryKind.RADIUS: f"{self.radius_miles} mi around {count} ZIP(s)",
        }.get(self.kind, self.kind)
        return f"{self.get_mode_display()} {what}"

    @property
    def value_list(self) -> list[str]:
        if self.kind == TerritoryKind.STATES:
            # Stored values are codes already; names are read as typed before clean().
            return parse_states(self.values)[0]
        return split_values(self.values)

    def clean(self) -> None:
        if self.kind == TerritoryKind.STATES:
            values, bad = parse_states(self.values)
        else:
            values = split_values(self.values)
            bad = [v for v in values if not ZIP_RE.match(v)]
        if not values and not bad:
            raise ValidationError({"values": "List at least one value."})
        if bad:
            shown = ", ".join(bad[:10]) + (" …" if len(bad) > 10 else "")
            noun = (
                "US states (codes or names)"
                if self.kind == TerritoryKind.STATES
                else "5-digit ZIP codes"
            )
            raise ValidationError({"values": f"Not {noun}: {shown}"})
        if self.kind == TerritoryKind.RADIUS:
            unknown = [v for v in values if zip_lookup(v) is None]
            if unknown:
                shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
                raise ValidationError({"values": f"Unknown ZIP codes (no location): {shown}"})
        if self.kind == TerritoryKind.RADIUS and not self.radius_miles:
            raise ValidationError({"radius_miles": "A radius rule needs its distance in miles."})
        if self.kind != TerritoryKind.RADIUS and self.radius_miles:
            raise ValidationError({"radius_miles": "Only radius rules have a distance."})
        # Store the cleaned, de-duplicated list so the engine never re-parses sloppy input.
        self.values = "\n".join(dict.fromkeys(values))


class CriterionOperator(models.TextChoices):
    EQ = "eq", "equals"
    NE = "ne", "does not equal"
    IN = "in", "is one of"
    NOT_IN = "not_in", "is none of"
    GT = "gt", ">"
    GTE = "gte", ">="
    LT = "lt", "<"
    LTE = "lte", "<="
    BETWEEN = "between", "is between"
    EXISTS = "exists", "is present"
    MISSING = "missing", "is missing"
    REGEX = "regex", "matches regex"


NUMERIC_OPERATORS = {
    CriterionOperator.GT,
    CriterionOperator.GTE,
    CriterionOperator.LT,
    CriterionOperator.LTE,
    CriterionOperator.BETWEEN,
}


class FieldCriterion(models.Model):
    """A condition on a lead field that must hold for the contract to buy the lead."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="criteria")
    field = models.CharField(max_length=63, help_text="Lead field or enrichment, e.g. county.")
    operator = models.CharField(max_length=8, choices=CriterionOperator.choices)
    value = models.CharField(
        max_length=1000,
        blank=True,
        help_text="For 'is one of' a comma-separated list; for 'between' two numbers: 18, 65.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "field", "id"]
        verbose_name_plural = "field criteria"

    def __str__(self) -> str:
        if self.operator in {CriterionOperator.EXISTS, CriterionOperator.MISSING}:
            return f"{self.field} {self.get_operator_display()}"
        return f"{self.field} {self.get_operator_display()} {self.value}"

    @property
    def values(self) -> list[str]:
        return [v.strip() for v in self.value.split(",") if v.strip()]

    def clean(self) -> None:
        op = self.operator
        if op in {CriterionOperator.EXISTS, CriterionOperator.MISSING}:
            if self.value:
                raise ValidationError({"value": "This operator takes no value."})
            return
        if not self.value.strip():
            raise ValidationError({"value": "This operator needs a value."})
        if op in NUMERIC_OPERATORS:
            expected = 2 if op == CriterionOperator.BETWEEN else 1
            parts = self.values
            try:
                numbers = [Decimal(p) for p in parts]
            except ArithmeticError:
                numbers = []
            if len(numbers) != expected or len(parts) != expected:
                what = "two numbers: low, high" if expected == 2 else "a number"
                raise ValidationError({"value": f"Give {what}."})
            if expected == 2 and numbers[0] > numbers[1]:
                raise ValidationError({"value": "The low bound is above the high bound."})
        if op == CriterionOperator.REGEX:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValidationError(
                    {"value": f"Not a valid regular expression: {exc}."}
                ) from None


class EndpointKind(models.TextChoices):
    PING = "ping", "Ping"
    POST = "post", "Post"


class HttpMethod(models.TextChoices):
    POST = "POST", "POST"
    PUT = "PUT", "PUT"
    GET = "GET", "GET"


class BodyFormat(models.TextChoices):
    JSON = "json", "JSON"
    FORM = "form", "Form (x-www-form-urlencoded)"
    XML = "xml", "XML"


class AuthType(models.TextChoices):
    NONE = "none", "None"
    BASIC = "basic", "HTTP basic"
    BEARER = "bearer", "Bearer token"
    HEADER = "header", "Custom header"
    QUERY = "query", "Key in query string"


class BuyerUrlField(HttpsAssumedUrlField):
    """A buyer's endpoint URL (its own class: migrations name it)."""


def _literal_credential(values: dict[str, str]) -> bool:
    """Whether a header or query parameter named like a credential is given as literal text
    instead of one of the contract's secrets."""
    return any(
        word in name.lower() and not SECRET_REFERENCE_RE.search(value)
        for name, value in values.items()
        for word in SECRET_HEADER_WORDS
    )


class DeliveryEndpoint(models.Model):
    """Where and how pings or posts of a contract are sent."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="endpoints")
    kind = models.CharField(max_length=4, choices=EndpointKind.choices)
    url = BuyerUrlField(max_length=1000)
    method = models.CharField(max_length=4, choices=HttpMethod.choices, default=HttpMethod.POST)
    body_format = models.CharField(
        max_length=4, choices=BodyFormat.choices, default=BodyFormat.JSON
    )
    body_template = models.TextField(
        blank=True,
        help_text="The request body as a template (the power path; see 'Connecting a buyer'). "
        "JSON: a JSON document whose strings may hold {{ }}; form: a JSON object of form "
        "fields; XML: the XML text. Blank: the field mappings build the body.",
    )
    query = models.JSONField(
        default=dict,
        blank=True,
        help_text="Query parameters added to the URL, values may be templates: "
        '{"key": "{{ secrets.api_key }}", "src": "leadswitch"}.',
    )
    headers = models.JSONField(
        default=dict,
        blank=True,
        help_text='Extra headers, values may be templates: {"X-Partner": "acme", '
        '"X-Api-Key": "{{ secrets.api_key }}"}.',
    )
    auth_type = models.CharField(max_length=6, choices=AuthType.choices, default=AuthType.NONE)
    auth_username = models.CharField(max_length=255, blank=True, help_text="Basic auth user name.")
    auth_param_name = models.CharField(
        max_length=100, blank=True, help_text="Header or query parameter that carries the key."
    )
    auth_secret = EncryptedTextField(
        blank=True, help_text="Password, token or key; stored encrypted, never shown again."
    )
    connect_timeout_ms = models.PositiveIntegerField(
        default=1000, validators=[MinValueValidator(10), MaxValueValidator(30000)]
    )
    read_timeout_ms = models.PositiveIntegerField(
        default=3000,
        validators=[MinValueValidator(10), MaxValueValidator(120000)],
        help_text="How long to wait for the answer once the request is sent.",
    )

    history = HistoricalRecords(excluded_fields=["auth_secret"])

    class Meta:
        ordering = ["contract", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "kind"], name="one_endpoint_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.method} {self.url}"

    @property
    def masked_secret(self) -> str:
        return mask(self.auth_secret)

    def _header_and_query_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if not isinstance(self.headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            errors["headers"] = 'Give an object of header names to text values: {"X-A": "b"}.'
        else:
            bad = [k for k in self.headers if not HEADER_NAME_RE.match(k)]
            if bad:
                errors["headers"] = f"Not valid header names: {', '.join(bad)}."
            elif _literal_credential(self.headers):
                errors["headers"] = (
                    "Put credentials (authorization, keys, tokens, secrets, passwords) in the "
                    "contract's secrets, where they are encrypted, and name them here: "
                    '{"X-Api-Key": "{{ secrets.api_key }}"}.'
                )
        if not isinstance(self.query, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in self.query.items()
        ):
            errors["query"] = 'Give an object of parameter names to text values: {"src": "ls"}.'
        elif _literal_credential(self.query):
            errors["query"] = (
                "Put credentials in the contract's secrets, where they are encrypted, and name "
                'them here: {"api_key": "{{ secrets.api_key }}"}.'
            )
        return errors

    def clean(self) -> None:
        errors = self._header_and_query_errors()
        if self.body_template.strip() and self.method == HttpMethod.GET:
            errors["body_template"] = "A GET sends no body: put its values in the query."
        if self.auth_type != AuthType.NONE and not self.auth_secret:
            errors["auth_secret"] = "This authentication type needs a secret."  # noqa: S105
        if self.auth_type == AuthType.BASIC and not self.auth_username:
            errors["auth_username"] = "Basic authentication needs a user name."
        if self.auth_type in {AuthType.HEADER, AuthType.QUERY} and not self.auth_param_name:
            errors["auth_param_name"] = "Name the header or query parameter that carries the key."
        refusal = url_refusal(self.url) if self.url else ""
        if refusal:
            errors["url"] = f"The platform may not call this address: {refusal}."
        if not errors:
            errors.update(delivery_check("endpoint", self))
        if errors:
            raise ValidationError(errors)


class ContractSecret(models.Model):
    """A named credential a buyer's spec wants somewhere in the request (body, query or a
    header), written there as {{ secrets.<name> }}; stored encrypted, masked wherever shown."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(
        max_length=64, help_text="Letters, digits and _; templates write {{ secrets.<name> }}."
    )
    value = EncryptedTextField(help_text="Stored encrypted, never shown again.")

    history = HistoricalRecords(excluded_fields=["value"])

    class Meta:
        ordering = ["contract", "name"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "name"], name="one_secret_per_name"),
        ]

    def __str__(self) -> str:
        return f"secret {self.name}"

    @property
    def masked_value(self) -> str:
        return mask(self.value)

    def clean(self) -> None:
        if not SECRET_NAME_RE.match(self.name or ""):
            raise ValidationError(
                {"name": "Use letters, digits and _ (not first), as templates name it."}
            )
        if not self.value:
            raise ValidationError({"value": "Give the secret's value."})


class Transform(models.TextChoices):
    NONE = "none", "As is"
    UPPER = "upper", "UPPER CASE"
    LOWER = "lower", "lower case"
    TITLE = "title", "Title Case"
    DIGITS = "digits", "Digits only"
    PHONE_E164 = "phone_e164", "Phone +15551234567"
    PHONE_10 = "phone_10", "Phone 5551234567"
    PHONE_DASHED = "phone_dashed", "Phone 555-123-4567"
    PHONE_AREA_CODE = "phone_area", "Phone area code (555)"
    PHONE_LOCAL = "phone_local", "Phone without area code (1234567)"
    DATE_US = "date_us", "Date MM/DD/YYYY"
    DATE_ISO = "date_iso", "Date YYYY-MM-DD"
    FIRST_WORD = "first_word", "First word (first name of a full name)"
    LAST_WORDS = "last_words", "All but the first word (last name of a full name)"
    BOOL_YN = "bool_yn", "Yes/no as Y/N"
    BOOL_10 = "bool_10", "Yes/no as 1/0"


class MappingApplies(models.TextChoices):
    BOTH = "both", "Ping and post"
    PING = "ping", "Ping only"
    POST = "post", "Post only"


class FieldMapping(models.Model):
    """One field of the buyer's request: from our field (or a constant) to theirs."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="mappings")
    position = models.PositiveSmallIntegerField(default=0)
    source_field = models.CharField(
        max_length=200,
        blank=True,
        help_text="Our field; several joined with + (first_name+last_name). Blank for a constant.",
    )
    target_field = models.CharField(max_length=200, help_text="The buyer's field name.")
    transform = models.CharField(max_length=12, choices=Transform.choices, default=Transform.NONE)
    value_map = models.JSONField(
        default=dict, blank=True, help_text='Our value → theirs: {"own": "O", "rent": "R"}.'
    )
    static_value = models.CharField(
        max_length=500, blank=True, help_text="Sent as is when no source field is given."
    )
    default_value = models.CharField(
        max_length=500, blank=True, help_text="Sent when the lead has no value for the field."
    )
    applies_to = models.CharField(
        max_length=4, choices=MappingApplies.choices, default=MappingApplies.BOTH
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["contract", "target_field", "applies_to"],
                name="one_mapping_per_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_field or repr(self.static_value)} → {self.target_field}"

    def clean(self) -> None:
        if not self.source_field and not self.static_value:
            raise ValidationError(
                {"source_field": "Map a lead field, or give a static value to send."}
            )
        if self.source_field and self.static_value:
            raise ValidationError(
                {"static_value": "A mapping sends either a lead field or a static value."}
            )
        if not isinstance(self.value_map, dict) or not all(
            isinstance(v, str | int | float | bool) for v in self.value_map.values()
        ):
            raise ValidationError({"value_map": 'Give an object of values: {"ours": "theirs"}.'})


class AnswerFormat(models.TextChoices):
    JSON = "json", "JSON"
    XML = "xml", "XML"
    TEXT = "text", "Text (read by status code or regex)"


class ResponseRule(models.Model):
    """How to read a buyer's answer. The defaults read the buyer simulator's JSON."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="response_rules")
    kind = models.CharField(max_length=4, choices=EndpointKind.choices)
    success_path = models.CharField(
        max_length=200, default="status", blank=True, help_text="JSON path read for the outcome."
    )
    success_values = models.CharField(
        max_length=500,
        default="accepted, bid, success, ok",
        blank=True,
        help_text="Comma-separated values at that path that mean accepted (case-insensitive).",
    )
    success_regex = models.CharField(
        max_length=500, blank=True, help_text="Instead of a path: a regex the raw body must match."
    )
    success_status_codes = models.CharField(
        max_length=100,
        blank=True,
        help_text="Instead of a body check: HTTP codes that mean accepted, e.g. 200, 201.",
    )
    price_path = models.CharField(max_length=200, default="price", blank=True)
    price_regex = models.CharField(
        max_length=500, blank=True, help_text="A regex whose first group is the price."
    )
    reason_path = models.CharField(max_length=200, default="reason", blank=True)
    reference_path = models.CharField(
        max_length=200,
        default="lead_id|bid_id",
        blank=True,
        help_text="Buyer's id for the lead (post) or bid (ping); a|b reads the first present.",
    )
    answer_format = models.CharField(
        max_length=4,
        choices=AnswerFormat.choices,
        default=AnswerFormat.JSON,
        help_text="How the buyer answers: paths are JSON paths (dotted or $-JSONPath), XPaths "
        "for XML, and re:<regex> for any format. Also sets the Accept header.",
    )
    namespaces = models.TextField(
        blank=True,
        help_text="XML namespaces the XPaths use, one prefix=uri per line.",
    )
    captures = models.JSONField(
        default=dict,
        blank=True,
        help_text='Values to keep from the answer, by name and path: {"ping_id": "ping_id"}. '
        "A ping's captures reach the post's template and mappings as ping.<name>.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["contract", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "kind"], name="one_response_rule_per_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} response rule"

    def clean(self) -> None:
        for name in ("success_regex", "price_regex"):
            pattern = getattr(self, name)
            if pattern:
                try:
                    compiled = re.compile(pattern)
                except re.error as exc:
                    raise ValidationError(
                        {name: f"Not a valid regular expression: {exc}."}
                    ) from None
                if name == "price_regex" and compiled.groups < 1:
                    raise ValidationError({name: "Capture the price in a group: price=([0-9.]+)"})
        codes = split_values(self.success_status_codes)
        if any(not c.isdigit() or not 100 <= int(c) <= 599 for c in codes):
            raise ValidationError(
                {"success_status_codes": "Give HTTP status codes, e.g. 200, 201."}
            )
        if not (self.success_path or self.success_regex or codes):
            raise ValidationError("Say how an accepted answer is recognised.")
        self._clean_captures_and_paths()

    def _clean_captures_and_paths(self) -> None:
        if not isinstance(self.captures, dict) or not all(
            isinstance(name, str) and isinstance(path, str) and path.strip()
            for name, path in self.captures.items()
        ):
            raise ValidationError(
                {"captures": 'Give an object of names to paths: {"bid_id": "id"}.'}
            )
        bad = [name for name in self.captures if not SECRET_NAME_RE.match(name)]
        if bad:
            raise ValidationError(
                {"captures": f"Name captures with letters, digits and _: {', '.join(bad)}."}
            )
        problems = delivery_check("rule", self)
        if problems:
            raise ValidationError(problems)
