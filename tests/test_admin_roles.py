"""Who sees and does what in the admin (Sales, Ops, Admin, a staff user of no group), personal
data masked for Sales, and pages whose query count does not grow with their rows."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from buyers.models import Contract, EndpointKind
from config.admin_pii import lead_pii_values, mask_text
from leads.models import Lead, LeadStatus
from routing.models import Attempt, AttemptOutcome, Sale
from tests.buyers.factories import ContractFactory
from tests.leads.factories import LeadFactory, VerticalFieldFactory
from tests.routing.factories import AttemptFactory, AuctionFactory, SaleFactory
from tests.staff import staff_user

pytestmark = pytest.mark.django_db

EMAIL = "mary.major@example.com"
PHONE = "+13125550142"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def logged_in(role: str | None) -> Client:
    client = Client()
    client.force_login(staff_user(role))
    return client


@pytest.fixture
def sold_lead() -> Lead:
    """A sold lead with personal data, its ping, and its post as the buyer received it."""
    lead = LeadFactory(
        email=EMAIL,
        phone=PHONE,
        status=LeadStatus.SOLD,
        data={
            "first_name": "Mary",
            "last_name": "Major",
            "email": EMAIL,
            "phone": PHONE,
            "zip_code": "60601",
            "state": "IL",
        },
        consent={"text": "I agree", "ip": "203.0.113.7"},
        remote_ip="203.0.113.7",
        raw_body=f'{{"email": "{EMAIL}"}}',
    )
    for name in ("first_name", "last_name", "email", "phone"):
        VerticalFieldFactory(vertical=lead.vertical, name=name, is_pii=True)
    auction = AuctionFactory(lead=lead, status="sold")
    contract = ContractFactory(vertical=lead.vertical)
    AttemptFactory(auction=auction, contract=contract)
    AttemptFactory(
        auction=auction,
        contract=contract,
        kind=EndpointKind.POST,
        outcome=AttemptOutcome.ACCEPTED,
        url="http://127.0.0.1:9100/post",
        request_body=(
            '{"FirstName":"MARY","Email":"mary.major@example.com","Phone":"312-555-0142",'
            '"Zip":"60601"}'
        ),
        response_body='{"status": "accepted", "lead_id": "L-1"}',
    )
    SaleFactory(lead=lead, auction=auction, contract=contract)
    return lead


PII_SPELLINGS = (EMAIL, PHONE, "312-555-0142", "MARY", "203.0.113.7")


def test_sales_see_the_lead_list_and_page_with_personal_data_masked(sold_lead):
    client = logged_in("Sales")
    listing = client.get(reverse("admin:leads_lead_changelist")).content.decode()
    assert "m***@example.com" in listing
    assert EMAIL not in listing
    page = client.get(reverse("admin:leads_lead_change", args=[sold_lead.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for spelling in PII_SPELLINGS:
        assert spelling not in html, spelling
    assert "m***@example.com" in html
    assert "***0142" in html
    assert "M***" in html
    # What is not personal stays readable: the timeline, the ZIP, the buyer's answer.
    assert "60601" in html
    assert "Timeline" in html
    assert "accepted" in html


def test_ops_and_admin_see_the_lead_unmasked(sold_lead):
    for role in ("Ops", "Admin"):
        html = (
            logged_in(role)
            .get(reverse("admin:leads_lead_change", args=[sold_lead.pk]))
            .content.decode()
        )
        for spelling in (EMAIL, PHONE, "312-555-0142"):
            assert spelling in html, role


def test_sales_see_an_attempts_request_body_masked(sold_lead):
    post = Attempt.objects.get(lead=sold_lead, kind=EndpointKind.POST)
    url = reverse("admin:routing_attempt_change", args=[post.pk])
    masked = logged_in("Sales").get(url).content.decode()
    assert "m***@example.com" in masked
    assert "***0142" in masked
    for spelling in PII_SPELLINGS:
        assert spelling not in masked, spelling
    assert "312-555-0142" in logged_in("Ops").get(url).content.decode()


def test_sales_see_an_auctions_attempts_masked_too(sold_lead):
    auction = Attempt.objects.filter(lead=sold_lead).first().auction
    html = (
        logged_in("Sales")
        .get(reverse("admin:routing_auction_change", args=[auction.pk]))
        .content.decode()
    )
    assert "m***@example.com" in html
    for spelling in PII_SPELLINGS:
        assert spelling not in html, spelling


def test_ops_reach_a_preview_of_each_contracts_post_from_the_lead_page(sold_lead):
    contract = Sale.objects.get(lead=sold_lead).contract
    preview = f"{reverse('admin:buyers_contract_test', args=[contract.pk])}?kind=post&amp;lead="
    assert preview in (
        logged_in("Ops")
        .get(reverse("admin:leads_lead_change", args=[sold_lead.pk]))
        .content.decode()
    )
    assert preview not in (
        logged_in("Sales")
        .get(reverse("admin:leads_lead_change", args=[sold_lead.pk]))
        .content.decode()
    )


def test_the_lead_page_shows_each_ping_and_post_and_the_status_history(sold_lead):
    html = (
        logged_in("Ops")
        .get(reverse("admin:leads_lead_change", args=[sold_lead.pk]))
        .content.decode()
    )
    assert "Request and response" in html
    assert "http://127.0.0.1:9100/post" in html
    assert "42 ms" in html
    assert "L-1" in html  # the buyer's answer
    assert "Status changes, oldest first" in html
    assert "received and validated" in html
    assert "bought by" in html


def test_masking_finds_a_leads_values_in_the_formats_mappings_produce():
    lead = LeadFactory.build(email=EMAIL, phone=PHONE, data={"first_name": "Mary"})
    values = lead_pii_values(lead, ["first_name"])
    text = mask_text(
        "Mary|MARY|13125550142|(312) 555-0142|3125550142|5550142|mary.major@example.com|1980-04-02",
        values,
    )
    assert text == "M***|M***|***0142|***0142|***0142|***0142|m***@example.com|1980-04-02"


@pytest.mark.parametrize(
    ("role", "pages"),
    [
        ("Sales", {"lead": 200, "attempt": 200, "sale": 200, "contract": 200, "dashboard": 200}),
        ("Ops", {"lead": 200, "attempt": 200, "sale": 200, "contract": 200, "dashboard": 200}),
        ("Admin", {"lead": 200, "attempt": 200, "sale": 200, "contract": 200, "dashboard": 200}),
        (None, {"lead": 403, "attempt": 403, "sale": 403, "contract": 403, "dashboard": 403}),
    ],
)
def test_each_role_opens_the_lists_it_may(sold_lead, role, pages):
    client = logged_in(role)
    urls = {
        "lead": reverse("admin:leads_lead_changelist"),
        "attempt": reverse("admin:routing_attempt_changelist"),
        "sale": reverse("admin:routing_sale_changelist"),
        "contract": reverse("admin:buyers_contract_changelist"),
        "dashboard": "/dashboard/",
    }
    seen = {name: client.get(address).status_code for name, address in urls.items()}
    assert seen == pages


@pytest.mark.parametrize(("role", "may_change"), [("Sales", False), ("Ops", True), ("Admin", True)])
def test_only_ops_and_admin_may_add_buyers_and_contracts(role, may_change):
    client = logged_in(role)
    for name in ("buyers_buyer_add", "buyers_contract_add"):
        status = client.get(reverse(f"admin:{name}")).status_code
        assert (status == 200) is may_change, name


def test_the_migrated_sales_group_reads_leads_and_attempts():
    from django.contrib.auth.models import Group

    permissions = {
        f"{app_label}.{codename}"
        for app_label, codename in Group.objects.get(name="Sales").permissions.values_list(
            "content_type__app_label", "codename"
        )
    }
    assert {"leads.view_lead", "routing.view_attempt"} <= permissions


def test_a_staff_user_without_a_group_sees_no_models():
    html = logged_in(None).get(reverse("admin:index")).content.decode()
    assert "You don’t have permission to view or edit anything" in html


# --- Query counts: a changelist of 200 rows and the lead page stay bounded ---


@pytest.fixture
def two_hundred_of_everything() -> None:
    lead = LeadFactory()
    contract = ContractFactory(vertical=lead.vertical)
    auction = AuctionFactory(lead=lead)
    AttemptFactory.create_batch(200, auction=auction, contract=contract)
    LeadFactory.create_batch(200, vertical=lead.vertical, source=lead.source)
    ContractFactory.create_batch(200, vertical=lead.vertical)
    for other in Lead.objects.exclude(pk=lead.pk)[:200]:
        SaleFactory(lead=other, contract=contract, auction=None)


@pytest.mark.parametrize("role", ["Sales", "Admin"])
@pytest.mark.parametrize(
    ("model", "queries"),
    [(Lead, 10), (Contract, 10), (Attempt, 9), (Sale, 10)],
)
def test_a_changelist_of_200_rows_makes_a_bounded_number_of_queries(
    two_hundred_of_everything, django_assert_max_num_queries, role, model, queries
):
    client = logged_in(role)
    opts = model._meta
    address = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    with django_assert_max_num_queries(queries):
        response = client.get(address, {"all": ""})
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) >= 100


@pytest.mark.parametrize("role", ["Sales", "Ops"])
def test_the_lead_page_with_many_attempts_makes_a_bounded_number_of_queries(
    sold_lead, django_assert_max_num_queries, role
):
    auction = AuctionFactory(lead=sold_lead)
    contract = ContractFactory(vertical=sold_lead.vertical)
    AttemptFactory.create_batch(50, auction=auction, contract=contract)
    client = logged_in(role)
    with django_assert_max_num_queries(26):
        response = client.get(reverse("admin:leads_lead_change", args=[sold_lead.pk]))
    assert response.status_code == 200


@pytest.mark.parametrize("role", ["Sales", None])
def test_the_list_actions_are_refused_to_sales_and_to_staff_without_a_role(sold_lead, role):
    contract = ContractFactory()
    sale = Sale.objects.get(lead=sold_lead)
    client = logged_in(role)
    client.post(
        reverse("admin:buyers_contract_changelist"),
        {
            "action": "pause_contracts",
            "_selected_action": [contract.pk],
            "apply": "yes",
            "reason": "not theirs to pause",
        },
    )
    client.post(
        reverse("admin:routing_sale_changelist"),
        {"action": "return_sales", "_selected_action": [sale.pk], "apply": "yes"},
    )
    contract.refresh_from_db()
    sale.refresh_from_db()
    assert contract.status == "active"
    assert sale.status == "sold"
