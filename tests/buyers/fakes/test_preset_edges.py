"""What the end-to-end tests (test_end_to_end.py) leave out, through the same calls routing makes
but without a worker: a contract filled from its preset, its ping or post made by
`routing.engine.mapping.request_for`, sent by `outbound.http.send_all` and read by
`routing.responses.parse_response` (tests/buyers/fakes/product.py).

- every preset of the catalogue: its spec and what ops fill in, exactly the secrets its templates
  read, and pings that name nobody;
- the ping/post fakes refuse a post whose ping id is missing, spent or expired, and the buyer's
  own words are what the response rule reads;
- DoublePositive's SOAP fault keeps its faultstring as the reason;
- the generic presets against the buyer simulator and against answers in their platforms' shapes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_plus

import pytest
from defusedxml.ElementTree import fromstring

from buyers.models import Contract, ResponseRule
from buyers.presets import presets
from buyers.readiness import secrets_named
from leads.models import Lead
from routing.engine.pings import ping_answer
from routing.responses import parse_response, rule_from_model
from simulator.server import SimulatorThread
from tests.buyers.fakes.boberdoo import BoberdooFake
from tests.buyers.fakes.doublepositive_b import DoublePositiveInsertLead
from tests.buyers.fakes.fake_server import ManualClock
from tests.buyers.fakes.leadprosper import LeadProsperFake
from tests.buyers.fakes.leadspedia import LeadsPediaFake
from tests.buyers.fakes.product import ANSWERS, build, exchange, preset_contract
from tests.demo import demo_vertical
from tests.leads.factories import LeadFactory

pytestmark = pytest.mark.django_db

CONSENT = {
    "text": "I agree to be contacted by Sun Harbor and its partners about my quote.",
    "timestamp": "2026-05-01T14:02:00Z",
    "ip": "203.0.113.7",
    "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef",
    "jornaya_leadid": "0C2F5E7A-1B3D-4E6F-8A9B-0C1D2E3F4A5B",
    "page_url": "https://quotes.example/get-a-quote",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Edge-Browser/1.0",
}
# The lead as intake stores it: normalised, and enriched from its ZIP code.
CONTACT = {
    "first_name": "Dana",
    "last_name": "O'Ruiz & <Sons>",
    "email": "dana.ruiz@example.com",
    "phone": "+16025550143",
    "street_address": '12 "Palm" Lane',
    "zip_code": "85004",
    "state": "AZ",
    "city": "Phoenix",
    "county": "Maricopa County",
    "time_zone": "America/Phoenix",
}
FIELDS = {slug: {**CONTACT, **answers} for slug, answers in ANSWERS.items()}
PERSONAL = (
    "Dana",
    "Ruiz",
    "dana.ruiz",
    "5550143",
    "Palm",
    CONSENT["ip"],
    CONSENT["user_agent"],
)


def lead_for(slug: str) -> Lead:
    """A lead of the preset's demo vertical, ready to be routed."""
    vertical = demo_vertical(presets()[slug].vertical)
    return LeadFactory(
        vertical=vertical,
        data=FIELDS[vertical.slug],
        consent=CONSENT,
        sub_id="spring-campaign",
        received_at=datetime(2026, 5, 1, 14, 3, tzinfo=UTC),
    )


# --- Every preset of the catalogue ------------------------------------------------------------

SLUGS = sorted(presets())
PING_POST = [slug for slug in SLUGS if presets()[slug].price_model == "ping_post"]


@pytest.mark.parametrize("slug", SLUGS)
def test_a_preset_names_its_spec_and_what_ops_fill_in(slug: str) -> None:
    preset = presets()[slug]

    assert preset.name
    assert preset.spec
    assert "fill in" in preset.description.lower()
    kinds = sorted(endpoint["kind"] for endpoint in preset.parts["endpoints"])
    assert kinds == (["ping", "post"] if preset.price_model == "ping_post" else ["post"])
    assert sorted(rule["kind"] for rule in preset.parts["response_rules"]) == kinds


@pytest.mark.parametrize("slug", SLUGS)
def test_a_preset_declares_exactly_the_secrets_its_templates_read(slug: str) -> None:
    preset = presets()[slug]
    templates = [
        text
        for endpoint in preset.parts["endpoints"]
        for text in (
            endpoint.get("body_template", ""),
            *endpoint.get("query", {}).values(),
            *endpoint.get("headers", {}).values(),
        )
    ]

    read = set().union(*(secrets_named(text) for text in templates))

    assert read == {secret.name for secret in preset.secrets}
    assert all(secret.help for secret in preset.secrets)


@pytest.mark.parametrize("slug", PING_POST)
def test_a_presets_ping_names_nobody(slug: str) -> None:
    # Numbers: some presets send an id secret as a JSON number.
    secrets = {secret.name: "7654321" for secret in presets()[slug].secrets}
    contract, _ = preset_contract(slug, "https://buyer.example", secrets)

    ping = build(contract, "ping", lead_for(slug))

    sent = "\n".join(
        (unquote_plus(ping.url), json.dumps(ping.headers), unquote_plus(ping.body.decode()))
    )
    assert not [word for word in PERSONAL if word in sent], sent


# --- The ping id a post must carry back ------------------------------------------------------


PingPostFake = Callable[[ManualClock], Any]
# Per fake: how to start it, the secrets it wants, and its words for a missing, spent and expired
# ping id, as the preset's response rule reads them.
PING_ID_BUYERS: dict[str, tuple[PingPostFake, dict[str, str], tuple[str, str, str]]] = {
    "boberdoo": (
        lambda clock: BoberdooFake(key="bbd-key-4f1c2a", lead_type="12", clock=clock),
        {"api_key": "bbd-key-4f1c2a", "src": "leadswitch", "lead_type": "12"},
        ("Missing required field: Lead_ID", "Lead_ID already posted", "Lead_ID has expired"),
    ),
    "leadprosper": (
        lambda clock: LeadProsperFake(clock=clock),
        {"lp_campaign_id": "6309", "lp_supplier_id": "12465", "lp_key": "yq0h0jphvp5"},
        (
            "Missing required parameter lp_ping_id",
            "lp_ping_id was already used",
            "Expired lp_ping_id",
        ),
    ),
    "leadspedia": (
        lambda clock: LeadsPediaFake(clock=clock),
        {"lp_campaign_id": "64c9a3f1b2e7d", "lp_campaign_key": "Q7vXk2LmP9sRt4WyZb8N"},
        # A post without a ping id fails validation: msg says so, errors name the field.
        ("Invalid Data", "Ping ID Already Used", "Ping ID Expired"),
    ),
}


@dataclass(frozen=True)
class PingPostBuyer:
    """A ping/post fake connected through its preset, and its words for a bad ping id."""

    contract: Contract
    fake: Any
    clock: ManualClock
    missing: str
    spent: str
    expired: str

    def lead(self) -> Lead:
        return lead_for(self.contract.preset)


@pytest.fixture(params=sorted(PING_ID_BUYERS))
def buyer(request: pytest.FixtureRequest) -> Iterator[PingPostBuyer]:
    start, secrets, words = PING_ID_BUYERS[request.param]
    clock = ManualClock()
    with start(clock) as fake:
        contract, _ = preset_contract(request.param, fake.url(""), secrets)
        yield PingPostBuyer(contract, fake, clock, *words)


def test_a_post_without_the_pings_id_is_refused_in_the_buyers_words(buyer) -> None:
    lead = buyer.lead()
    assert exchange(buyer.contract, "ping", lead).parsed.accepted

    post = exchange(buyer.contract, "post", lead, ping={})

    assert not post.parsed.accepted
    assert post.parsed.reason == buyer.missing


def test_a_ping_id_posted_twice_is_refused_the_second_time_in_the_buyers_words(buyer) -> None:
    lead = buyer.lead()
    ping = exchange(buyer.contract, "ping", lead)
    answer = ping_answer(ping.parsed)

    first = exchange(buyer.contract, "post", lead, ping=answer)
    again = exchange(buyer.contract, "post", lead, ping=answer)

    assert first.parsed.accepted, first.result.body
    assert first.parsed.price == ping.parsed.price
    assert not again.parsed.accepted
    assert again.parsed.reason == buyer.spent


def test_an_expired_ping_id_is_refused_in_the_buyers_words(buyer) -> None:
    lead = buyer.lead()
    ping = exchange(buyer.contract, "ping", lead)
    buyer.clock.now += buyer.fake.pings.ttl_s + 1

    post = exchange(buyer.contract, "post", lead, ping=ping_answer(ping.parsed))

    assert not post.parsed.accepted
    assert post.parsed.reason == buyer.expired


# --- DoublePositive's SOAP fault --------------------------------------------------------------


def test_doublepositive_refusing_the_call_keeps_the_soap_faults_words() -> None:
    secrets = {"supplier_id": "77", "supplier_password": "not-the-password"}
    with DoublePositiveInsertLead(supplier_id="77", supplier_password="pw<&>") as dp:
        contract, _ = preset_contract(
            "doublepositive-insertlead", dp.base_url, secrets, fixed_price=Decimal("20.00")
        )

        post = exchange(contract, "post", lead_for("doublepositive-insertlead"))

    assert post.result.status == 500
    assert not post.parsed.accepted
    assert post.parsed.reason == "Invalid SupplierID or SupplierPassword."
    assert dp.leads == []


# --- The generic presets ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorThread]:
    with SimulatorThread(seed=18) as running:
        yield running


def generic_json(simulator: SimulatorThread, ping: str, post: str):
    contract, _ = preset_contract("generic-json-ping-post", simulator.base_url, {"api_key": "k"})
    # The simulator's answers are chosen by its query string, at /ping and /post.
    for endpoint in contract.endpoints.all():
        behaviour = ping if endpoint.kind == "ping" else post
        endpoint.url = f"{simulator.base_url}/{endpoint.kind}?{behaviour}"
        endpoint.save()
    contract.refresh_from_db()
    return contract


def test_the_generic_json_preset_carries_the_pings_bid_id_into_the_post(simulator) -> None:
    contract = generic_json(simulator, "bid=12.50", "price=12.50")
    lead = lead_for("generic-json-ping-post")

    ping = exchange(contract, "ping", lead)
    post = exchange(contract, "post", lead, ping=ping_answer(ping.parsed))

    assert ping.parsed.accepted
    assert ping.parsed.price == Decimal("12.5")
    bid_id = ping.parsed.captures["bid_id"]
    assert bid_id.startswith("bid")
    assert json.loads(post.request.body)["bid_id"] == bid_id
    assert post.request.headers["Authorization"] == "Bearer k"
    assert post.request.masked_headers["Authorization"] != "Bearer k"
    assert post.parsed.accepted


@pytest.mark.parametrize(
    ("kind", "ping", "post", "reason"),
    [
        ("ping", "decline=1&reason=no+coverage", "", "no coverage"),
        ("post", "bid=10", "accept=0&reason=dup", "dup"),
    ],
)
def test_the_generic_json_preset_keeps_the_buyers_reason(
    simulator, kind: str, ping: str, post: str, reason: str
) -> None:
    contract = generic_json(simulator, ping, post)

    answer = exchange(contract, kind, lead_for("generic-json-ping-post"), ping={"bid_id": "b-1"})

    assert not answer.parsed.accepted
    assert answer.parsed.reason == reason


def test_the_generic_xml_preset_renders_escaped_documents_without_the_key_on_record() -> None:
    key = 'k"&<ey'
    contract, _ = preset_contract(
        "generic-xml-ping-post", "https://buyer.example", {"api_key": key}
    )
    lead = lead_for("generic-xml-ping-post")

    ping = build(contract, "ping", lead)
    post = build(contract, "post", lead, ping={"bid_id": "b<1>"})

    assert fromstring(ping.body).find("Auth").get("key") == key
    document = fromstring(post.body)
    assert document.find("Auth").get("key") == key
    assert document.findtext("BidId") == "b<1>"
    assert document.findtext("Contact/LastName") == "O'Ruiz & <Sons>"
    assert document.find("Consent").get("ip") == CONSENT["ip"]
    stored = fromstring(post.body_text.encode())
    assert stored.find("Auth").get("key") == "••••"


@pytest.mark.parametrize(
    ("answer", "accepted", "price", "reason", "reference"),
    [
        (
            "<Response><Status>Accepted</Status><Price>17.25</Price><BidId>b-9</BidId></Response>",
            True,
            Decimal("17.25"),
            "",
            "b-9",
        ),
        (
            "<Response><Status>Declined</Status><Reason>No coverage</Reason></Response>",
            False,
            None,
            "No coverage",
            "",
        ),
    ],
)
def test_the_generic_xml_ping_rule_reads_xml_answers(answer, accepted, price, reason, reference):
    (row,) = [
        r for r in presets()["generic-xml-ping-post"].parts["response_rules"] if r["kind"] == "ping"
    ]

    parsed = parse_response(rule_from_model(ResponseRule(**row)), 200, answer)

    assert (parsed.accepted, parsed.price, parsed.reference) == (accepted, price, reference)
    if not accepted:
        assert parsed.reason == reason


def post_rule(slug: str):
    (row,) = [r for r in presets()[slug].parts["response_rules"] if r["kind"] == "post"]
    return rule_from_model(ResponseRule(**row))


def test_the_leadconduit_rule_reads_leadconduits_answers() -> None:
    rule = post_rule("leadconduit")
    success = {
        "outcome": "success",
        "lead": {"id": "550e8400-e29b-41d4-a716-446655440000", "price": 25.0},
        "reason": "Lead accepted and processed successfully",
    }
    standard = {"outcome": "success", "lead": {"id": "5f1"}, "price": 3.5}
    failure = {
        "outcome": "failure",
        "lead": {"id": "5f2"},
        "reason": "Lead rejected: Invalid email format",
    }

    read = parse_response(rule, 200, json.dumps(success))
    assert (read.accepted, read.price, read.reference) == (
        True,
        Decimal("25.0"),
        "550e8400-e29b-41d4-a716-446655440000",
    )
    assert parse_response(rule, 200, json.dumps(standard)).price == Decimal("3.5")
    refused = parse_response(rule, 200, json.dumps(failure))
    assert (refused.accepted, refused.reason) == (False, "Lead rejected: Invalid email format")


@pytest.mark.parametrize(
    ("answer", "accepted", "price", "reason", "reference"),
    [
        ("status=accepted&lead_id=A-17&price=4.50", True, Decimal("4.50"), None, "A-17"),
        ("SUCCESS", True, None, None, ""),
        ("Rejected\nreason=Duplicate lead\n", False, None, "Duplicate lead", ""),
        ("error: outside service area", False, None, "outside service area", ""),
    ],
)
def test_the_generic_form_rule_reads_text_answers(
    answer: str, accepted: bool, price: Decimal | None, reason: str | None, reference: str
) -> None:
    parsed = parse_response(post_rule("generic-form-post"), 200, answer)

    assert (parsed.accepted, parsed.price, parsed.reference) == (accepted, price, reference)
    if reason is not None:
        assert parsed.reason == reason
