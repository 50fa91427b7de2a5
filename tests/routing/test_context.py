"""The lead context a buyer's request may read (routing/context.py), and field mappings that read
it by dotted path."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

from routing.context import context_value, lead_context
from routing.mapping import MappingSpec, map_fields

LEAD = SimpleNamespace(
    pk="6f1c2d3e-0000-4000-8000-000000000001",
    data={"first_name": "Ana", "email": "ana@example.com", "zip_code": "60614", "city": "Chicago"},
    consent={
        "text": "I agree.",
        "ip": "203.0.113.9",
        "user_agent": "Mozilla/5.0",
        "trustedform_cert_url": "https://cert.trustedform.com/abc",
        "jornaya_leadid": "LEADID-1",
    },
    source=SimpleNamespace(name="BrightPath Media"),
    source_id=7,
    vertical=SimpleNamespace(slug="auto-insurance"),
    received_at=datetime(2026, 12, 7, 9, 30, tzinfo=UTC),
    sub_id="spring",
    is_test=False,
    score=81,
    tier="hot",
    extra={"affiliate_click": "c-42"},
)


def test_a_posts_context_holds_the_whole_lead_the_auction_and_the_pings_answer():
    context = lead_context(
        LEAD,
        kind="post",
        bid=Decimal("14.50"),
        floor=Decimal("5.00"),
        ping={"reference": "b-1", "bid_id": "b-1"},
        secrets={"api_key": "k"},
    )

    assert context["fields"] == LEAD.data
    assert context["lead"] == {
        "id": LEAD.pk,
        "created": "2026-12-07T09:30:00+00:00",
        "sub_id": "spring",
        "source": {"id": 7, "name": "BrightPath Media"},
        "vertical": "auto-insurance",
        "test": False,
        "score": 81,
        "tier": "hot",
    }
    assert context["consent"] == LEAD.consent
    assert context["auction"] == {"bid": Decimal("14.50"), "floor": Decimal("5.00")}
    assert context["ping"] == {"reference": "b-1", "bid_id": "b-1"}
    assert context["secrets"] == {"api_key": "k"}
    assert context["extra"] == {"affiliate_click": "c-42"}


def test_a_pings_context_holds_its_ping_fields_and_consent_proof_but_no_consumer():
    context = lead_context(LEAD, kind="ping", ping_fields=frozenset({"zip_code"}), ping={"x": 1})

    assert context["fields"] == {"zip_code": "60614"}
    assert context["consent"] == {
        "text": "I agree.",
        "trustedform_cert_url": "https://cert.trustedform.com/abc",
        "jornaya_leadid": "LEADID-1",
    }
    assert context["ping"] == {}


def test_a_dotted_name_reads_the_context_and_a_bare_name_a_field():
    context = lead_context(LEAD, kind="post", ping={"bid_id": "b-9"})

    assert context_value(context, "zip_code") == "60614"
    assert context_value(context, "lead.source.name") == "BrightPath Media"
    assert context_value(context, "ping.bid_id") == "b-9"
    assert context_value(context, "consent.nothing") is None
    assert context_value(context, "lead.id.deeper") is None


def test_field_mappings_read_the_context_and_a_ping_only_what_it_may_carry():
    mappings = [
        MappingSpec(source_fields=("zip_code",), target_field="Zip"),
        MappingSpec(source_fields=("lead.id",), target_field="LeadId"),
        MappingSpec(source_fields=("consent.trustedform_cert_url",), target_field="Cert"),
        MappingSpec(source_fields=("consent.ip",), target_field="IP"),
        MappingSpec(source_fields=("ping.bid_id",), target_field="BidId", applies_to="post"),
        MappingSpec(source_fields=("email",), target_field="Email"),
    ]
    ping_fields = frozenset({"zip_code"})
    post = lead_context(LEAD, kind="post", ping={"bid_id": "b-9"})
    ping = lead_context(LEAD, kind="ping", ping_fields=ping_fields)

    assert map_fields("post", LEAD.data, mappings, ping_fields, post) == {
        "Zip": "60614",
        "LeadId": LEAD.pk,
        "Cert": "https://cert.trustedform.com/abc",
        "IP": "203.0.113.9",
        "BidId": "b-9",
        "Email": "ana@example.com",
    }
    assert map_fields("ping", LEAD.data, mappings, ping_fields, ping) == {
        "Zip": "60614",
        "LeadId": LEAD.pk,
        "Cert": "https://cert.trustedform.com/abc",
    }


def test_a_mapping_reads_the_leads_extra_data_in_a_post_never_in_a_ping():
    mapping = MappingSpec(target_field="click", source_fields=("extra.affiliate_click",))

    post = map_fields("post", LEAD.data, [mapping], frozenset(), lead_context(LEAD, kind="post"))
    ping = map_fields("ping", LEAD.data, [mapping], frozenset(), lead_context(LEAD, kind="ping"))

    assert post == {"click": "c-42"}
    assert ping == {}
