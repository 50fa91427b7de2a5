"""What a buyer's request may say about a lead: the context field mappings and request templates
read (pure, no database).

    fields   the vertical's normalised fields and their enrichment (city, county, state, time_zone)
    lead     id, created, sub_id, source {id, name}, vertical, test, score, tier
    consent  text, timestamp, ip, trustedform_cert_url, jornaya_leadid, page_url, user_agent,
             sellers
    auction  bid (this contract's bid or price), floor
    ping     what the response rule captured from this buyer's answer to the ping (reference,
             price and every named capture); empty on a ping
    secrets  the contract's named secrets
    extra    the fields the source sent that the vertical does not know, kept under its posting
             profile's policy (`extra.affiliate_click`); empty on a ping, as they may be personal

A ping is anonymous: its context holds only the vertical's ping fields, and of the consent
record only what identifies the consent, not the consumer (no IP address, no user agent).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# What a ping may carry of the consent record: it proves consent without naming the consumer.
PING_CONSENT_KEYS = frozenset({"text", "timestamp", "trustedform_cert_url", "jornaya_leadid"})
# Paths into the context that hold personal data beyond the vertical's personal fields.
PERSONAL_CONTEXT_PATHS = frozenset({"consent.ip", "consent.user_agent"})
_MISSING = object()


def lead_context(
    lead: Any,
    *,
    kind: str,
    ping_fields: frozenset[str] = frozenset(),
    bid: Decimal | None = None,
    floor: Decimal | None = None,
    ping: Mapping[str, Any] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the context of a ping (`kind="ping"`) or post of the lead to one contract."""
    consent = lead.consent if isinstance(lead.consent, dict) else {}
    data = lead.data if isinstance(lead.data, dict) else {}
    extra = lead.extra if isinstance(lead.extra, dict) else {}
    if kind == "ping":
        data = {name: value for name, value in data.items() if name in ping_fields}
        consent = {key: value for key, value in consent.items() if key in PING_CONSENT_KEYS}
    source = lead.source
    received = lead.received_at
    return {
        "fields": data,
        "lead": {
            "id": str(lead.pk),
            "created": received.isoformat() if received is not None else "",
            "sub_id": lead.sub_id,
            "source": {"id": lead.source_id, "name": source.name if source else ""},
            "vertical": lead.vertical.slug,
            "test": bool(lead.is_test),
            "score": lead.score,
            "tier": lead.tier,
        },
        "consent": dict(consent),
        "auction": {"bid": bid, "floor": floor},
        "ping": dict(ping or {}) if kind != "ping" else {},
        "secrets": dict(secrets or {}),
        "extra": dict(extra) if kind != "ping" else {},
    }


def context_value(context: Mapping[str, Any], path: str) -> Any:
    """Return the value a field mapping's source names: a bare name is one of the lead's fields
    (`zip_code`), a dotted name a path into the context (`lead.id`, `ping.bid_id`); None when
    there is no such value."""
    if "." not in path:
        return context["fields"].get(path)
    value: Any = context
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return None
    return value


def is_context_path(path: str) -> bool:
    """Whether a mapping's source names a path into the context rather than a lead field."""
    return "." in path
