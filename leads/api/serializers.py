"""Representations of the partner API (and, for the schema, of what it accepts)."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.problems import PROBLEM_TYPES
from leads.models import FieldType, Lead, LeadStatus, SchemaVersion, Vertical, VerticalField
from leads.prices import prices_placed, prices_shown
from leads.scoring import Tier

# Partners are told a suppressed lead was rejected, never which list matched.
PARTNER_STATUS = {LeadStatus.SUPPRESSED: "rejected"}
PARTNER_STATUSES = sorted({PARTNER_STATUS.get(s, s) for s in LeadStatus.values})
SCORE_HELP = "0-100, from the vertical's scoring rules at intake; null when not scored."
TIER_HELP = "The score's tier (hot, warm, qualified, cold); null when not scored."
PAYOUT_HELP = "What your source is paid for this lead, in dollars; null until it is sold."
BUYER_PRICE_HELP = (
    "What the buyer paid, in dollars; null until it is sold. Present only for a source set to "
    "see buyers' prices."
)

FORMAT_HINTS = {
    "string": "Text; surrounding and repeated spaces are removed.",
    "email": "An email address; stored in lower case.",
    "phone": "A US phone number in any common format; stored as E.164 (+12125550142).",
    "zip": 'A 5-digit ZIP code or ZIP+4 as text ("02134"); the lead gains city, county, '
    "state and time zone.",
    "state": "A US state's two-letter code (TX) or name; must agree with the ZIP code.",
    "integer": "A whole number (JSON number or numeric text).",
    "decimal": "A number (JSON number or numeric text).",
    "boolean": "true or false (yes/no and 1/0 are understood).",
    "date": "A date as YYYY-MM-DD (MM/DD/YYYY is understood).",
    "choice": "One of the listed choices (case-insensitive).",
}


class VerticalFieldSerializer(serializers.ModelSerializer):
    type = serializers.ChoiceField(choices=FieldType.choices, source="field_type")
    format_hint = serializers.SerializerMethodField()
    minimum = serializers.DecimalField(
        source="min_value", max_digits=14, decimal_places=2, allow_null=True
    )
    maximum = serializers.DecimalField(
        source="max_value", max_digits=14, decimal_places=2, allow_null=True
    )

    class Meta:
        model = VerticalField
        fields = [
            "name",
            "label",
            "type",
            "required",
            "choices",
            "minimum",
            "maximum",
            "max_length",
            "format_hint",
            "help_text",
        ]

    def get_format_hint(self, obj: VerticalField) -> str:
        return FORMAT_HINTS.get(obj.field_type, "")


VERSION_HELP = (
    "The version of the vertical's fields your source posts in: leads are validated by it. "
    "Null only for a vertical that has no version yet."
)
NEWEST_HELP = "The vertical's newest version; your account manager moves you to it."


class VerticalSerializer(serializers.ModelSerializer):
    """A vertical as one source sees it: the fields of the version it posts in (set by the view
    as `schema_fields` and `posted_version`)."""

    version = serializers.IntegerField(
        source="posted_version", read_only=True, allow_null=True, help_text=VERSION_HELP
    )
    newest_version = serializers.IntegerField(
        source="newest_number", read_only=True, allow_null=True, help_text=NEWEST_HELP
    )
    fields = VerticalFieldSerializer(many=True, read_only=True, source="schema_fields")
    duplicate_check = serializers.SerializerMethodField()

    class Meta:
        model = Vertical
        fields = [
            "slug",
            "name",
            "description",
            "version",
            "newest_version",
            "duplicate_check",
            "fields",
        ]

    @extend_schema_field(
        {
            "type": "object",
            "properties": {
                "fields": {"type": "array", "items": {"type": "string"}},
                "lookback_days": {"type": "integer"},
                "scope": {"type": "string", "enum": ["global", "source"]},
            },
        }
    )
    def get_duplicate_check(self, obj: Vertical) -> dict:
        return {
            "fields": obj.duplicate_fields,
            "lookback_days": obj.duplicate_lookback_days,
            "scope": obj.duplicate_scope,
        }


class SchemaVersionSummarySerializer(serializers.ModelSerializer):
    """One version of a vertical's fields, listed (set by the view: `newest`, `yours`)."""

    newest = serializers.BooleanField(read_only=True, help_text="The vertical's newest version.")
    yours = serializers.BooleanField(read_only=True, help_text="The version your source posts in.")
    summary = serializers.CharField(
        read_only=True, help_text="What changed from the version before, one change a line."
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = SchemaVersion
        fields = ["number", "created_at", "summary", "newest", "yours", "url"]

    def get_url(self, obj: SchemaVersion) -> str:
        request = self.context["request"]
        return request.build_absolute_uri(
            reverse("api:vertical-version", args=[obj.vertical.slug, obj.number])
        )


class SchemaVersionSerializer(SchemaVersionSummarySerializer):
    """One version of a vertical's fields: what a source posting in it may and must send."""

    vertical = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    fields = VerticalFieldSerializer(many=True, read_only=True, source="schema_fields")

    class Meta:
        model = SchemaVersion
        fields = ["vertical", "number", "created_at", "summary", "newest", "yours", "url", "fields"]


class LeadSerializer(serializers.ModelSerializer):
    vertical = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    status = serializers.SerializerMethodField()
    test = serializers.BooleanField(source="is_test")
    url = serializers.HyperlinkedIdentityField(view_name="api:lead-detail")
    duplicate_of = serializers.SerializerMethodField()
    score = serializers.IntegerField(
        read_only=True, allow_null=True, min_value=0, max_value=100, help_text=SCORE_HELP
    )
    tier = serializers.SerializerMethodField(help_text=TIER_HELP)
    payout = serializers.DecimalField(
        max_digits=10, decimal_places=2, allow_null=True, help_text=PAYOUT_HELP
    )
    # Not read-only, so that the schema does not call it required: most sources never see it.
    buyer_price = serializers.DecimalField(
        source="sale_price",
        max_digits=10,
        decimal_places=2,
        allow_null=True,
        required=False,
        help_text=BUYER_PRICE_HELP,
    )

    class Meta:
        model = Lead
        fields = [
            "id",
            "url",
            "vertical",
            "status",
            "test",
            "sub_id",
            "received_at",
            "updated_at",
            "sold_at",
            "payout",
            "buyer_price",
            "score",
            "tier",
            "reason",
            "errors",
            "duplicate_of",
        ]

    def to_representation(self, instance: Lead) -> dict:
        data = super().to_representation(instance)
        return prices_placed(
            data,
            prices_shown(
                source=instance.source, payout=instance.payout, buyer_price=instance.sale_price
            ),
        )

    @extend_schema_field(serializers.ChoiceField(choices=PARTNER_STATUSES))
    def get_status(self, obj: Lead) -> str:
        return PARTNER_STATUS.get(obj.status, obj.status)

    @extend_schema_field(serializers.ChoiceField(choices=Tier.values, allow_null=True))
    def get_tier(self, obj: Lead) -> str | None:
        return obj.tier or None

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_duplicate_of(self, obj: Lead) -> str | None:
        # Only name an earlier lead the caller itself sent.
        earlier = obj.duplicate_of
        if earlier is None or earlier.source_id != obj.source_id:
            return None
        return str(earlier.pk)


# --- For the schema only: what POST /api/v1/leads/ takes and answers. ---


class ConsentSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, help_text="The TCPA disclosure the consumer saw.")
    timestamp = serializers.DateTimeField(required=False, help_text="When, with its time zone.")
    ip = serializers.IPAddressField(required=False)
    trustedform_cert_url = serializers.URLField(required=False)
    jornaya_leadid = serializers.CharField(required=False)
    sellers = serializers.ListField(child=serializers.CharField(), required=False)
    page_url = serializers.URLField(required=False)
    user_agent = serializers.CharField(required=False)


class LeadSubmissionSerializer(serializers.Serializer):
    vertical = serializers.SlugField(help_text="GET /api/v1/verticals/ lists yours.")
    fields = serializers.DictField(help_text="The lead's fields, by the vertical's schema.")
    sub_id = serializers.CharField(required=False, max_length=255)
    consent = ConsentSerializer(required=False)
    test = serializers.BooleanField(
        required=False, default=False, help_text="Route only to test buyers; nothing is paid."
    )
    ping_id = serializers.CharField(
        required=False,
        min_length=1,
        max_length=64,
        help_text="The ping_id of your inbound ping (POST /api/v1/pings/): the lead is posted to "
        "the bids the ping holds, at the price it was answered.",
    )


class LeadAcceptedSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["accepted"])
    url = serializers.URLField()


class LeadOutcomeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=["sold", "unsold", "failed", "rejected"])
    # A rejected (suppressed) lead is answered at once, with a reason and neither amount.
    payout = serializers.DecimalField(
        max_digits=10, decimal_places=2, allow_null=True, required=False, help_text=PAYOUT_HELP
    )
    buyer_price = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        allow_null=True,
        required=False,
        help_text=BUYER_PRICE_HELP,
    )
    score = serializers.IntegerField(
        min_value=0, max_value=100, allow_null=True, required=False, help_text=SCORE_HELP
    )
    tier = serializers.ChoiceField(
        choices=Tier.choices, allow_null=True, required=False, help_text=TIER_HELP
    )
    reason = serializers.CharField(required=False)
    url = serializers.URLField()


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem document (application/problem+json)."""

    type = serializers.ChoiceField(
        choices=[problem.uri for problem in PROBLEM_TYPES.values()],
        help_text="What went wrong, as a URI under /api/problems/ that documents it.",
    )
    title = serializers.CharField(help_text="The type's summary; the same for every occurrence.")
    status = serializers.IntegerField(help_text="The HTTP status code.")
    detail = serializers.CharField(help_text="What went wrong this time.")
    id = serializers.UUIDField(required=False, help_text="The stored (rejected) lead.")
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text='Messages by field path, e.g. {"fields.zip_code": ["…"]}; "_" for the whole.',
    )
    duplicate_of = serializers.UUIDField(
        required=False, help_text="The earlier lead this one duplicates, if it was yours."
    )
