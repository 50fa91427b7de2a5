"""The shapes of the reporting and returns API (they document the OpenAPI schema too)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers

from leads.scoring import Tier
from reporting.models import ReturnReason

MONEY = {"max_digits": 14, "decimal_places": 2}


class FiguresSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    accepted = serializers.IntegerField()
    invalid = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    sold = serializers.IntegerField()
    unsold = serializers.IntegerField()
    returned = serializers.IntegerField()
    sell_through = serializers.FloatField(allow_null=True, help_text="sold / accepted")
    revenue = serializers.DecimalField(**MONEY, help_text="Of the sales not returned.")
    payout = serializers.DecimalField(**MONEY)
    margin = serializers.DecimalField(**MONEY)
    average_sale_price = serializers.DecimalField(**MONEY, allow_null=True)
    revenue_per_accepted_lead = serializers.DecimalField(**MONEY, allow_null=True)
    submit_to_sold_p50_seconds = serializers.FloatField(allow_null=True)
    submit_to_sold_p95_seconds = serializers.FloatField(allow_null=True)


class SummarySerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    previous_start = serializers.DateTimeField()
    previous_end = serializers.DateTimeField()
    current = FiguresSerializer()
    previous = FiguresSerializer()


class PointSerializer(serializers.Serializer):
    t = serializers.DateTimeField(help_text="Start of the hour or day.")
    received = serializers.IntegerField()
    sold = serializers.IntegerField()
    revenue = serializers.DecimalField(**MONEY)


class TimeseriesSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    granularity = serializers.ChoiceField(choices=["hour", "day"])
    points = PointSerializer(many=True)


class ReasonCountSerializer(serializers.Serializer):
    reason = serializers.CharField()
    count = serializers.IntegerField()


class CapUsageSerializer(serializers.Serializer):
    scope = serializers.CharField(help_text="The contract, or the buyer, the cap belongs to.")
    period = serializers.CharField()
    leads = serializers.IntegerField()
    max_leads = serializers.IntegerField(allow_null=True)
    spend = serializers.DecimalField(**MONEY)
    max_budget = serializers.DecimalField(**MONEY, allow_null=True)


class BuyerRowSerializer(serializers.Serializer):
    buyer_id = serializers.IntegerField()
    buyer = serializers.CharField()
    pings = serializers.IntegerField()
    bids = serializers.IntegerField()
    bid_rate = serializers.FloatField(allow_null=True)
    wins = serializers.IntegerField(help_text="Sales made to the buyer.")
    win_rate = serializers.FloatField(allow_null=True, help_text="wins / bids")
    posts_accepted = serializers.IntegerField()
    posts_rejected = serializers.IntegerField()
    posts_failed = serializers.IntegerField()
    rejection_rate = serializers.FloatField(allow_null=True)
    top_rejection_reasons = ReasonCountSerializer(many=True)
    returns = serializers.IntegerField()
    revenue = serializers.DecimalField(**MONEY)
    average_price = serializers.DecimalField(**MONEY, allow_null=True)
    ping_latency_p50_ms = serializers.FloatField(allow_null=True)
    ping_latency_p95_ms = serializers.FloatField(allow_null=True)
    cap_usage = CapUsageSerializer(many=True, help_text="Caps in their current period.")
    health = serializers.CharField()


class SourceRowSerializer(serializers.Serializer):
    source_id = serializers.IntegerField()
    source = serializers.CharField()
    submitted = serializers.IntegerField()
    invalid = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    accepted = serializers.IntegerField()
    sold = serializers.IntegerField()
    sell_through = serializers.FloatField(allow_null=True)
    revenue = serializers.DecimalField(**MONEY)
    payout = serializers.DecimalField(**MONEY)
    margin = serializers.DecimalField(**MONEY)
    returns = serializers.IntegerField()
    missing_sub_id = serializers.IntegerField()
    missing_consent = serializers.IntegerField()
    pings = serializers.IntegerField(help_text="Inbound pings received.")
    ping_bid_rate = serializers.FloatField(
        allow_null=True, help_text="Share of the pings answered with a price."
    )
    ping_to_post = serializers.FloatField(
        allow_null=True, help_text="Share of the priced pings whose lead was posted."
    )


# A report's tiers: lead scoring's, and the leads it did not score.
REPORT_TIERS = [*Tier.values, "unscored"]


class TierRowSerializer(serializers.Serializer):
    tier = serializers.ChoiceField(
        choices=REPORT_TIERS,
        help_text="The leads' score tier at intake; unscored: invalid leads and leads of verticals "
        "without scoring rules (listed only when there are some).",
    )
    label = serializers.CharField()
    received = serializers.IntegerField()
    accepted = serializers.IntegerField()
    sold = serializers.IntegerField()
    sell_through = serializers.FloatField(allow_null=True, help_text="sold / accepted")
    revenue = serializers.DecimalField(**MONEY, help_text="Of the sales not returned.")
    average_sale_price = serializers.DecimalField(**MONEY, allow_null=True)
    revenue_per_accepted_lead = serializers.DecimalField(**MONEY, allow_null=True)


# Members of a return's answer that the platform sets: a buyer who sends them is told so.
RETURN_READ_ONLY = ("returned_at", "refunded", "status")


class ReturnRequestSerializer(serializers.Serializer):
    lead_id = serializers.UUIDField(help_text="The lead as we sent it to you.")
    reason = serializers.ChoiceField(choices=ReturnReason.choices)
    note = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text="Required for other."
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        """Refuse, by name, members a return does not have (the refund, its time, a status)."""
        extra: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            for name in data:
                if name in RETURN_READ_ONLY:
                    extra[str(name)] = ["Read-only: the platform sets it when the lead returns."]
                elif name not in self.fields:
                    extra[str(name)] = ["Unknown member; a return has lead_id, reason and note."]
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            raise serializers.ValidationError({**exc.detail, **extra}) from None
        if extra:
            raise serializers.ValidationError(extra)
        return value


class ReturnSerializer(serializers.Serializer):
    lead_id = serializers.UUIDField(source="sale.lead_id")
    reason = serializers.CharField()
    note = serializers.CharField()
    returned_at = serializers.DateTimeField(source="created_at")
    refunded = serializers.DecimalField(**MONEY, source="sale.price")
