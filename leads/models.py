"""Verticals and their field schemas, sources (partners) and their API keys, and leads."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone
from simple_history.models import HistoricalRecords

from config.api_keys import ApiKey
from leads.scoring import (
    MAX_MULTIPLIER,
    MAX_POINTS,
    SCORE_FIELD,
    TIER_FIELD,
    KnownField,
    RuleKind,
    Tier,
    TierBounds,
    known_fields,
    rule_errors,
    tier_bounds_errors,
)
from outbound.guard import url_refusal

FIELD_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Names contract criteria give the lead's score and tier: no vertical field may take them.
RESERVED_FIELD_NAMES = frozenset({SCORE_FIELD, TIER_FIELD})


class DistributionMode(models.TextChoices):
    AUCTION = "auction", "Highest bid (auction)"
    PRIORITY = "priority", "Priority tiers (ping tree)"
    ROUND_ROBIN = "round_robin", "Round robin"
    WEIGHTED = "weighted", "Weighted random"


class DuplicateScope(models.TextChoices):
    GLOBAL = "global", "Across all sources"
    SOURCE = "source", "Within the submitting source"


def _tier_floor(tier: str) -> models.DecimalField:
    return models.DecimalField(
        max_digits=10,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text=f"No {tier} lead is sold for less, whatever its contracts' floors; empty: no "
        "floor for the tier.",
    )


class Vertical(models.Model):
    """A kind of lead with its own field schema (auto insurance, solar, ...)."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    distribution_mode = models.CharField(
        max_length=16, choices=DistributionMode.choices, default=DistributionMode.AUCTION
    )
    auction_timeout_ms = models.PositiveIntegerField(
        default=1500,
        validators=[MinValueValidator(50), MaxValueValidator(30000)],
        help_text="Deadline for the whole ping round; slower buyers are dropped.",
    )
    max_buyers = models.PositiveSmallIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(20)],
        help_text="How many buyers a shared lead may be sold to.",
    )
    min_margin = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Lowest acceptable margin (sale price minus source payout), in dollars.",
    )
    duplicate_lookback_days = models.PositiveSmallIntegerField(
        default=30,
        validators=[MaxValueValidator(3650)],
        help_text="Days within which a matching earlier lead makes a duplicate; 0 disables.",
    )
    duplicate_fields = models.JSONField(
        default=list,
        blank=True,
        help_text='Fields compared for duplicates, any one matching, e.g. ["email", "phone"].',
    )
    duplicate_scope = models.CharField(
        max_length=8, choices=DuplicateScope.choices, default=DuplicateScope.GLOBAL
    )
    # Lead scoring (leads.scoring): where each tier starts; Cold takes the scores below Qualified.
    tier_hot_from = models.PositiveSmallIntegerField(
        default=80, help_text="Lowest score of a Hot lead (Hot runs to 100)."
    )
    tier_warm_from = models.PositiveSmallIntegerField(
        default=60, help_text="Lowest score of a Warm lead (up to the Hot bound)."
    )
    tier_qualified_from = models.PositiveSmallIntegerField(
        default=40, help_text="Lowest score of a Qualified lead; lower scores are Cold."
    )
    floor_hot = _tier_floor("Hot")
    floor_warm = _tier_floor("Warm")
    floor_qualified = _tier_floor("Qualified")
    floor_cold = _tier_floor("Cold")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(tier_qualified_from__gt=0)
                & Q(tier_warm_from__gt=models.F("tier_qualified_from"))
                & Q(tier_hot_from__gt=models.F("tier_warm_from"))
                & Q(tier_hot_from__lte=100),
                name="vertical_tier_bounds_ordered",
            ),
            *(
                models.CheckConstraint(
                    condition=Q(**{f"floor_{tier}__isnull": True}) | Q(**{f"floor_{tier}__gte": 0}),
                    name=f"vertical_floor_{tier}_not_negative",
                )
                for tier in Tier.values
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if not isinstance(self.duplicate_fields, list) or not all(
            isinstance(name, str) for name in self.duplicate_fields
        ):
            raise ValidationError({"duplicate_fields": "Give a list of field names."})
        # Whether they name fields of the vertical is checked by the admin against the submitted
        # fields inline: the saved fields may be about to change in the same save.
        errors = tier_bounds_errors(
            hot=self.tier_hot_from, warm=self.tier_warm_from, qualified=self.tier_qualified_from
        )
        if errors:
            raise ValidationError({f"tier_{bound}_from": text for bound, text in errors.items()})

    @property
    def tier_bounds(self) -> TierBounds:
        return TierBounds(
            hot=self.tier_hot_from, warm=self.tier_warm_from, qualified=self.tier_qualified_from
        )

    def tier_floor(self, tier: str) -> Decimal | None:
        """Return the lowest price a lead of this tier may be sold at (None: no tier floor)."""
        return getattr(self, f"floor_{tier}", None) if tier in Tier.values else None


class FieldType(models.TextChoices):
    STRING = "string", "Text"
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"
    ZIP = "zip", "ZIP code"
    STATE = "state", "US state"
    INTEGER = "integer", "Integer"
    DECIMAL = "decimal", "Decimal"
    BOOLEAN = "boolean", "Yes/no"
    DATE = "date", "Date"
    CHOICE = "choice", "Choice"


class VerticalField(models.Model):
    """One field of a vertical's schema, in the order partners see it."""

    vertical = models.ForeignKey(Vertical, on_delete=models.CASCADE, related_name="fields")
    position = models.PositiveSmallIntegerField(default=0)
    name = models.CharField(
        max_length=63, help_text="Machine name partners send, e.g. first_name (lower case, _)."
    )
    label = models.CharField(max_length=120, blank=True)
    field_type = models.CharField(max_length=8, choices=FieldType.choices, default=FieldType.STRING)
    required = models.BooleanField(default=False)
    choices = models.JSONField(
        default=list, blank=True, help_text='Allowed values for a choice field: ["a", "b"].'
    )
    min_value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    max_value = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    max_length = models.PositiveIntegerField(null=True, blank=True)
    in_ping = models.BooleanField(
        default=False, help_text="Sent to buyers in the anonymous ping (never for PII fields)."
    )
    is_pii = models.BooleanField(
        default=False, help_text="Personal data: masked for Sales, never pinged, erasable."
    )
    help_text = models.CharField(max_length=255, blank=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["vertical", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["vertical", "name"], name="unique_field_per_vertical"),
            models.CheckConstraint(
                condition=~(Q(in_ping=True) & Q(is_pii=True)), name="pii_field_never_pinged"
            ),
            models.CheckConstraint(
                condition=Q(min_value__isnull=True)
                | Q(max_value__isnull=True)
                | Q(min_value__lte=models.F("max_value")),
                name="field_min_not_above_max",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vertical.slug}.{self.name}"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not FIELD_NAME_RE.match(self.name or ""):
            errors["name"] = "Use lower-case letters, digits and _, starting with a letter."
        elif self.name in RESERVED_FIELD_NAMES:
            errors["name"] = (
                f"{self.name!r} is the lead's own {self.name} (lead scoring), which contract "
                "criteria name: call the field something else."
            )
        if self.in_ping and self.is_pii:
            errors["in_ping"] = "A PII field is never sent in pings."
        if self.field_type == FieldType.CHOICE:
            if (
                not isinstance(self.choices, list)
                or not self.choices
                or not all(isinstance(c, str) and c for c in self.choices)
            ):
                errors["choices"] = "A choice field needs a list of non-empty text values."
            elif len(set(self.choices)) != len(self.choices):
                errors["choices"] = "Choices must be distinct."
        elif self.choices:
            errors["choices"] = "Only choice fields have choices."
        numeric = self.field_type in {FieldType.INTEGER, FieldType.DECIMAL}
        if (self.min_value is not None or self.max_value is not None) and not numeric:
            errors["min_value"] = "Only integer and decimal fields have a range."
        if (
            self.min_value is not None
            and self.max_value is not None
            and self.min_value > self.max_value
        ):
            errors["max_value"] = "The maximum is below the minimum."
        if errors:
            raise ValidationError(errors)


class SchemaVersion(models.Model):
    """One version of a vertical's field set, frozen: what a source pinned to it posts.

    The vertical's fields (VerticalField rows) are its newest version as ops edit it; a save that
    changes what a partner may or must send records the next version (leads.services.
    schema_version_record). Older versions live on in `fields` for the sources pinned to them.
    """

    vertical = models.ForeignKey(Vertical, on_delete=models.CASCADE, related_name="schema_versions")
    number = models.PositiveIntegerField()
    fields = models.JSONField(
        default=list,
        blank=True,
        help_text="The field definitions in order (leads.schema_versions).",
    )
    summary = models.TextField(blank=True, help_text="What changed from the version before.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["vertical", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["vertical", "number"], name="unique_schema_version_number"
            ),
            models.CheckConstraint(condition=Q(number__gte=1), name="schema_version_from_1"),
        ]

    def __str__(self) -> str:
        return f"{self.vertical.slug} v{self.number}" if self.vertical_id else f"v{self.number}"

    def clean(self) -> None:
        from leads.schema_versions import snapshot_errors

        errors = snapshot_errors(self.fields)
        if errors:
            raise ValidationError({"fields": errors})
        if self.pk is not None:
            stored = SchemaVersion.objects.filter(pk=self.pk).values_list("fields", flat=True)
            if stored and stored[0] != self.fields:
                raise ValidationError(
                    {
                        "fields": f"Version {self.number} is frozen: change the vertical's "
                        "fields to make a new version."
                    }
                )


class ScoringRule(models.Model):
    """One rule of a vertical's lead scoring (see leads.scoring for the kinds and their order)."""

    vertical = models.ForeignKey(Vertical, on_delete=models.CASCADE, related_name="scoring_rules")
    position = models.PositiveSmallIntegerField(
        default=0, help_text="Orders the rules on the page and in a lead's breakdown only."
    )
    name = models.CharField(max_length=120, help_text="Shown in each lead's breakdown.")
    active = models.BooleanField(default=True)
    kind = models.CharField(max_length=6, choices=RuleKind.choices)
    field = models.CharField(
        max_length=63,
        blank=True,
        help_text="A field of the vertical, or city, county, state, time_zone (from the ZIP). "
        "Optional for a boost.",
    )
    min_value = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, help_text="Range: lowest, included."
    )
    max_value = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="Range: highest, included.",
    )
    values = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Match (or a boost's field): comma-separated, case-insensitive, e.g. good, "
        "excellent.",
    )
    points = models.SmallIntegerField(
        default=0,
        validators=[MinValueValidator(-MAX_POINTS), MaxValueValidator(MAX_POINTS)],
        help_text="Added when the rule holds (negative takes points away).",
    )
    multiplier = models.DecimalField(
        max_digits=4,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(MAX_MULTIPLIER)],
        help_text="Boost only: the summed points are multiplied by it, e.g. 1.20.",
    )
    source = models.ForeignKey(
        "Source",
        null=True,
        blank=True,
        # A boost for a source that is gone would apply to nobody; say so rather than drop it.
        on_delete=models.PROTECT,
        related_name="scoring_rules",
        help_text="Boost only: just the leads of this source.",
    )

    history = HistoricalRecords()

    class Meta:
        ordering = ["vertical", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["vertical", "name"], name="unique_scoring_rule_name_per_vertical"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=list(RuleKind.values)), name="scoring_rule_kind_is_known"
            ),
            models.CheckConstraint(
                condition=Q(points__gte=-MAX_POINTS) & Q(points__lte=MAX_POINTS),
                name="scoring_rule_points_in_range",
            ),
            models.CheckConstraint(
                condition=Q(multiplier__isnull=True)
                | (Q(multiplier__gte=0) & Q(multiplier__lte=MAX_MULTIPLIER)),
                name="scoring_rule_multiplier_in_range",
            ),
            models.CheckConstraint(
                condition=Q(min_value__isnull=True)
                | Q(max_value__isnull=True)
                | Q(min_value__lte=models.F("max_value")),
                name="scoring_rule_min_not_above_max",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    # The vertical's fields as the admin's form is about to save them, set by the vertical's
    # scoring rules inline: the saved ones may be changing in the same submission.
    submitted_fields: dict[str, KnownField] | None = None

    def nameable_fields(self) -> dict[str, KnownField] | None:
        """Return the fields this rule may name, or None when there is no vertical yet."""
        if self.submitted_fields is not None:
            return self.submitted_fields
        if self.vertical_id is None:
            return None
        return known_fields(
            VerticalField.objects.filter(vertical_id=self.vertical_id).values_list(
                "name", "field_type", "choices"
            )
        )

    def clean(self) -> None:
        errors = rule_errors(
            kind=self.kind,
            field_name=self.field,
            min_value=self.min_value,
            max_value=self.max_value,
            values=self.values,
            points=self.points,
            multiplier=self.multiplier,
            has_source=self.source_id is not None,
            fields=self.nameable_fields(),
        )
        if errors:
            raise ValidationError(errors)


class HttpsAssumedUrlField(models.URLField):
    """An http(s) URL; one typed without a scheme in a form is taken as https."""

    default_validators = [URLValidator(schemes=["http", "https"])]

    def formfield(self, **kwargs):
        return super().formfield(**{"assume_scheme": "https", **kwargs})


class PayoutModel(models.TextChoices):
    FIXED_CPL = "fixed_cpl", "Fixed cost per lead"
    REVENUE_SHARE = "revenue_share", "Revenue share"


class Source(models.Model):
    """A partner that submits leads."""

    name = models.CharField(max_length=120, unique=True)
    active = models.BooleanField(default=True)
    verticals = models.ManyToManyField(
        Vertical, related_name="sources", blank=True, help_text="Verticals it may submit to."
    )
    payout_model = models.CharField(
        max_length=16, choices=PayoutModel.choices, default=PayoutModel.FIXED_CPL
    )
    payout_amount = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0.00"),
        help_text="Paid per sold lead under a fixed CPL model, in dollars.",
    )
    revenue_share_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0.00"),
        help_text="Share of the sale price paid under a revenue share model.",
    )
    payout_reversed_on_return = models.BooleanField(
        default=True,
        help_text="A lead the buyer returns is not paid to the source either (its terms allow "
        "clawbacks).",
    )
    rate_limit_per_second = models.PositiveIntegerField(
        default=50,
        validators=[MinValueValidator(1), MaxValueValidator(100000)],
        help_text="Intake requests per second this source may send; more are answered 429.",
    )
    postback_url = HttpsAssumedUrlField(
        max_length=1000,
        blank=True,
        help_text="Where each lead's final outcome is POSTed as JSON (optional).",
    )
    sees_buyer_price = models.BooleanField(
        default=False,
        help_text="Answers, the lead status API and postbacks show the buyer's price beside the "
        "payout. Off: the source sees only what it is paid.",
    )
    contact_name = models.CharField(max_length=120, blank=True)
    contact_email = models.EmailField(blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords(m2m_fields=[verticals])

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(payout_amount__gte=0), name="source_payout_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(rate_limit_per_second__gte=1), name="source_rate_limit_positive"
            ),
            models.CheckConstraint(
                condition=Q(revenue_share_percent__gte=0) & Q(revenue_share_percent__lte=100),
                name="source_revenue_share_is_a_percentage",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.payout_model == PayoutModel.REVENUE_SHARE and not self.revenue_share_percent:
            errors["revenue_share_percent"] = "A revenue share source needs a percentage above 0."
        refusal = url_refusal(self.postback_url) if self.postback_url else ""
        if refusal:
            errors["postback_url"] = f"The platform may not call this address: {refusal}."
        if errors:
            raise ValidationError(errors)

    def payout_for(self, sale_price: Decimal) -> Decimal:
        """Return what this source earns for a lead sold at sale_price."""
        if self.payout_model == PayoutModel.REVENUE_SHARE:
            return (sale_price * self.revenue_share_percent / 100).quantize(Decimal("0.01"))
        return self.payout_amount


class SchemaPin(models.Model):
    """The version of a vertical's field set a source posts in. Made when the source is given
    the vertical (the newest then); staff move it to a newer one."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="schema_pins")
    vertical = models.ForeignKey(Vertical, on_delete=models.CASCADE, related_name="+")
    # A version goes only with its vertical (the admin never deletes one), which takes the pins
    # to it along; an import that prunes a version unpins its sources, which then post in the
    # newest.
    schema_version = models.ForeignKey(SchemaVersion, on_delete=models.CASCADE, related_name="pins")
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        ordering = ["source", "vertical"]
        verbose_name = "schema version of a source"
        verbose_name_plural = "schema versions of sources"
        constraints = [
            models.UniqueConstraint(fields=["source", "vertical"], name="one_pin_per_vertical"),
        ]

    def __str__(self) -> str:
        return f"{self.source} posts {self.schema_version}"

    def clean(self) -> None:
        if (
            self.vertical_id is not None
            and self.schema_version_id is not None
            and self.schema_version.vertical_id != self.vertical_id
        ):
            raise ValidationError(
                {"schema_version": f"Choose a version of {self.vertical}, not of another vertical."}
            )
        if (
            self.source_id is not None
            and self.vertical_id is not None
            and not self.source.verticals.filter(pk=self.vertical_id).exists()
        ):
            raise ValidationError(
                {"vertical": f"{self.source} does not post to {self.vertical}: add the vertical."}
            )


class PostingFormat(models.TextChoices):
    ENVELOPE = "envelope", "JSON envelope (vertical, fields, consent)"
    FLAT_JSON = "flat_json", "Flat JSON (fields at the top level)"
    FORM = "form", "Form-encoded POST"
    QUERY = "query", "GET with a query string"
    XML = "xml", "XML"


class KeyLocation(models.TextChoices):
    BEARER = "bearer", "Authorization: Bearer <key>"
    HEADER = "header", "A header of its own (e.g. X-API-Key)"
    PARAMETER = "parameter", "A body or query parameter (e.g. key)"


class UnknownFieldPolicy(models.TextChoices):
    REFUSE = "refuse", "Refuse the lead, naming each unknown field"
    KEEP = "keep", "Keep them as the lead's extra data"


class AnswerFormat(models.TextChoices):
    JSON = "json", "JSON (problem+json for errors)"
    XML = "xml", "XML"
    TEXT = "text", "key=value text, one pair a line"


class PostingProfile(models.Model):
    """How one source posts to us: its format, where its key is, its field names and values.

    A source without one posts the JSON envelope with a Bearer key and is answered in JSON.
    """

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="posting_profile")
    format = models.CharField(
        max_length=12, choices=PostingFormat.choices, default=PostingFormat.ENVELOPE
    )
    default_vertical = models.ForeignKey(
        Vertical,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The vertical of a flat post that names none (its `vertical` parameter).",
    )
    key_location = models.CharField(
        max_length=12, choices=KeyLocation.choices, default=KeyLocation.BEARER
    )
    key_name = models.CharField(
        max_length=64,
        blank=True,
        help_text="The header or parameter that carries the key (e.g. X-API-Key, key, api_key).",
    )
    aliases = models.JSONField(
        default=dict,
        blank=True,
        help_text='The seller\'s names for our fields and reserved parameters, e.g. {"Zip": '
        '"zip_code", "TrustedForm": "trustedform_cert_url", "SubID": "sub_id"}.',
    )
    value_maps = models.JSONField(
        default=dict,
        blank=True,
        help_text='Per field of ours, the seller\'s values and what they mean, e.g. {"homeowner": '
        '{"Yes": true, "No": false}}.',
    )
    unknown_fields = models.CharField(
        max_length=8, choices=UnknownFieldPolicy.choices, default=UnknownFieldPolicy.REFUSE
    )
    answer_format = models.CharField(
        max_length=8, choices=AnswerFormat.choices, default=AnswerFormat.JSON
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(key_location__in=["header", "parameter"]) | ~Q(key_name=""),
                name="posting_profile_key_named",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.get_format_display()}"

    def clean(self) -> None:
        from leads.profiles import profile_errors

        if self.source_id is not None:
            verticals = self.source.verticals.prefetch_related("fields")
        elif self.default_vertical_id is not None:  # a source being created with its profile
            verticals = Vertical.objects.filter(pk=self.default_vertical_id)
        else:
            verticals = Vertical.objects.none()
        errors = profile_errors(
            format=self.format,
            key_location=self.key_location,
            key_name=self.key_name or "",
            aliases=self.aliases,
            value_maps=self.value_maps,
            default_vertical=self.default_vertical.slug if self.default_vertical_id else "",
            vertical_fields={v.slug: [f.name for f in v.fields.all()] for v in verticals},
        )
        if errors:
            raise ValidationError(errors)


class SourceApiKey(ApiKey):
    """A partner's API key. Only its SHA-256 is stored; the key itself is shown once."""

    owner_field = "source"
    kind = "lsk_"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="api_keys")

    history = HistoricalRecords(excluded_fields=["hashed_key"])

    class Meta(ApiKey.Meta):
        verbose_name = "source API key"


class LeadStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted, waiting for routing"
    ROUTING = "routing", "Routing"
    SOLD = "sold", "Sold"
    UNSOLD = "unsold", "Unsold"
    RETURNED = "returned", "Returned"
    INVALID = "invalid", "Invalid"
    DUPLICATE = "duplicate", "Duplicate"
    SUPPRESSED = "suppressed", "Suppressed"
    FAILED = "failed", "Failed"


# The only ways a lead's status may change: target -> the states it may be entered from.
# invalid, duplicate and suppressed are set at intake and never left.
LEAD_TRANSITIONS: dict[str, frozenset[str]] = {
    LeadStatus.ROUTING: frozenset({LeadStatus.ACCEPTED, LeadStatus.UNSOLD, LeadStatus.FAILED}),
    LeadStatus.SOLD: frozenset({LeadStatus.ROUTING}),
    LeadStatus.UNSOLD: frozenset({LeadStatus.ROUTING}),
    # A routing run interrupted before it sold anything hands the lead back; ops re-route an
    # unsold or failed lead by handing it back too (routing.services.lead_reroute).
    LeadStatus.ACCEPTED: frozenset({LeadStatus.ROUTING, LeadStatus.FAILED, LeadStatus.UNSOLD}),
    LeadStatus.FAILED: frozenset({LeadStatus.ACCEPTED, LeadStatus.ROUTING}),
    LeadStatus.RETURNED: frozenset({LeadStatus.SOLD}),
}

# The states a lead rests in once intake or a routing run is done with it. Unsold and failed
# leads may still be sent round again by ops (re-route), but nothing moves them on its own.
FINAL_STATUSES = frozenset(
    {
        LeadStatus.SOLD,
        LeadStatus.UNSOLD,
        LeadStatus.RETURNED,
        LeadStatus.INVALID,
        LeadStatus.DUPLICATE,
        LeadStatus.SUPPRESSED,
        LeadStatus.FAILED,
    }
)


# The consent record's items that identify the consumer: hidden on the lead page, erased with them.
CONSENT_PERSONAL_KEYS = ("ip", "user_agent", "page_url", "trustedform_cert_url", "jornaya_leadid")


class Lead(models.Model):
    """A submitted lead, valid or not, with its raw request and what became of it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Empty only for a request rejected before its vertical could be read (malformed JSON).
    # Every INSERT updates every index of this table: left out are the single-column ones that
    # a composite index below leads with, LIKE (pattern) indexes and state's, which no lookup uses.
    vertical = models.ForeignKey(
        Vertical,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="leads",
        db_index=False,
    )
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="leads", db_index=False
    )
    api_key = models.ForeignKey(
        SourceApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="leads"
    )
    status = models.CharField(max_length=12, choices=LeadStatus.choices)
    reason = models.CharField(
        max_length=500, blank=True, help_text="Why intake rejected it, in a sentence."
    )
    is_test = models.BooleanField(default=False)
    sub_id = models.CharField(max_length=255, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="Normalised and enriched fields.")
    extra = models.JSONField(
        default=dict,
        blank=True,
        help_text="Fields the source sent that the vertical does not know, kept under its "
        "posting profile's policy.",
    )
    raw_body = models.TextField(blank=True, help_text="The request body exactly as received.")
    errors = models.JSONField(
        default=dict, blank=True, help_text="Why the lead was rejected, per field."
    )
    consent = models.JSONField(
        default=dict, blank=True, help_text="TCPA text, timestamp, IP and certificate URLs."
    )
    remote_ip = models.GenericIPAddressField(null=True, blank=True)
    ping_id = models.CharField(
        max_length=64,
        blank=True,
        help_text="The inbound ping (exchange/) whose bids the post of this lead takes up.",
    )
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="duplicates"
    )
    # Denormalised from data for duplicate checks, suppression and search.
    email = models.CharField(max_length=254, blank=True)
    phone = models.CharField(max_length=20, blank=True)
    zip_code = models.CharField(max_length=5, blank=True)
    state = models.CharField(max_length=2, blank=True)
    # SHA-256 (hex) of the normalised email and phone (leads.consumer_hashes), filled at
    # intake: an inbound ping names its consumer by these hashes only (exchange/). The table's
    # default '' lets the code before them go on inserting leads while and after they are added;
    # manage.py backfill_consumer_hashes fills those leads.
    email_sha256 = models.CharField(max_length=64, blank=True, default="", db_default="")
    phone_sha256 = models.CharField(max_length=64, blank=True, default="", db_default="")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    sold_at = models.DateTimeField(null=True, blank=True)
    sale_price = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    payout = models.DecimalField(max_digits=10, decimal_places=2, null=True, blank=True)
    # Computed at intake by the vertical's scoring rules (leads.scoring); empty when the lead
    # was invalid or its vertical scores nothing.
    score = models.PositiveSmallIntegerField(
        null=True, blank=True, editable=False, help_text="0-100, from the vertical's rules."
    )
    tier = models.CharField(
        max_length=9, choices=Tier.choices, blank=True, default="", db_default="", editable=False
    )
    score_breakdown = models.JSONField(
        default=dict,
        db_default={},
        blank=True,
        editable=False,
        help_text="The rules that fired, what each did and why, and the arithmetic.",
    )
    erased_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the consumer's personal data was erased (GDPR Art. 17).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        indexes = [
            models.Index(fields=["source", "-received_at"], name="lead_source_received"),
            models.Index(fields=["vertical", "-received_at"], name="lead_vertical_received"),
            models.Index(fields=["status", "received_at"], name="lead_status_received"),
            models.Index(fields=["source", "sub_id"], name="lead_source_sub_id"),
            # Duplicate checks and the admin's exact search.
            models.Index(fields=["email"], name="lead_email"),
            models.Index(fields=["phone"], name="lead_phone"),
            models.Index(fields=["zip_code"], name="lead_zip_code"),
            # A ping's duplicate check (hash, vertical, look-back) and already-bought check (hash,
            # any vertical): the hash leads, so both use it. Partial: leads without one cost no
            # index entry.
            models.Index(
                fields=["email_sha256", "vertical", "received_at"],
                condition=Q(email_sha256__gt=""),
                name="lead_email_sha256",
            ),
            models.Index(
                fields=["phone_sha256", "vertical", "received_at"],
                condition=Q(phone_sha256__gt=""),
                name="lead_phone_sha256",
            ),
            # The reporting rollup finds the hours touched since its last run by this column.
            models.Index(fields=["updated_at"], name="lead_updated"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(sale_price__isnull=True) | Q(sale_price__gte=0),
                name="lead_sale_price_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(payout__isnull=True) | Q(payout__gte=0),
                name="lead_payout_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(status__in=list(LeadStatus.values)), name="lead_status_is_known"
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | Q(score__lte=100), name="lead_score_at_most_100"
            ),
            models.CheckConstraint(
                condition=Q(tier__in=["", *Tier.values]), name="lead_tier_is_known"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.vertical_id and self.vertical.slug} lead {self.id}"

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def margin(self) -> Decimal | None:
        if self.sale_price is None:
            return None
        return self.sale_price - (self.payout or Decimal("0"))


class IdempotencyRecord(models.Model):
    """The first answer to a source's request with an Idempotency-Key, replayed for 24 hours."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="idempotency_keys")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="SHA-256 of the request body.")
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.SET_NULL)
    response_status = models.PositiveSmallIntegerField()
    # The answer's document, not its bytes: a replay renders it again in `answer_format` after
    # what the source may see now is applied (leads.prices), one rule for every format. JSON
    # text, not a JSONField: jsonb reorders members, and a replay is the first answer verbatim.
    # '' (the table's default) marks a record the code before leads 0012 kept as bytes.
    response_document = models.TextField(db_default="", blank=True)
    answer_format = models.CharField(max_length=8, db_default="json")
    # The bytes the code before leads 0012 kept, replayed as they are; no longer written, and
    # dropped in a later release (such records expire after IDEMPOTENCY_KEY_HOURS).
    response_body = models.BinaryField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "key"], name="one_record_per_idempotency_key"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} · {self.key}"


class ContactKind(models.TextChoices):
    EMAIL = "email", "Email"
    PHONE = "phone", "Phone"


class SuppressionList(models.Model):
    """A do-not-contact list; its entries are stored as keyed hashes, never in clear."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class SuppressedContact(models.Model):
    suppression_list = models.ForeignKey(
        SuppressionList, on_delete=models.CASCADE, related_name="entries"
    )
    kind = models.CharField(max_length=5, choices=ContactKind.choices)
    value_hash = models.CharField(max_length=64, db_index=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["suppression_list", "kind", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["suppression_list", "kind", "value_hash"], name="unique_suppressed_contact"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.value_hash[:12]}…"


class PostbackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Postback(models.Model):
    """One attempt to tell a source the final outcome of one of its leads."""

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="postbacks")
    url = models.CharField(max_length=1000)
    lead_status = models.CharField(max_length=12, help_text="The outcome reported.")
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=9, choices=PostbackStatus.choices)
    request_body = models.TextField(blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["lead", "created_at"], name="postback_lead_created")]

    def __str__(self) -> str:
        return f"Postback {self.attempt} of lead {self.lead_id}: {self.get_status_display()}"
