"""The ops tools of issue 18, through the admin's URLs: a test ping or post built exactly as
routing builds it (templates, the lead's context, the ping's answer) and shown as sent but for
its secrets; 'Try this answer'; an attempt's answer read again by today's rules.

The buyer is the Lead Prosper fake (tests/buyers/fakes/leadprosper.py) on 127.0.0.1, set up by
its preset: it checks the credentials in the body and that a post carries a ping id it issued.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from buyers.models import (
    Contract,
    ContractSecret,
    DeliveryEndpoint,
    EndpointKind,
    FieldMapping,
    MappingApplies,
    PriceModel,
    ResponseRule,
)
from buyers.presets import preset_apply
from leads.models import Vertical
from routing.models import Attempt, AttemptOutcome, Sale
from tests.buyers.factories import ContractFactory
from tests.buyers.fakes.leadprosper import LeadProsperFake
from tests.demo import demo_vertical
from tests.leads.factories import LeadFactory
from tests.routing.factories import AttemptFactory, AuctionFactory
from tests.staff import staff_user

pytestmark = pytest.mark.django_db

# The Lead Prosper spec example's "Must be set to" credentials, the fake's defaults.
CREDENTIALS = {"lp_campaign_id": "6309", "lp_supplier_id": "12465", "lp_key": "yq0h0jphvp5"}
MASK = "••••"
# A solar lead as intake stores it (the demo's solar vertical), and its consent record.
SOLAR_DATA = {
    "first_name": "Dana",
    "last_name": "Ruiz",
    "email": "dana.ruiz@example.com",
    "phone": "+16025550143",
    "street_address": "12 Palm Lane",
    "zip_code": "85004",
    "state": "AZ",
    "city": "Phoenix",
    "county": "Maricopa",
    "homeowner": True,
    "monthly_electric_bill": 182.5,
    "utility_provider": "Arizona Public Service",
    "roof_shade": "partial_shade",
    "property_type": "townhouse",
    "purchase_timeline": "within_3_months",
}
CONSENT = {
    "text": "I agree to be contacted by Sun Harbor Solar.",
    "timestamp": "2026-05-01T14:02:00Z",
    "ip": "198.51.100.23",
    "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef",
    "jornaya_leadid": "0C2F5E7A-1B3D-4E6F-8A9B-0C1D2E3F4A5B",
    "page_url": "https://solar.example/quote",
    "user_agent": "Mozilla/5.0 (Test)",
}
# Lead Prosper's answers, in the shape of its published examples.
PING_ACCEPTED = {
    "status": "ACCEPTED",
    "code": 0,
    "message": "",
    "ping_id": "2cbd6c4e8f0a1b3d5e7f",
    "bids": [{"bid_id": "9a8b7c6d5e4f", "payout": 25.0}],
}
POST_ACCEPTED = {"status": "ACCEPTED", "code": 0, "message": "", "lead_id": "L-77", "payout": 25.0}


def solar() -> Vertical:
    return demo_vertical("solar")


def logged_in(role: str | None) -> Client:
    client = Client()
    client.force_login(staff_user(role))
    return client


def tool_url(contract: Contract, tool: str) -> str:
    return reverse(f"admin:buyers_contract_{tool}", args=[contract.pk])


@pytest.fixture
def lead_prosper() -> Iterator[LeadProsperFake]:
    with LeadProsperFake() as fake:
        yield fake


@pytest.fixture
def contract(lead_prosper: LeadProsperFake) -> Contract:
    """A contract filled from the Lead Prosper preset, its secrets added, its URLs the fake's."""
    contract = ContractFactory(vertical=solar())
    preset_apply(contract=contract, slug="leadprosper")
    for name, value in CREDENTIALS.items():
        ContractSecret.objects.create(contract=contract, name=name, value=value)
    for endpoint in contract.endpoints.all():
        endpoint.url = lead_prosper.url(f"/{endpoint.kind}")
        endpoint.save()
    return Contract.objects.get(pk=contract.pk)


def shown_body(page) -> dict:
    """The request body the test page shows (as sent, secrets masked)."""
    return json.loads(page.context["preview"].request.body_text)


def assert_no_secret_in(html: str) -> None:
    for value in CREDENTIALS.values():
        assert value not in html


# --- Test ping and post: the engine's request, shown as sent ----------------------------------


def test_a_test_ping_of_the_sample_lead_is_the_engines_request_shown_with_secrets_masked(
    contract, lead_prosper
):
    page = logged_in("Ops").post(tool_url(contract, "test"), {"kind": "ping", "send": "1"})

    html = page.content.decode()
    (exchange,) = lead_prosper.received
    sent = exchange.request.json()
    # The template's typed leaves, the secrets in the clear, to the buyer only.
    assert (sent["lp_campaign_id"], sent["lp_supplier_id"], sent["lp_key"]) == (
        6309,
        12465,
        "yq0h0jphvp5",
    )
    # The sample lead: a test lead of the sample source, with the vertical's sample fields.
    assert (sent["lp_action"], sent["lp_subid1"], sent["lp_subid2"]) == ("test", "1", "sample-sub")
    assert (sent["zip_code"], sent["state"]) == ("10001", "NY")
    # The page shows exactly what was sent, but for the secrets.
    masked = dict.fromkeys(CREDENTIALS, MASK)
    assert shown_body(page) == {**sent, **masked}
    assert_no_secret_in(html)
    assert 'id="parsed-accepted">yes' in html
    assert 'id="parsed-price">$25.00' in html
    ping_id = json.loads(exchange.answer_body)["ping_id"]
    assert f'id="parsed-reference">{ping_id}' in html
    assert f'data-capture="ping_id">{ping_id}' in html
    assert not Attempt.objects.exists()


def test_a_test_post_of_a_real_lead_carries_its_consent_source_and_its_latest_pings_captures(
    contract, lead_prosper
):
    lead = LeadFactory(
        vertical=contract.vertical, data=SOLAR_DATA, consent=CONSENT, sub_id="spring"
    )
    auction = AuctionFactory(lead=lead)
    AttemptFactory(auction=auction, contract=contract, captures={"ping_id": "an-older-ping"})
    issued = lead_prosper.pings.issue("the-latest-ping", price=Decimal("25.00"))
    AttemptFactory(
        auction=auction,
        contract=contract,
        price=Decimal("25.00"),
        buyer_reference=issued,
        captures={"ping_id": issued},
    )

    page = logged_in("Ops").post(
        tool_url(contract, "test"), {"kind": "post", "lead": str(lead.pk), "send": "1"}
    )

    html = page.content.decode()
    (exchange,) = lead_prosper.received
    sent = exchange.request.json()
    assert sent["lp_ping_id"] == "the-latest-ping"
    assert (sent["ip_address"], sent["user_agent"], sent["landing_page_url"]) == (
        CONSENT["ip"],
        CONSENT["user_agent"],
        CONSENT["page_url"],
    )
    assert (sent["lp_subid1"], sent["lp_subid2"], sent["lp_action"]) == (
        str(lead.source_id),
        "spring",
        "",
    )
    assert (sent["first_name"], sent["phone"]) == ("Dana", "6025550143")
    assert shown_body(page) == {**sent, **dict.fromkeys(CREDENTIALS, MASK)}
    assert_no_secret_in(html)
    assert "<code>ping.ping_id</code></th><td>the-latest-ping" in html
    assert 'id="parsed-accepted">yes' in html
    assert 'id="parsed-price">$25.00' in html
    assert Attempt.objects.count() == 2
    assert not Sale.objects.exists()


def test_a_preview_of_the_sample_leads_post_carries_a_sample_ping_answer_and_sends_nothing(
    contract, lead_prosper
):
    page = logged_in("Ops").get(tool_url(contract, "test"), {"kind": "post"})

    html = page.content.decode()
    body = shown_body(page)
    assert body["lp_ping_id"] == "sample-ping_id"
    # The sample lead's full consent record and contact fields reach a post.
    assert (body["ip_address"], body["landing_page_url"]) == (
        "203.0.113.7",
        "https://quotes.example/auto",
    )
    assert body["email"] == "jane.sample@example.com"
    assert body["lp_key"] == MASK
    assert "From a sample ping answer" in html
    assert "<code>ping.ping_id</code></th><td>sample-ping_id" in html
    assert_no_secret_in(html)
    assert lead_prosper.received == []


def test_a_real_lead_never_pinged_by_the_contract_posts_without_a_ping_answer(contract):
    lead = LeadFactory(vertical=contract.vertical, data=SOLAR_DATA, consent=CONSENT)

    page = logged_in("Ops").get(tool_url(contract, "test"), {"kind": "post", "lead": lead.pk})

    # Undefined at run time: a lone expression renders as null.
    assert shown_body(page)["lp_ping_id"] is None
    assert "never pinged by this contract" in page.content.decode()


def test_a_fixed_price_post_is_given_the_price_as_its_bid_and_no_ping_answer(simulator):
    contract = ContractFactory(price_model=PriceModel.FIXED, fixed_price=Decimal("20.00"))
    DeliveryEndpoint.objects.create(
        contract=contract,
        kind=EndpointKind.POST,
        url=f"{simulator.base_url}/post",
        body_template='{"bid": "{{ auction.bid }}", "lead": "{{ lead.id }}", "test": '
        '"{{ lead.test }}", "ping": "{{ ping.reference }}"}',
    )

    page = logged_in("Ops").get(tool_url(contract, "test"), {"kind": "post"})

    assert shown_body(page) == {
        "bid": 20.0,
        "lead": "00000000-0000-4000-8000-000000000000",
        "test": True,
        "ping": None,
    }
    assert "test-ping-answer" not in page.content.decode()


def test_a_sample_post_gives_a_field_mapping_the_ping_capture_it_names(simulator):
    contract = ContractFactory(deliverable=True)
    FieldMapping.objects.create(
        contract=contract,
        source_field="ping.bid_id",
        target_field="BidId",
        applies_to=MappingApplies.POST,
    )
    FieldMapping.objects.create(contract=contract, source_field="lead.id", target_field="LeadId")

    page = logged_in("Ops").get(tool_url(contract, "test"), {"kind": "post"})

    assert shown_body(page) == {
        "BidId": "sample-bid_id",
        "LeadId": "00000000-0000-4000-8000-000000000000",
    }


def test_a_key_in_the_query_string_is_masked_in_the_url_shown(simulator):
    contract = ContractFactory(price_model=PriceModel.FIXED, fixed_price=Decimal("20.00"))
    ContractSecret.objects.create(contract=contract, name="campaign_key", value="ck-0042-secret")
    DeliveryEndpoint.objects.create(
        contract=contract,
        kind=EndpointKind.POST,
        method="GET",
        url=f"{simulator.base_url}/post",
        query={"key": "{{ secrets.campaign_key }}", "sub": "{{ lead.sub_id }}"},
    )

    page = logged_in("Ops").get(tool_url(contract, "test"), {"kind": "post"})

    request = page.context["preview"].request
    assert "key=ck-0042-secret" in request.url
    html = page.content.decode()
    assert "ck-0042-secret" not in html
    assert f"GET {request.masked_url}" in html.replace("&amp;", "&")
    assert "key=%E2%80%A2%E2%80%A2%E2%80%A2%E2%80%A2" in request.masked_url
    assert "sub=sample-sub" in request.masked_url


# --- Try this answer -----------------------------------------------------------------------------


def test_try_this_answer_reads_the_buyers_spec_answer_by_the_contracts_rules(
    contract, lead_prosper
):
    page = logged_in("Ops").post(
        tool_url(contract, "answer"),
        {"kind": "ping", "status": "200", "body": json.dumps(PING_ACCEPTED)},
    )

    html = page.content.decode()
    assert 'id="answer-accepted">yes' in html
    assert 'id="answer-price">$25.00' in html
    assert 'id="answer-reference">2cbd6c4e8f0a1b3d5e7f' in html
    assert 'data-capture="ping_id">2cbd6c4e8f0a1b3d5e7f' in html
    assert lead_prosper.received == []
    assert not Attempt.objects.exists()


def test_try_this_answer_keeps_the_buyers_reason_for_a_refused_post(contract):
    answer = {"status": "ERROR", "code": 1001, "message": "Missing required parameter lp_ping_id"}

    page = logged_in("Ops").post(
        tool_url(contract, "answer"), {"kind": "post", "status": "200", "body": json.dumps(answer)}
    )

    html = page.content.decode()
    assert 'id="answer-accepted">no' in html
    assert 'id="answer-reason">Missing required parameter lp_ping_id' in html
    assert 'id="answer-captures">none' in html


def test_try_this_answer_says_routing_declines_a_bid_without_a_price(contract):
    answer = {**PING_ACCEPTED, "bids": []}

    page = logged_in("Ops").post(
        tool_url(contract, "answer"), {"kind": "ping", "status": "200", "body": json.dumps(answer)}
    )

    html = page.content.decode()
    assert 'id="answer-accepted">yes' in html
    assert "Routing takes this for a decline: a bid without a price." in html


def test_try_this_answer_reads_an_error_status_as_not_accepted(contract):
    page = logged_in("Ops").post(
        tool_url(contract, "answer"),
        {"kind": "post", "status": "503", "body": json.dumps(POST_ACCEPTED)},
    )

    assert 'id="answer-accepted">no' in page.content.decode()


@pytest.mark.parametrize("status", ["99", "600", "abc", ""])
def test_try_this_answer_refuses_a_status_that_is_not_http_as_a_form_error(contract, status):
    page = logged_in("Ops").post(
        tool_url(contract, "answer"), {"kind": "post", "status": status, "body": "{}"}
    )

    html = page.content.decode()
    assert page.status_code == 200
    assert page.context["form"].errors["status"]
    assert "answer-result" not in html


def test_the_answer_page_starts_at_status_200_and_is_linked_from_the_contract_page(contract):
    client = logged_in("Ops")
    change = client.get(reverse("admin:buyers_contract_change", args=[contract.pk]))
    assert tool_url(contract, "answer") in change.content.decode()

    page = client.get(tool_url(contract, "answer"), {"kind": "ping"})

    html = page.content.decode()
    assert 'name="status" value="200"' in html
    assert page.context["form"]["kind"].value() == "ping"


@pytest.mark.parametrize(("role", "status"), [("Sales", 403), (None, 403), ("Admin", 200)])
def test_only_those_who_configure_contracts_may_try_answers(contract, role, status):
    client = logged_in(role)

    assert client.get(tool_url(contract, "answer")).status_code == status
    response = client.post(
        tool_url(contract, "answer"), {"kind": "post", "status": "200", "body": "{}"}
    )
    assert response.status_code == status


# --- Replay: a stored answer read by today's rules ---------------------------------------------


def recorded_attempt(contract: Contract, **fields: Any) -> Attempt:
    """An attempt at the contract for a solar lead of its own, recorded as `fields` say."""
    lead = LeadFactory(vertical=contract.vertical, data=SOLAR_DATA)
    return AttemptFactory(auction=AuctionFactory(lead=lead), contract=contract, **fields)


def attempt_page(client: Client, attempt: Attempt) -> str:
    return client.get(reverse("admin:routing_attempt_change", args=[attempt.pk])).content.decode()


def test_an_attempts_answer_is_read_again_by_todays_rules_beside_what_was_recorded(contract):
    # Recorded when the post rule was wrong: the buyer's acceptance was taken for a refusal.
    attempt = recorded_attempt(
        contract,
        kind=EndpointKind.POST,
        response_status=200,
        response_body=json.dumps(POST_ACCEPTED),
        outcome=AttemptOutcome.REJECTED,
        price=None,
        reason="not accepted",
    )

    html = attempt_page(logged_in("Ops"), attempt)

    assert "Read by today&#x27;s rules" in html or "Read by today's rules" in html
    assert "<th>Accepted</th><td>no (Rejected)</td><td>yes</td>" in html
    assert "<th>Price</th><td>-</td><td>$25.00</td>" in html
    assert "<th>Reference</th><td>-</td><td>L-77</td>" in html
    assert html.count("<strong>changed</strong>") == 4  # accepted, price, reason, reference


def test_a_replay_shows_a_capture_a_rule_fix_added(contract):
    attempt = recorded_attempt(
        contract,
        response_body=json.dumps(PING_ACCEPTED),
        outcome=AttemptOutcome.BID,
        price=Decimal("25.00"),
        buyer_reference="2cbd6c4e8f0a1b3d5e7f",
        captures={},
    )

    html = attempt_page(logged_in("Ops"), attempt)

    assert "<th>Capture ping_id</th><td>-</td><td>2cbd6c4e8f0a1b3d5e7f</td>" in html
    assert "<th>Price</th><td>$25.00</td><td>$25.00</td>" in html
    assert html.count("<strong>changed</strong>") == 1


def test_a_replay_follows_the_rule_as_it_is_now(contract):
    attempt = recorded_attempt(
        contract,
        kind=EndpointKind.POST,
        response_body=json.dumps(POST_ACCEPTED),
        outcome=AttemptOutcome.ACCEPTED,
    )
    ResponseRule.objects.filter(contract=contract, kind=EndpointKind.POST).update(
        success_values="SOLD"
    )

    html = attempt_page(logged_in("Ops"), attempt)

    assert "<th>Accepted</th><td>yes (Accepted)</td><td>no</td>" in html


def test_sales_see_a_replay_with_the_leads_personal_data_masked(contract):
    lead = LeadFactory(vertical=contract.vertical, data=SOLAR_DATA, email=SOLAR_DATA["email"])
    duplicate = {"status": "ERROR", "code": 1006, "message": f"Duplicate lead: {lead.email}"}
    attempt = AttemptFactory(
        auction=AuctionFactory(lead=lead),
        contract=contract,
        kind=EndpointKind.POST,
        response_body=json.dumps(duplicate),
        outcome=AttemptOutcome.REJECTED,
        price=None,
        reason=f"Duplicate lead: {lead.email}",
    )

    for_sales = attempt_page(logged_in("Sales"), attempt)
    for_ops = attempt_page(logged_in("Ops"), attempt)

    assert "<th>Reason</th>" in for_sales
    assert lead.email not in for_sales
    assert f"<th>Reason</th><td>Duplicate lead: {lead.email}</td>" in for_ops


def test_an_attempt_the_buyer_never_answered_has_nothing_to_read_again(contract):
    attempt = recorded_attempt(
        contract,
        response_status=None,
        response_body="",
        outcome=AttemptOutcome.TIMEOUT,
    )

    assert "The buyer never answered" in attempt_page(logged_in("Ops"), attempt)
