"""Routing runs whose contracts speak through request templates: the ping's captured id carried
into the post, the lead's whole context in the body, secrets and personal values kept out of
what is stored (the simulator bids; a recording receiver on 127.0.0.1 plays the buyer's post)."""

from __future__ import annotations

import json
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from buyers.models import (
    AnswerFormat,
    BodyFormat,
    ContractSecret,
    EndpointKind,
    FieldMapping,
    HttpMethod,
    ResponseRule,
)
from leads.models import LeadStatus
from routing.engine import lead_route
from routing.models import Attempt, AttemptOutcome, Sale
from tests.outbound.receiver import receiving

pytestmark = pytest.mark.django_db

SECRET = "sk-live-9f8e7d6c5b4a"
CONSENT = {
    "text": "I agree to be called by Acme Insurance.",
    "timestamp": "2026-12-01T10:00:00+00:00",
    "ip": "203.0.113.9",
    "trustedform_cert_url": "https://cert.trustedform.com/2f4e6a8c",
}
POST_TEMPLATE = """{
  "bid_id": "{{ ping.bid_id }}",
  "reference": "{{ ping.reference }}",
  "lead": {"id": "{{ lead.id }}", "source": "{{ lead.source.name }}", "test": "{{ lead.test }}"},
  "contact": {
    "name": "{{ fields.first_name }} {{ fields.last_name }}",
    "phone": {"area": "{{ fields.phone | area_code }}", "line": "{{ fields.phone | phone_line }}"},
    "zip": "{{ fields.zip_code | int }}"
  },
  "consent": {"tcpa": "{{ consent.text }}", "certificate": "{{ consent.trustedform_cert_url }}"},
  "price": "{{ auction.bid }}",
  "key": "{{ secrets.api_key }}"
}"""


def template_contract(market, receiver, **endpoint):
    """A ping/post contract: the simulator bids 12 (and names its bid), the receiver takes the
    post, rendered from POST_TEMPLATE unless `endpoint` says otherwise."""
    contract = market.contract(ping="bid=12")
    ContractSecret.objects.create(contract=contract, name="api_key", value=SECRET)
    ResponseRule.objects.create(
        contract=contract, kind=EndpointKind.PING, captures={"bid_id": "bid_id"}
    )
    ResponseRule.objects.create(
        contract=contract,
        kind=EndpointKind.POST,
        answer_format=AnswerFormat.TEXT,
        success_status_codes="200",
        success_path="",
        price_path="",
        reason_path="",
        reference_path="",
    )
    post = contract.endpoints.get(kind=EndpointKind.POST)
    post.url = receiver.url("/leads")
    post.body_template = POST_TEMPLATE
    for name, value in endpoint.items():
        setattr(post, name, value)
    post.save()
    return contract


def test_the_post_carries_the_pings_bid_id_and_the_leads_context(market):
    with receiving(200) as receiver:
        contract = template_contract(market, receiver)
        lead = market.lead(consent=CONSENT, sub_id="spring")

        assert lead_route(lead_id=str(lead.pk)).startswith(LeadStatus.SOLD)

    ping = Attempt.objects.get(lead=lead, kind=EndpointKind.PING)
    assert ping.captures["bid_id"].startswith("bid")
    (received,) = receiver.received
    body = json.loads(received["body"])
    assert body["bid_id"] == ping.captures["bid_id"] == ping.buyer_reference
    assert body["reference"] == ping.buyer_reference
    assert body["lead"] == {"id": str(lead.pk), "source": market.source.name, "test": False}
    phone = lead.data["phone"]
    assert body["contact"] == {
        "name": f"{lead.data['first_name']} {lead.data['last_name']}",
        "phone": {"area": phone[2:5], "line": phone[-4:]},
        "zip": int(lead.data["zip_code"]),
    }
    assert body["consent"] == {
        "tcpa": CONSENT["text"],
        "certificate": CONSENT["trustedform_cert_url"],
    }
    assert body["price"] == 12
    assert body["key"] == SECRET
    assert received["headers"]["Accept"].startswith("text/plain")
    sale = Sale.objects.get(lead=lead)
    assert (sale.contract_id, sale.price) == (contract.pk, Decimal("12.00"))
    post = Attempt.objects.get(lead=lead, kind=EndpointKind.POST)
    assert SECRET not in post.request_body
    assert json.loads(post.request_body)["key"] == "••••"


def test_a_ping_never_carries_personal_fields_whatever_its_template_reads(market):
    with receiving(200) as receiver:
        contract = template_contract(market, receiver)
        ping = contract.endpoints.get(kind=EndpointKind.PING)
        ping.body_template = (
            '{"zip": "{{ fields.zip_code }}", "email": "{{ fields.email }}", '
            '"ip": "{{ consent.ip }}", "cert": "{{ consent.trustedform_cert_url }}"}'
        )
        ping.save()
        lead = market.lead(consent=CONSENT)

        lead_route(lead_id=str(lead.pk))

    sent = json.loads(Attempt.objects.get(lead=lead, kind=EndpointKind.PING).request_body)
    assert sent == {
        "zip": lead.data["zip_code"],
        # What a ping may not carry is not in its context: an exact leaf of it is null.
        "email": None,
        "ip": None,
        "cert": CONSENT["trustedform_cert_url"],
    }


def test_a_get_posts_stored_url_masks_personal_values_the_buyer_still_receives(market):
    with receiving(200) as receiver:
        contract = template_contract(
            market,
            receiver,
            method=HttpMethod.GET,
            body_template="",
            query={"email": "{{ fields.email }}", "zip": "{{ fields.zip_code }}"},
        )
        FieldMapping.objects.create(
            contract=contract, source_field="phone", target_field="Phone", applies_to="post"
        )
        lead = market.lead()

        assert lead_route(lead_id=str(lead.pk)).startswith(LeadStatus.SOLD)

    (received,) = receiver.received
    query = parse_qs(urlsplit(received["path"]).query)
    assert query["email"] == [lead.data["email"]]
    assert query["Phone"] == [lead.data["phone"]]
    stored = Attempt.objects.get(lead=lead, kind=EndpointKind.POST).url
    stored_query = parse_qs(urlsplit(stored).query)
    assert stored_query["email"] == ["••••"]
    assert stored_query["Phone"] == ["••••"]
    assert stored_query["zip"] == [lead.data["zip_code"]]
    assert lead.data["email"] not in stored


def test_a_lead_its_template_cannot_format_is_an_error_attempt_saying_why(market):
    with receiving(200) as receiver:
        template_contract(
            market, receiver, body_template='{"phone": "{{ fields.phone | phone(\'10\') }}"}'
        )
        lead = market.lead(data={**market.lead().data, "phone": "not a phone"})

        assert lead_route(lead_id=str(lead.pk)).startswith(LeadStatus.UNSOLD)

    assert receiver.received == []
    post = Attempt.objects.get(lead=lead, kind=EndpointKind.POST)
    assert post.outcome == AttemptOutcome.ERROR
    assert "phone" in post.reason
    assert "not a phone" not in post.reason


def test_an_xml_post_is_rendered_escaped_and_sent_as_xml(market):
    with receiving(200) as receiver:
        template_contract(
            market,
            receiver,
            body_format=BodyFormat.XML,
            body_template=(
                '<?xml version="1.0"?>\n<Lead xmlns="urn:buyer" id="{{ lead.id }}">'
                "<Name>{{ fields.first_name }}</Name><Bid>{{ ping.bid_id }}</Bid></Lead>"
            ),
        )
        lead = market.lead(data={**market.lead().data, "first_name": 'O"Neil & <Sons>'})

        assert lead_route(lead_id=str(lead.pk)).startswith(LeadStatus.SOLD)

    (received,) = receiver.received
    assert received["headers"]["Content-Type"].startswith("application/xml")
    assert "<Name>O&quot;Neil &amp; &lt;Sons&gt;</Name>" in received["body"]


def test_a_get_post_without_post_mappings_masks_every_personal_field_it_sends(market):
    with receiving(200) as receiver:
        contract = template_contract(market, receiver, method=HttpMethod.GET, body_template="")
        # A mapping for the ping only: the post sends the lead's fields as they are.
        FieldMapping.objects.create(
            contract=contract, source_field="zip_code", target_field="Zip", applies_to="ping"
        )
        lead = market.lead()

        assert lead_route(lead_id=str(lead.pk)).startswith(LeadStatus.SOLD)

    stored = Attempt.objects.get(lead=lead, kind=EndpointKind.POST).url
    for name in ("first_name", "last_name", "email", "phone"):
        assert lead.data[name] not in stored, name
    assert parse_qs(urlsplit(stored).query)["email"] == ["••••"]


def test_a_post_reading_a_secret_the_contract_lost_is_an_error_not_an_empty_key(market):
    with receiving(200) as receiver:
        contract = template_contract(market, receiver)
        contract.secrets.all().delete()
        lead = market.lead()

        assert lead_route(lead_id=str(lead.pk)).startswith(LeadStatus.UNSOLD)

    assert receiver.received == []
    post = Attempt.objects.get(lead=lead, kind=EndpointKind.POST)
    assert post.outcome == AttemptOutcome.ERROR
    assert "api_key, which the contract does not hold" in post.reason


def test_a_template_failing_outside_jinja_is_an_error_attempt_not_a_crash(market):
    with receiving(200) as receiver:
        template_contract(market, receiver, body_template='{"a": "{{ {(1, 2): 3} }}"}')
        lead = market.lead()

        assert lead_route(lead_id=str(lead.pk)).startswith(LeadStatus.UNSOLD)

    post = Attempt.objects.get(lead=lead, kind=EndpointKind.POST)
    assert (post.outcome, post.reason) == (
        AttemptOutcome.ERROR,
        "The template cannot be rendered (TypeError).",
    )
