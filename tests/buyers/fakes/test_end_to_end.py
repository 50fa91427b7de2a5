"""Each fake buyer connected the way ops would do it, and leads sent to it through the product.

A contract is filled from the buyer's preset on the demo vertical the preset is written for, its
secrets added, its endpoints pointed at the fake (on the preset's own paths) and resumed, which
the product refuses while the contract cannot deliver. Leads then go in through the partner API
and are routed by a real Celery worker on PostgreSQL and Redis. What is checked:

- a lead is sold at the buyer's price (a ping/post buyer's bid) or, for a buyer whose answer
  carries no price, at the contract's fixed price; a ping's id reaches the post;
- a lead the buyer declines or rejects is unsold, its Attempt keeping the buyer's own words;
- the fake received the lead in its spec's format and accepted it by its spec's checks;
- no stored Attempt holds a secret (URL, headers, body), no stored URL holds personal data, and
  no ping carries any.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import pytest
from django.test import Client

from buyers.models import Contract, ContractStatus, EndpointKind
from buyers.presets import presets
from buyers.services import contract_resume
from leads.models import FINAL_STATUSES, FieldType, Lead, LeadStatus, Source, Vertical
from leads.selectors import clear_field_specs_cache
from routing.models import Attempt, AttemptOutcome, Sale
from tests.buyers.fakes.boberdoo import BoberdooFake
from tests.buyers.fakes.doublepositive_b import DoublePositiveInsertLead
from tests.buyers.fakes.fake_server import PingPostFake
from tests.buyers.fakes.leadprosper import LeadProsperFake
from tests.buyers.fakes.leadspedia import LeadsPediaFake
from tests.buyers.fakes.novo_b import NovoPartnerLead
from tests.buyers.fakes.product import ANSWERS, preset_contract
from tests.buyers.fakes.zoho_crm_b import ZohoCrmInsertRecords
from tests.demo import demo_vertical
from tests.leads.factories import SourceFactory, VerticalFieldFactory, api_key_for
from tests.workers import Service, needs_broker, wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(180),
    needs_broker,
]

D = Decimal
LEADS = "/api/v1/leads/"
ROUTED_WITHIN_S = 60
SOURCE_PAYOUT = D("4.00")
MASK = "••••"

CONSENT = {
    "text": "I agree to be contacted by Sun Harbor and its partners about my quote.",
    "timestamp": "2026-05-01T14:02:00Z",
    "ip": "203.0.113.7",
    "trustedform_cert_url": "https://cert.trustedform.com/0123456789abcdef0123456789abcdef",
    "jornaya_leadid": "0C2F5E7A-1B3D-4E6F-8A9B-0C1D2E3F4A5B",
    "page_url": "https://quotes.example/get-a-quote",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) E2E-Browser/1.0",
}


def contact(number: int) -> dict[str, Any]:
    """A consumer's contact fields, different for each number (intake refuses duplicates)."""
    return {
        "first_name": "Dana",
        "last_name": f"O'Ruiz & Sons {chr(ord('A') + number)}",
        "email": f"dana.ruiz.{number}@example.com",
        "phone": f"(602) 555-{143 + number:04d}",
        "street_address": f'{12 + number} "Palm" Lane',
        "zip_code": "85004",
    }


def submission(vertical: str, number: int, **fields: Any) -> dict[str, Any]:
    """A partner's lead for one of the demo verticals, with number's contact fields (and any
    other `fields`)."""
    return {
        "vertical": vertical,
        "sub_id": "spring-campaign",
        "fields": {**contact(number), **ANSWERS[vertical], **fields},
        "consent": CONSENT,
    }


@dataclass
class Marketplace:
    """The product as a partner and ops see it: a source posting through the API, contracts
    filled from presets, and a routing worker."""

    client: Client
    worker: Service

    def vertical(self, slug: str) -> Vertical:
        return demo_vertical(slug)

    def connect(
        self,
        slug: str,
        fake: Any,
        secrets: Mapping[str, str],
        *,
        fixed_price: Decimal | None = None,
    ) -> Contract:
        """Fill a new contract from the preset, add its secrets, point its endpoints at the fake
        (keeping the preset's paths) and resume it."""
        contract, applied = preset_contract(
            slug, f"http://127.0.0.1:{fake.port}", secrets, fixed_price=fixed_price
        )
        # Filled without its secrets, the contract could not deliver: it was paused, saying so.
        assert contract.status == ContractStatus.PAUSED
        assert {s.name for s in presets()[slug].secrets} == set(secrets)
        assert all(name in " ".join(applied.problems) for name in secrets), applied.problems
        assert contract_resume(contract=contract, reason="connected to the fake buyer")
        return contract

    def submit(self, source: Source, key: str, body: Mapping[str, Any]) -> Lead:
        """Submit a lead through the partner API and wait for the worker to route it."""
        response = self.client.post(
            LEADS,
            data=json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {key}",
        )
        assert response.status_code == 202, response.content
        lead_id = response.json()["id"]
        wait_until(
            lambda: Lead.objects.filter(pk=lead_id, status__in=FINAL_STATUSES).exists(),
            seconds=ROUTED_WITHIN_S,
            worker=self.worker,
            what=f"lead {lead_id} routed",
        )
        return Lead.objects.get(pk=lead_id)

    def trade(
        self, slug: str, fake: PingPostFake, secrets: Mapping[str, str], refusals: Refusals
    ) -> Trade:
        """Start a ping/post fake, connect it from its preset and submit three solar leads: the
        first it buys, the second's post and the third's ping it refuses as `refusals` say."""
        seller = self.seller(self.vertical("solar"))
        with fake:
            contract = self.connect(slug, fake, secrets)
            sold = seller.submit(1)
            fake.reject_post = refusals.reject_post
            rejected = seller.submit(2)
            fake.decline = refusals.decline
            declined = seller.submit(3)
        return Trade(contract, sold, rejected, declined, secrets, refusals)

    def seller(self, vertical: Vertical) -> Seller:
        source = SourceFactory(
            verticals=[vertical], payout_amount=SOURCE_PAYOUT, rate_limit_per_second=1000
        )
        return Seller(self, vertical.slug, source, api_key_for(source))


@dataclass
class Seller:
    """A source of one vertical, posting leads through the partner API."""

    marketplace: Marketplace
    vertical: str
    source: Source
    key: str

    def submit(self, number: int, **fields: Any) -> Lead:
        """Submit the `number`th lead (see `submission`) and wait for it to be routed."""
        return self.marketplace.submit(
            self.source, self.key, submission(self.vertical, number, **fields)
        )


@dataclass(frozen=True)
class Refusals:
    """How a ping/post fake is told to refuse a post (`reject_post`) and a ping (`decline`),
    and the reason a declined ping's attempt keeps (`decline` itself where it is a text)."""

    reject_post: str
    decline: bool | str
    declined_reason: str | None = None

    @property
    def declined(self) -> str:
        return self.declined_reason or str(self.decline)


@dataclass
class Trade:
    """What a ping/post buyer made of three leads (see `Marketplace.trade`)."""

    contract: Contract
    sold: Lead
    rejected: Lead
    declined: Lead
    secrets: Mapping[str, str]
    refusals: Refusals

    def assert_sold_after_one_ping(self, price: Decimal) -> Attempt:
        """The first lead sold at `price` (the buyer's bid) after one ping; return that ping."""
        assert_sold(self.sold, self.contract, price)
        return only_attempt(self.sold, EndpointKind.PING)

    def assert_refused_in_its_words(self) -> None:
        """The rejected and declined leads are unsold, keeping the buyer's words, and no
        attempt of the three leads stores a secret."""
        rejected, declined = self.refusals.reject_post, self.refusals.declined
        assert_unsold_for(self.rejected, EndpointKind.POST, AttemptOutcome.REJECTED, rejected)
        assert_unsold_for(self.declined, EndpointKind.PING, AttemptOutcome.DECLINED, declined)
        assert_nothing_secret_stored(
            (self.sold, self.rejected, self.declined), self.secrets.values()
        )


@pytest.fixture
def marketplace(client, settings, start_worker) -> Iterator[Marketplace]:
    settings.SECURE_SSL_REDIRECT = False
    clear_field_specs_cache()
    # Started first: it boots while the test connects its buyer.
    yield Marketplace(client=client, worker=start_worker())
    clear_field_specs_cache()


def attempts(lead: Lead, kind: str) -> list[Attempt]:
    return list(Attempt.objects.filter(lead=lead, kind=kind).order_by("created_at", "id"))


def only_attempt(lead: Lead, kind: str) -> Attempt:
    (attempt,) = attempts(lead, kind)
    return attempt


def spellings(value: str) -> set[str]:
    """A value as it may appear in a URL, a form body, a JSON or an XML document."""
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"),
    }


def stored_text(attempt: Attempt) -> str:
    """Everything a stored attempt keeps of the request it sent."""
    headers = json.dumps(attempt.request_headers, ensure_ascii=False)
    return "\n".join((attempt.url, headers, attempt.request_body))


def assert_nothing_secret_stored(leads: Iterable[Lead], secrets: Iterable[str]) -> None:
    secrets = list(secrets)
    for attempt in Attempt.objects.filter(lead__in=list(leads)):
        text = stored_text(attempt)
        for secret in secrets:
            leaked = [s for s in spellings(secret) if s in text]
            assert not leaked, f"{attempt.kind} attempt keeps a secret: {leaked}\n{text}"


def personal_values(lead: Lead) -> list[str]:
    """What names or reaches the consumer: the lead's personal fields and its IP and browser."""
    data = lead.data
    return [
        data["first_name"],
        data["last_name"],
        data["email"],
        data["phone"],
        data["phone"][-10:],  # +16025550144 -> 6025550144
        data["street_address"],
        CONSENT["ip"],
        CONSENT["user_agent"],
    ]


def request_text(request: Any) -> str:
    """A fake's received request as one text: its query and its body, both decoded."""
    query = json.dumps(request.query, ensure_ascii=False)
    body = request.body.decode("utf-8", errors="replace")
    form = json.dumps(parse_qs(body), ensure_ascii=False) if "=" in body else ""
    return "\n".join((request.path, query, body, form))


def assert_pings_say_nothing_personal(pings: list[Any], lead: Lead) -> None:
    """No request the fake received as a ping names the consumer of this lead."""
    assert pings
    for request in pings:
        text = request_text(request)
        said = [
            value for value in personal_values(lead) if any(s in text for s in spellings(value))
        ]
        assert not said, f"a ping carried {said}:\n{text}"


def assert_sold(lead: Lead, contract: Contract, price: Decimal) -> Sale:
    assert lead.status == LeadStatus.SOLD, list(
        Attempt.objects.filter(lead=lead).values_list("kind", "outcome", "reason")
    )
    sale = Sale.objects.get(lead=lead)
    assert (sale.contract_id, sale.price) == (contract.pk, price)
    assert (lead.sale_price, lead.payout) == (price, SOURCE_PAYOUT)
    return sale


def assert_unsold_for(lead: Lead, kind: str, outcome: str, reason: str) -> Attempt:
    """The lead was not sold, and its one attempt of this kind keeps the buyer's own words."""
    assert lead.status == LeadStatus.UNSOLD
    assert not Sale.objects.filter(lead=lead).exists()
    attempt = only_attempt(lead, kind)
    assert (attempt.outcome, attempt.reason) == (outcome, reason), attempt.response_body
    return attempt


# --- Fixed-price buyers: the answer names no price, the contract's applies --------------------


NOVO_KEY = "novo-partner-key-5d1e9a77c3"


def test_novo_takes_a_nested_typed_json_lead_sold_at_the_contracts_price_and_refuses_one_in_its_words(  # noqa: E501
    marketplace: Marketplace,
) -> None:
    vertical = marketplace.vertical("auto-insurance")
    # The preset reads a months-at-residence field the demo vertical lacks: ops add it.
    VerticalFieldFactory(
        vertical=vertical, name="months_at_residence", field_type=FieldType.INTEGER
    )
    seller = marketplace.seller(vertical)
    with NovoPartnerLead(api_key=NOVO_KEY) as novo:
        contract = marketplace.connect(
            "novo-partner-lead", novo, {"api_key": NOVO_KEY}, fixed_price=D("31.00")
        )
        sold = seller.submit(1, months_at_residence="30")
        novo.refuse("eligible_vehicle_not_found", "No eligible vehicle was found.")
        refused = seller.submit(2, months_at_residence=7)

    # Novo answers with a transaction id and no price: the contract's fixed price is the sale's.
    sale = assert_sold(sold, contract, D("31.00"))
    assert sale.buyer_reference == novo.transactions[0]
    post = only_attempt(sold, EndpointKind.POST)
    assert post.outcome == AttemptOutcome.ACCEPTED
    assert not attempts(sold, EndpointKind.PING)  # a fixed price bids without a ping
    first = novo.received[0].request
    assert first.headers["x-api-key"] == NOVO_KEY
    driver = first.json()["application"]["drivers"][0]
    assert driver["residence"] == {"type": "own_home", "length_in_months": 30}
    assert driver["address"]["zip"] == "85004"
    assert driver["address"]["city"] == "Phoenix"  # enriched from the ZIP code at intake
    assert driver["contact_info"] == {"phone": "6025550144", "email": "dana.ruiz.1@example.com"}
    assert driver["name"]["last_name"] == "O'Ruiz & Sons B"
    assert_unsold_for(
        refused, EndpointKind.POST, AttemptOutcome.REJECTED, "No eligible vehicle was found."
    )
    assert [r.status for r in novo.received] == [200, 400]
    assert_nothing_secret_stored((sold, refused), [NOVO_KEY])


DP_SUPPLIER_ID = "774411"
DP_PASSWORD = 'dp-pass<&>"word-9f2c'


def test_doublepositive_takes_a_soap_lead_sold_at_the_contracts_price_and_rejects_one_in_its_words(
    marketplace: Marketplace,
) -> None:
    seller = marketplace.seller(marketplace.vertical("auto-insurance"))
    secrets = {"supplier_id": DP_SUPPLIER_ID, "supplier_password": DP_PASSWORD}
    with DoublePositiveInsertLead(supplier_id=DP_SUPPLIER_ID, supplier_password=DP_PASSWORD) as dp:
        contract = marketplace.connect(
            "doublepositive-insertlead", dp, secrets, fixed_price=D("27.50")
        )
        sold = seller.submit(1)
        dp.reject("Rejected: duplicate lead")
        rejected = seller.submit(2)

    assert_sold(sold, contract, D("27.50"))
    assert only_attempt(sold, EndpointKind.POST).outcome == AttemptOutcome.ACCEPTED
    # The fake parsed the namespaced envelope and checked every value's format.
    first = dp.leads[0]
    assert first["LastName"] == "O'Ruiz & Sons B"
    assert first["HomePhone"] == "6025550144"
    assert first["ExternalLeadID"] == str(sold.pk)
    assert first["IPAddress"] == CONSENT["ip"]
    assert_unsold_for(
        rejected, EndpointKind.POST, AttemptOutcome.REJECTED, "Rejected: duplicate lead"
    )
    assert_nothing_secret_stored((sold, rejected), secrets.values())


ZOHO_TOKEN = "zoho-authtoken-2b8c41d9e0f6"


def test_zoho_refuses_a_record_without_company_in_its_words_then_takes_one_at_the_contracts_price(
    marketplace: Marketplace,
) -> None:
    seller = marketplace.seller(marketplace.vertical("auto-insurance"))
    # Zoho's default Leads module makes Company mandatory, which the preset does not map.
    with ZohoCrmInsertRecords(authtoken=ZOHO_TOKEN) as zoho:
        contract = marketplace.connect(
            "zoho-crm-insertrecords", zoho, {"authtoken": ZOHO_TOKEN}, fixed_price=D("22.00")
        )
        refused = seller.submit(1)
        # As the preset says: the buyer makes Company optional in its account.
        zoho.mandatory = ("Last Name",)
        sold = seller.submit(2)

    assert_unsold_for(
        refused, EndpointKind.POST, AttemptOutcome.REJECTED, "Mandatory field missing"
    )
    sale = assert_sold(sold, contract, D("22.00"))
    (record_id,) = zoho.records
    assert sale.buyer_reference == record_id
    record = zoho.records[record_id]
    assert record["Last Name"] == "O'Ruiz & Sons C"
    assert record["Street"] == '14 "Palm" Lane'
    assert record["Lead Source"] == seller.source.name
    # The XML document travelled inside the form field, next to the token.
    form = zoho.received[-1].request.form()
    assert form["authtoken"] == [ZOHO_TOKEN]
    assert form["xmlData"][0].startswith("<Leads><row no=")
    assert_nothing_secret_stored((refused, sold), [ZOHO_TOKEN])


# --- Ping/post buyers: sold at their bid, the ping's id carried into the post -----------------


LEADSPEDIA_SECRETS = {"lp_campaign_id": "64c9a3f1b2e7d", "lp_campaign_key": "Q7vXk2LmP9sRt4WyZb8N"}
LEADSPEDIA_REFUSALS = Refusals("Lead Rejected: Invalid Address", decline="No Coverage In Zip")


def test_leadspedia_buys_a_get_lead_at_its_bid_with_the_pings_id_and_no_personal_data_kept_in_the_url(  # noqa: E501
    marketplace: Marketplace,
) -> None:
    preset = presets()["leadspedia"]
    leadspedia = LeadsPediaFake(
        campaign_id=LEADSPEDIA_SECRETS["lp_campaign_id"],
        campaign_key=LEADSPEDIA_SECRETS["lp_campaign_key"],
        price=D("38.25"),
    )
    trade = marketplace.trade("leadspedia", leadspedia, LEADSPEDIA_SECRETS, LEADSPEDIA_REFUSALS)

    ping = trade.assert_sold_after_one_ping(D("38.25"))
    sold = trade.sold
    assert (ping.outcome, ping.price) == (AttemptOutcome.BID, D("38.25"))
    ping_id = leadspedia.pings.issued[0]
    assert ping.captures == {"ping_id": ping_id}
    post = only_attempt(sold, EndpointKind.POST)
    assert post.outcome == AttemptOutcome.ACCEPTED
    sent = leadspedia.requests_to("/post.do")[0].request
    assert (sent.method, sent.body) == ("GET", b"")
    # The buyer got the real values, and only the query its preset writes.
    assert sent.query["lp_ping_id"] == [ping_id]
    assert sent.query["email_address"] == ["dana.ruiz.1@example.com"]
    assert sent.query["phone_home"] == ["6025550144"]
    assert sent.query["vendor_lead_id"] == [str(sold.pk)]
    post_query = next(e for e in preset.parts["endpoints"] if e["kind"] == "post")["query"]
    assert set(sent.query) == set(post_query)
    # What is kept shows the consumer's details and the campaign key masked.
    kept = parse_qs(urlsplit(post.url).query)
    assert kept["email_address"] == [MASK]
    assert kept["phone_home"] == [MASK]
    assert kept["lp_ping_id"] == [ping_id]
    for value in personal_values(sold):
        assert not [s for s in spellings(value) if s in post.url], (value, post.url)
    assert_pings_say_nothing_personal([r.request for r in leadspedia.requests_to("/ping.do")], sold)
    ping_query = next(e for e in preset.parts["endpoints"] if e["kind"] == "ping")["query"]
    assert set(leadspedia.requests_to("/ping.do")[0].request.query) == set(ping_query)
    trade.assert_refused_in_its_words()
    assert not attempts(trade.declined, EndpointKind.POST)


BOBERDOO_SECRETS = {"api_key": "bbd-4f1c2a-77e0d1", "src": "leadswitch-e2e", "lead_type": "LT7731"}
# An Unmatched ping says no more than that: the status word is the reason kept.
BOBERDOO_REFUSALS = Refusals("Duplicate lead", decline=True, declined_reason="Unmatched")


def test_boberdoo_buys_at_its_bid_with_the_pings_lead_id_in_the_post_and_rejects_in_its_words(
    marketplace: Marketplace,
) -> None:
    boberdoo = BoberdooFake(
        key=BOBERDOO_SECRETS["api_key"], lead_type=BOBERDOO_SECRETS["lead_type"], price=D("31.40")
    )
    trade = marketplace.trade("boberdoo", boberdoo, BOBERDOO_SECRETS, BOBERDOO_REFUSALS)

    ping = trade.assert_sold_after_one_ping(D("31.40"))
    sold = trade.sold
    issued = boberdoo.pings.issued
    assert ping.captures == {"lead_id": issued[0]}
    assert ping.buyer_reference == issued[0]
    posts = [r.request.form() for r in boberdoo.received if r.request.form()["Mode"] == ["post"]]
    assert posts[0]["Lead_ID"] == [issued[0]]
    assert posts[0]["Primary_Phone"] == ["6025550144"]
    assert posts[0]["Electric_Bill"] == ["182"]
    assert posts[1]["Lead_ID"] == [issued[1]]
    pings = [r.request for r in boberdoo.received if r.request.form()["Mode"] == ["ping"]]
    assert_pings_say_nothing_personal(pings, sold)
    assert all("First_Name" not in r.form() and "Email" not in r.form() for r in pings)
    trade.assert_refused_in_its_words()


LEADPROSPER_SECRETS = {
    "lp_campaign_id": "630947",
    "lp_supplier_id": "1246583",
    "lp_key": "yq0h0jphvp5x",
}
LEADPROSPER_REFUSALS = Refusals(
    "Lead rejected: outside service area", decline="No buyer for this lead"
)


def test_lead_prosper_buys_at_its_bid_with_its_keys_in_the_body_and_the_ping_id_in_the_post(
    marketplace: Marketplace,
) -> None:
    leadprosper = LeadProsperFake(
        campaign_id=int(LEADPROSPER_SECRETS["lp_campaign_id"]),
        supplier_id=int(LEADPROSPER_SECRETS["lp_supplier_id"]),
        key=LEADPROSPER_SECRETS["lp_key"],
        price=D("44.00"),
    )
    trade = marketplace.trade("leadprosper", leadprosper, LEADPROSPER_SECRETS, LEADPROSPER_REFUSALS)

    ping = trade.assert_sold_after_one_ping(D("44.00"))
    sold = trade.sold
    issued = leadprosper.pings.issued
    assert ping.captures == {"ping_id": issued[0]}
    posts = [r.request.json() for r in leadprosper.requests_to("/post")]
    assert posts[0]["lp_ping_id"] == issued[0]
    # The credentials travel in the body, typed as the campaign wants them.
    assert (posts[0]["lp_campaign_id"], posts[0]["lp_supplier_id"]) == (630947, 1246583)
    assert posts[0]["lp_key"] == LEADPROSPER_SECRETS["lp_key"]
    assert posts[0]["monthly_electric_bill"] == "$151-$200"
    assert posts[0]["property_type"] == "Townhome"
    assert posts[0]["trustedform_cert_url"] == CONSENT["trustedform_cert_url"]
    assert posts[1]["lp_ping_id"] == issued[1]
    stored_post = json.loads(only_attempt(sold, EndpointKind.POST).request_body)
    assert stored_post["lp_key"] == MASK
    assert_pings_say_nothing_personal([r.request for r in leadprosper.requests_to("/ping")], sold)
    trade.assert_refused_in_its_words()
