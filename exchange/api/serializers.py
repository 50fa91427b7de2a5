"""The inbound ping's representations (for the schema)."""

from __future__ import annotations

from rest_framework import serializers

from exchange.models import PingStatus


class PingSerializer(serializers.Serializer):
    """A ping's body; a member it does not name is refused (exchange.api.schema says so)."""

    vertical = serializers.SlugField(help_text="GET /api/v1/verticals/ lists yours.")
    fields = serializers.DictField(
        help_text="The vertical's ping fields only: never personal data (sent with the post)."
    )
    sub_id = serializers.CharField(required=False, max_length=255)
    test = serializers.BooleanField(required=False, default=False)
    email_sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="SHA-256 (hex) of the e-mail trimmed and lower-cased: a duplicate check "
        "before the post.",
    )
    phone_sha256 = serializers.RegexField(
        r"^[0-9a-f]{64}$",
        required=False,
        help_text="SHA-256 (hex) of the phone in E.164 (+12125550142).",
    )


class PingAnswerSerializer(serializers.Serializer):
    """A ping's answer; its money named as on every partner surface (leads.prices)."""

    ping_id = serializers.UUIDField(help_text="Post the lead with it as `ping_id`.")
    status = serializers.ChoiceField(choices=[PingStatus.BID, PingStatus.NO_BID])
    payout = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        allow_null=True,
        help_text="What you are paid if the post sells (null: no bid).",
    )
    buyer_price = serializers.DecimalField(
        max_digits=10,
        decimal_places=2,
        required=False,
        allow_null=True,
        help_text="What the buyers bid: only for a source set to see it (absent otherwise).",
    )
    expires_at = serializers.DateTimeField(
        allow_null=True, help_text="Post before this time, or ping again."
    )
